"""The marks a write leaves on a Deployment (action ids, approvers), and finding them later."""

from __future__ import annotations

import json
from typing import Any

from tools.kube.client import KubeClient
from tools.kube.deployments import DeploymentView
from tools.kube.errors import KubeError

# Set in the same patch as the change, under the resourceVersion precondition, so a mark
# exists exactly when the change was applied.
MARK_LABEL = "metaops.io/acted-on"  # selectable: reconcile lists only marked deployments
LAST_ACTION = "metaops.io/last-action-id"
LAST_APPROVERS = "metaops.io/last-approved-by"
HISTORY = "metaops.io/actions"  # JSON list of the latest action ids, oldest first
HISTORY_SIZE = 20


def history(annotations: dict[str, str]) -> list[str]:
    try:
        found = json.loads(annotations.get(HISTORY) or "[]")
    except ValueError:
        return []
    return [a for a in found if isinstance(a, str)] if isinstance(found, list) else []


def applied(target: DeploymentView, action_id: str) -> bool:
    return (target.annotations.get(LAST_ACTION) == action_id
            or action_id in history(target.annotations))


def metadata(target: DeploymentView, action_id: str, approvers: list[str]) -> dict[str, Any]:
    """Patch metadata: the precondition (the resourceVersion just read) and the marks."""
    ids = [a for a in history(target.annotations) if a != action_id] + [action_id]
    return {"resourceVersion": target.resource_version,
            "labels": {MARK_LABEL: "true"},
            "annotations": {LAST_ACTION: action_id, LAST_APPROVERS: ", ".join(approvers),
                            HISTORY: json.dumps(ids[-HISTORY_SIZE:])}}


def find(client: KubeClient, action_id: str) -> bool | None:
    """True if a marked deployment records `action_id`, False if none does, None if the
    deployments cannot be listed (e.g. no permission to list them cluster-wide)."""
    api, selector, what = client.reader, f"{MARK_LABEL}=true", "kube reconcile"
    try:
        if client.reconcile_namespaces:
            items = [item for ns in client.reconcile_namespaces
                     for item in api.call(what, api.apps.list_namespaced_deployment, ns,
                                          label_selector=selector).items or []]
        else:
            items = api.call(what, api.apps.list_deployment_for_all_namespaces,
                             label_selector=selector).items or []
    except KubeError:
        return None
    for item in items:
        annotations = item.metadata.annotations or {}
        if annotations.get(LAST_ACTION) == action_id or action_id in history(annotations):
            return True
    return False
