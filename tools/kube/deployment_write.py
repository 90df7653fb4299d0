"""The write path every Deployment tool shares: read, dry run, stale check, one marked patch."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from tools.base import Preview, ToolResult, ToolSpec
from tools.kube import deployments, marks
from tools.kube.args import DeploymentArgs, coerce
from tools.kube.client import KubeApi, KubeClient
from tools.kube.deployments import DeploymentView
from tools.kube.errors import KubeApiError, KubeError, KubeRefused

MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
D = TypeVar("D", bound=DeploymentArgs)


def one_line(what: str, value: str) -> str:
    text = value.strip()
    if not text or len(text) > 500 or any(c in text for c in "\r\n\x00"):
        raise KubeRefused(f"{what} must be one non-empty line of at most 500 characters, "
                          f"not {value!r}")
    return text


def checked_approvers(approved_by: list[str]) -> list[str]:
    approvers = list(dict.fromkeys(one_line("approver", a) for a in approved_by))
    if not approvers:
        raise KubeRefused("no approver given; every change needs at least one")
    return approvers


class DeploymentWriteTool(Generic[D]):
    """Subclasses give the patch body (`body`), its words (`plan`) and the undo (`undo`).

    preview(): reads the deployment, then sends the same patch with dryRun=All, so admission,
    RBAC and validation answer before anyone is asked to approve; a refusal raises KubeError
    with the API's Status message. snapshot(): the deployment's uid and generation.
    execute(): re-reads; `already_applied` if the deployment carries the action id, `stale:`
    if its spec moved since the snapshot, else ONE patch of the Deployment that carries the
    change and the action marks (marks.py) with the resourceVersion just read as precondition:
    a concurrent writer makes it 409, reported as `stale:`. The Deployment is patched rather
    than its scale subresource because only the object itself can take the marks in the same
    atomic write, which is what lets reconcile() tell after a crash whether it happened.
    """

    spec: ToolSpec
    args_model: type[D]
    content_type = MERGE_PATCH

    def __init__(self, client: KubeClient) -> None:
        self.client = client

    # -- what subclasses provide ---------------------------------------------------------------

    def body(self, args: D, target: DeploymentView, metadata: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def plan(self, args: D, target: DeploymentView, notes: list[str]) -> Preview:
        raise NotImplementedError

    def undo(self, args: D, before: Preview) -> tuple[str, dict[str, Any]] | None:
        raise NotImplementedError

    def notes(self, api: KubeApi, target: DeploymentView) -> list[str]:
        """Caveats for the approver (e.g. an autoscaler that will undo the change)."""
        return []

    def done(self, args: D, before: DeploymentView, after: DeploymentView) -> dict[str, Any]:
        return {}

    # -- helpers -------------------------------------------------------------------------------

    def _read(self, api: KubeApi, args: DeploymentArgs) -> DeploymentView:
        return deployments.read(api, self.spec.name, args.namespace, args.name,
                                self.client.gpu_resource)

    def _patch(self, api: KubeApi, args: D, target: DeploymentView, metadata: dict[str, Any],
               *, dry_run: bool) -> Any:
        what = f"{self.spec.name}: dry run" if dry_run else self.spec.name
        return api.call(what, api.apps.patch_namespaced_deployment, args.name,
                        args.namespace, self.body(args, target, metadata),
                        dry_run="All" if dry_run else None,
                        field_manager=self.client.field_manager,
                        _content_type=self.content_type)

    # -- the WriteTool protocol ----------------------------------------------------------------

    def preview(self, args: BaseModel) -> Preview:
        parsed = coerce(self.args_model, args)
        api = self.client.reader
        target = self._read(api, parsed)
        self._patch(api, parsed, target, {"resourceVersion": target.resource_version},
                    dry_run=True)
        return self.plan(parsed, target, self.notes(api, target))

    def snapshot(self, args: BaseModel) -> str:
        parsed = coerce(self.args_model, args)
        return self._read(self.client.reader, parsed).spec_version

    def inverse(self, args: BaseModel, before: Preview) -> tuple[str, dict[str, Any]] | None:
        return self.undo(coerce(self.args_model, args), before)

    def reconcile(self, action_id: str) -> bool | None:
        return marks.find(self.client, action_id)

    def execute(self, args: BaseModel, *, action_id: str, approved_by: list[str],
                snapshot: str) -> ToolResult:
        name = self.spec.name
        try:
            parsed = coerce(self.args_model, args)
            action_id = one_line("action_id", action_id)
            approvers = checked_approvers(approved_by)
        except ValidationError as exc:
            return ToolResult.fail(f"{name}: invalid arguments: {exc}")
        except KubeRefused as exc:
            return ToolResult.fail(f"{name}: {exc.message}")
        with self.client.writer(action_id) as api:
            try:
                return self._apply(api, parsed, action_id, approvers, snapshot)
            except KubeError as exc:
                return ToolResult.fail(exc.message, action_id=action_id, **exc.details)

    def _apply(self, api: KubeApi, args: D, action_id: str, approvers: list[str],
               snapshot: str) -> ToolResult:
        target = self._read(api, args)
        if marks.applied(target, action_id):
            return self._already(target, action_id)
        if target.spec_version != snapshot:
            return ToolResult.fail(
                f"stale: {target.ref} changed since the proposal (snapshot {snapshot!r}, now "
                f"{target.spec_version!r}; replicas now {target.replicas}); a fresh proposal "
                "is needed", snapshot=snapshot, current=target.spec_version,
                replicas=target.replicas, action_id=action_id)
        try:
            result = self._patch(api, args, target,
                                 marks.metadata(target, action_id, approvers), dry_run=False)
        except KubeApiError as exc:
            if not exc.conflict:
                raise
            again = self._read(api, args)
            if marks.applied(again, action_id):  # our own earlier attempt got through
                return self._already(again, action_id)
            return ToolResult.fail(
                f"stale: {target.ref} changed while the change was being applied "
                f"({exc.api_message}); a fresh proposal is needed",
                snapshot=snapshot, current=again.spec_version, replicas=again.replicas,
                action_id=action_id)
        after = deployments.view(result, self.client.gpu_resource)
        return ToolResult.ok(already_applied=False, namespace=target.namespace,
                             name=target.name, action_id=action_id, approved_by=approvers,
                             resourceVersion=after.resource_version,
                             **self.done(args, target, after))

    def _already(self, target: DeploymentView, action_id: str) -> ToolResult:
        return ToolResult.ok(already_applied=True, namespace=target.namespace, name=target.name,
                             action_id=action_id, replicas=target.replicas,
                             resourceVersion=target.resource_version)
