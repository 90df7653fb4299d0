"""kube.rollout_restart: replace a Deployment's pods the way `kubectl rollout restart` does."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from tools.base import Effect, Preview, ToolSpec
from tools.kube.args import DeploymentArgs
from tools.kube.deployment_write import STRATEGIC_MERGE_PATCH, DeploymentWriteTool
from tools.kube.deployments import RESTARTED_AT, DeploymentView
from tools.kube.errors import KubeRefused


def restart_time() -> str:
    # kubectl writes RFC 3339 with seconds; any new value changes the pod template.
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class RolloutRestart(DeploymentWriteTool[DeploymentArgs]):
    spec = ToolSpec("kube.rollout_restart",
                    "Restart every pod of a Deployment by its update strategy (sets the "
                    "kubectl.kubernetes.io/restartedAt pod-template annotation, like kubectl "
                    "rollout restart). Refused for a paused deployment.",
                    DeploymentArgs, Effect.WRITE)
    args_model = DeploymentArgs
    content_type = STRATEGIC_MERGE_PATCH  # what kubectl sends

    def body(self, args: DeploymentArgs, target: DeploymentView,
             metadata: dict[str, Any]) -> dict[str, Any]:
        if target.paused:
            # A paused deployment would take the new template but roll nothing out.
            raise KubeRefused(f"{self.spec.name}: {target.ref} is paused; resume it first "
                              "(kubectl refuses to restart a paused deployment too)")
        return {"metadata": metadata,
                "spec": {"template": {"metadata": {"annotations": {
                    RESTARTED_AT: restart_time()}}}}}

    def plan(self, args: DeploymentArgs, target: DeploymentView,
             notes: list[str]) -> Preview:
        summary = (f"rollout restart {target.ref}: replace all {target.replicas} pods "
                   f"({target.ready} ready now) by the deployment's update strategy; last "
                   f"restart: {target.restarted_at or 'never'}")
        if target.gpus_per_pod:
            summary += (f"; each new pod needs {target.gpus_per_pod} {target.gpu_resource} "
                        "free while it starts")
        diff = (f"--- {target.ref} (current)\n+++ {target.ref} (proposed)\n"
                f"-{RESTARTED_AT}: {target.restarted_at or '(unset)'}\n"
                f"+{RESTARTED_AT}: (time of execution)\n")
        return Preview(summary=summary, diff=diff,
                       current={"restartedAt": target.restarted_at,
                                "replicas": target.replicas, "ready_replicas": target.ready,
                                "gpus_per_pod": target.gpus_per_pod,
                                "resourceVersion": target.resource_version,
                                "generation": target.generation},
                       proposed={"restartedAt": "(time of execution)"})

    def done(self, args: DeploymentArgs, before: DeploymentView,
             after: DeploymentView) -> dict[str, Any]:
        return {"restartedAt": after.restarted_at, "replicas": after.replicas}

    def undo(self, args: DeploymentArgs, before: Preview) -> tuple[str, dict[str, Any]] | None:
        return None  # replaced pods cannot be brought back
