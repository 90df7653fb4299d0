"""kube.scale_deployment: set a Deployment's replicas; the preview counts the GPUs that follow."""

from __future__ import annotations

from typing import Any

from tools.base import Effect, Preview, ToolSpec
from tools.kube.args import ScaleDeploymentArgs
from tools.kube.client import KubeApi
from tools.kube.deployment_write import MERGE_PATCH, DeploymentWriteTool
from tools.kube.deployments import DeploymentView
from tools.kube.errors import KubeError


class ScaleDeployment(DeploymentWriteTool[ScaleDeploymentArgs]):
    spec = ToolSpec("kube.scale_deployment",
                    "Set a Deployment's replica count. The preview shows replicas and GPUs "
                    "(replicas × GPUs per pod) before and after; the change is checked by a "
                    "server-side dry run first.", ScaleDeploymentArgs, Effect.WRITE)
    args_model = ScaleDeploymentArgs
    content_type = MERGE_PATCH  # a plain field set: no list semantics needed

    def body(self, args: ScaleDeploymentArgs, target: DeploymentView,
             metadata: dict[str, Any]) -> dict[str, Any]:
        return {"metadata": metadata, "spec": {"replicas": args.replicas}}

    def notes(self, api: KubeApi, target: DeploymentView) -> list[str]:
        # An HPA owns spec.replicas of its target and undoes a manual scale within seconds.
        try:
            found = api.call(self.spec.name,
                             api.autoscaling.list_namespaced_horizontal_pod_autoscaler,
                             target.namespace)
        except KubeError:
            return []  # the check is advice only; no permission to read HPAs is no blocker
        notes = []
        for hpa in found.items or []:
            ref = hpa.spec.scale_target_ref
            if ref.kind == "Deployment" and ref.name == target.name:
                notes.append(f"HorizontalPodAutoscaler {hpa.metadata.name} manages this "
                             f"deployment (min {hpa.spec.min_replicas or 1}, max "
                             f"{hpa.spec.max_replicas}) and will override a manual scale")
        return notes

    def plan(self, args: ScaleDeploymentArgs, target: DeploymentView,
             notes: list[str]) -> Preview:
        old, new, per_pod = target.replicas, args.replicas, target.gpus_per_pod
        gpus = f"GPUs {old * per_pod} → {new * per_pod}" if per_pod else "no GPUs requested"
        if old == new:
            held = f"{old * per_pod} GPUs" if per_pod else "no GPUs"
            summary = f"{target.ref} already has {old} replicas ({held}); no change"
        else:
            summary = f"scale {target.ref}: replicas {old} → {new}, {gpus}"
        if target.ready != old:
            summary += f" ({target.ready} of {old} replicas ready now)"
        if notes:
            summary += "; note: " + "; ".join(notes)
        diff = (f"--- {target.ref} (current)\n+++ {target.ref} (proposed)\n"
                f"-replicas: {old}\n+replicas: {new}\n")
        if per_pod:
            diff += (f"-gpus: {old * per_pod} ({old} × {per_pod} {target.gpu_resource})\n"
                     f"+gpus: {new * per_pod} ({new} × {per_pod} {target.gpu_resource})\n")
        current = {"replicas": old, "gpus": old * per_pod, "gpus_per_pod": per_pod,
                   "gpu_resource": target.gpu_resource, "ready_replicas": target.ready,
                   "resourceVersion": target.resource_version, "generation": target.generation}
        return Preview(summary=summary, diff=diff if old != new else "", current=current,
                       proposed={"replicas": new, "gpus": new * per_pod})

    def done(self, args: ScaleDeploymentArgs, before: DeploymentView,
             after: DeploymentView) -> dict[str, Any]:
        return {"before": {"replicas": before.replicas, "gpus": before.total_gpus},
                "after": {"replicas": after.replicas, "gpus": after.total_gpus}}

    def undo(self, args: ScaleDeploymentArgs,
             before: Preview) -> tuple[str, dict[str, Any]] | None:
        current = before.current
        if isinstance(current, dict) and isinstance(current.get("replicas"), int):
            return self.spec.name, {"namespace": args.namespace, "name": args.name,
                                    "replicas": current["replicas"]}
        return None
