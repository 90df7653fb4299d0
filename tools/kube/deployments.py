"""What the tools need to know about one Deployment: replicas, readiness, GPUs, versions."""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from kubernetes.utils import parse_quantity

from tools.kube.client import KubeApi

RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"


@dataclass(frozen=True, slots=True)
class DeploymentView:
    namespace: str
    name: str
    uid: str
    resource_version: str
    generation: int
    replicas: int
    ready: int
    available: int
    updated: int
    gpus_per_pod: int
    gpu_resource: str
    paused: bool
    selector: str
    annotations: dict[str, str]
    restarted_at: str | None

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def total_gpus(self) -> int:
        return self.replicas * self.gpus_per_pod

    @property
    def spec_version(self) -> str:
        """The write tools' snapshot. `generation` moves on every spec change (replicas, pod
        template) but not when the controller rewrites status, which moves resourceVersion
        all the time on a deployment in trouble; the uid catches a delete-and-recreate."""
        return f"deployment {self.ref} uid={self.uid} generation={self.generation}"

    def describe(self) -> dict[str, Any]:
        return {"namespace": self.namespace, "name": self.name, "replicas": self.replicas,
                "ready_replicas": self.ready, "available_replicas": self.available,
                "updated_replicas": self.updated, "resourceVersion": self.resource_version,
                "generation": self.generation, "gpu_resource": self.gpu_resource,
                "gpus_per_pod": self.gpus_per_pod, "total_gpus": self.total_gpus,
                "paused": self.paused, "selector": self.selector,
                "restartedAt": self.restarted_at}


def _quantity(value: Any) -> int:
    # GPUs are whole devices; round a fractional quantity up rather than hide it.
    if value is None:
        return 0
    quantity: Decimal = parse_quantity(value)  # type: ignore[no-untyped-call]
    return math.ceil(quantity)


def _container_gpus(container: Any, resource: str) -> int:
    resources = container.resources
    if resources is None:
        return 0
    limits = resources.limits or {}
    requests = resources.requests or {}
    # An extended resource's request must equal its limit; read the limit, else the request.
    return _quantity(limits.get(resource, requests.get(resource)))


def pod_gpus(pod_spec: Any, resource: str) -> int:
    """GPUs one pod holds: the sum over its containers, or the largest init container if that
    is more (init containers run one at a time, before the others)."""
    if pod_spec is None:
        return 0
    main = sum(_container_gpus(c, resource) for c in pod_spec.containers or [])
    init = max((_container_gpus(c, resource) for c in pod_spec.init_containers or []),
               default=0)
    return max(main, init)


def _selector(selector: Any) -> str:
    labels = (selector.match_labels if selector is not None else None) or {}
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def view(obj: Any, gpu_resource: str) -> DeploymentView:
    """A V1Deployment as the tools see it."""
    meta, spec, status = obj.metadata, obj.spec, obj.status
    template = spec.template
    template_annotations = (template.metadata.annotations if template.metadata else None) or {}
    return DeploymentView(
        namespace=meta.namespace, name=meta.name, uid=meta.uid or "",
        resource_version=meta.resource_version or "", generation=int(meta.generation or 0),
        replicas=1 if spec.replicas is None else int(spec.replicas),  # the API's default
        ready=int(status.ready_replicas or 0) if status else 0,
        available=int(status.available_replicas or 0) if status else 0,
        updated=int(status.updated_replicas or 0) if status else 0,
        gpus_per_pod=pod_gpus(template.spec, gpu_resource), gpu_resource=gpu_resource,
        paused=bool(spec.paused), selector=_selector(spec.selector),
        annotations=dict(meta.annotations or {}),
        restarted_at=template_annotations.get(RESTARTED_AT))


def read(api: KubeApi, what: str, namespace: str, name: str, gpu_resource: str) -> DeploymentView:
    return view(api.call(what, api.apps.read_namespaced_deployment, name, namespace),
                gpu_resource)
