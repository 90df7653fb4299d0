"""The READ tools: one Deployment (replicas, readiness, GPUs), pods, and events of a namespace."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from tools.base import Effect, ToolResult, ToolSpec
from tools.kube import deployments
from tools.kube.args import DeploymentArgs, GetEventsArgs, ListPodsArgs, coerce
from tools.kube.client import KubeClient
from tools.kube.errors import KubeError

R = TypeVar("R", bound=BaseModel)
EVENT_PAGE = 500  # events are listed by name; newest-first needs the whole page sorted


def _more(meta: Any) -> bool:
    """Whether a list response was cut short (client 37 calls the field var_continue)."""
    if meta is None:
        return False
    return bool(getattr(meta, "var_continue", None) or getattr(meta, "_continue", None))


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


class _ReadTool(Generic[R]):
    spec: ToolSpec
    args_model: type[R]

    def __init__(self, client: KubeClient) -> None:
        self.client = client

    def run(self, args: BaseModel) -> ToolResult:
        try:
            parsed = coerce(self.args_model, args)
        except ValidationError as exc:
            return ToolResult.fail(f"{self.spec.name}: invalid arguments: {exc}")
        try:
            return self._run(parsed)
        except KubeError as exc:
            return ToolResult.fail(exc.message, **exc.details)

    def _run(self, args: R) -> ToolResult:
        raise NotImplementedError


class GetDeployment(_ReadTool[DeploymentArgs]):
    spec = ToolSpec("kube.get_deployment",
                    "One Deployment: desired, ready and available replicas, resourceVersion, "
                    "GPUs per pod and in total (replicas × GPUs per pod).",
                    DeploymentArgs, Effect.READ)
    args_model = DeploymentArgs

    def _run(self, args: DeploymentArgs) -> ToolResult:
        target = deployments.read(self.client.reader, self.spec.name, args.namespace, args.name,
                                  self.client.gpu_resource)
        return ToolResult.ok(**target.describe())


class ListPods(_ReadTool[ListPodsArgs]):
    spec = ToolSpec("kube.list_pods",
                    "Pods of a namespace (optionally by label selector): phase, readiness, "
                    "restarts, node.", ListPodsArgs, Effect.READ)
    args_model = ListPodsArgs

    def _run(self, args: ListPodsArgs) -> ToolResult:
        api = self.client.reader
        found = api.call(self.spec.name, api.core.list_namespaced_pod, args.namespace,
                         label_selector=args.label_selector, limit=args.limit)
        rows = []
        for pod in found.items or []:
            statuses = (pod.status.container_statuses if pod.status else None) or []
            rows.append({"name": pod.metadata.name,
                         "phase": pod.status.phase if pod.status else None,
                         "ready": bool(statuses) and all(s.ready for s in statuses),
                         "restarts": sum(int(s.restart_count or 0) for s in statuses),
                         "node": pod.spec.node_name if pod.spec else None})
        query = {"namespace": args.namespace, "label_selector": args.label_selector}
        if not rows:
            return ToolResult("no_data", {**query, "pods": []},
                              f"no pods in {args.namespace}"
                              + (f" match {args.label_selector}" if args.label_selector else ""))
        return ToolResult.ok(**query, pods=rows, truncated=_more(found.metadata),
                             ready=sum(1 for r in rows if r["ready"]))


class GetEvents(_ReadTool[GetEventsArgs]):
    spec = ToolSpec("kube.get_events",
                    "Recent events of a namespace, newest first (optionally of one object, or "
                    "warnings only): type, reason, message, count, last seen, object.",
                    GetEventsArgs, Effect.READ)
    args_model = GetEventsArgs

    def _run(self, args: GetEventsArgs) -> ToolResult:
        fields = []
        if args.involved_object:
            fields.append(f"involvedObject.name={args.involved_object}")
        if args.warnings_only:
            fields.append("type=Warning")
        api = self.client.reader
        found = api.call(self.spec.name, api.core.list_namespaced_event, args.namespace,
                         field_selector=",".join(fields) or None, limit=EVENT_PAGE)
        timed = sorted((self._row(e) for e in found.items or []),
                       key=lambda pair: pair[0].timestamp() if pair[0] else 0.0, reverse=True)
        rows = [row for _, row in timed]
        query = {"namespace": args.namespace, "involved_object": args.involved_object,
                 "warnings_only": args.warnings_only}
        if not rows:
            return ToolResult("no_data", {**query, "events": []},
                              f"no events in {args.namespace} for field selector "
                              f"{','.join(fields) or '(none)'}")
        return ToolResult.ok(**query, events=rows[:args.limit],
                             truncated=len(rows) > args.limit or _more(found.metadata))

    @staticmethod
    def _row(event: Any) -> tuple[datetime | None, dict[str, Any]]:
        series = event.series
        last = (event.last_timestamp or (series.last_observed_time if series else None)
                or event.event_time or event.metadata.creation_timestamp)
        obj = event.involved_object
        return last, {"type": event.type, "reason": event.reason, "message": event.message,
                "count": event.count or (series.count if series else None) or 1,
                "last_seen": _iso(last),
                "object": f"{obj.kind}/{obj.name}" if obj is not None else None}
