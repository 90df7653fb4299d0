"""What chat commands run in the agents layer: log and cost reads, proposals through the gate."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError

from agents.chat.grammar import Proposal, RollbackPrompt
from agents.specialists.cost_investigator import runaway_reasons
from agents.specialists.deps import GraphDeps
from agents.specialists.runbook_executor import not_configured, propose_write
from core.errors import NotFound, Unavailable, ValidationFailed
from core.models import Incident
from core.timeutil import iso, utcnow
from guardrails import audit
from guardrails.redaction import redact, redact_text
from guardrails.tokens import Principal
from tools.base import ToolResult, WriteTool
from tools.logs.mining import label

__all__ = ["chat_action_id", "previous_version", "propose", "read_cost", "read_logs"]

LOGS_TOOL = "logs.patterns"
COST_TOOL = "metrics.cost_report"
VERSIONS_TOOL = "gitops.list_prompt_versions"
_MAX_VERSIONS = 500  # ListPromptVersionsArgs' own maximum


def _window(window: timedelta) -> tuple[datetime, datetime]:
    end = utcnow()
    return end - window, end


def _window_dict(start: datetime, end: datetime) -> dict[str, str]:
    return {"start": iso(start), "end": iso(end)}


def _fields(exc: ValidationError) -> list[dict[str, str]]:
    return [{"field": ".".join(str(p) for p in err["loc"]) or "args", "problem": err["msg"]}
            for err in exc.errors()[:10]]


async def _read(deps: GraphDeps, tool: str, args: dict[str, Any]) -> ToolResult:
    """A READ tool's result (ok or no_data); a missing tool or a failed read is a typed error,
    never the tool's own exception."""
    try:
        result = await deps.read(tool, args)
    except ValidationError as exc:
        fields = _fields(exc)
        raise ValidationFailed(f"{tool}: {fields[0]['field']}: {fields[0]['problem']}",
                               {"fields": fields}) from None
    if result is None:
        raise NotFound(not_configured(tool), {"field": "tool", "tool": tool})
    if result.status == "error":
        # The error names the query and the upstream message: redacted, it is shown in a channel.
        raise Unavailable(redact_text(f"{tool} failed: {result.error}")[0], {"tool": tool})
    return result


async def read_logs(deps: GraphDeps, service: str, window: timedelta) -> dict[str, Any]:
    """`service`'s error and warning patterns over [now - window, now], redacted (the tool
    returns raw log text); each pattern gets a short `label`."""
    start, end = _window(window)
    result = await _read(deps, LOGS_TOOL, {"start": start, "end": end, "services": [service],
                                           "top": deps.config.top})
    data: dict[str, Any] = redact(result.data).value
    for pattern in data.get("patterns") or []:
        pattern["label"] = label(str(pattern.get("template", "")))
    return {**data, "status": result.status, "service": service,
            "window": _window_dict(start, end)}


async def read_cost(deps: GraphDeps, window: timedelta) -> dict[str, Any]:
    """LLM spend over [now - window, now] with the budget and the users that look like runaway
    loops (the cost investigator's rule); redacted, since user ids can be e-mail addresses."""
    start, end = _window(window)
    result = await _read(deps, COST_TOOL, {"start": start, "end": end, "top": deps.config.top})
    runaway = []
    for user in result.data.get("user_activity") or []:
        reasons = runaway_reasons(user, deps.config)
        if reasons:
            runaway.append({"user_id": user.get("user_id"), "cost_usd": user.get("cost_usd"),
                            "reasons": reasons})
    data: dict[str, Any] = redact({
        **result.data, "status": result.status, "runaway_users": runaway,
        "budget_usd_per_hour": deps.config.budget_usd_per_hour}).value
    data["window"] = _window_dict(start, end)  # replaces the tool's, which adds `seconds`
    return data


def chat_action_id(incident_id: int | None) -> str:
    """A fresh id in the shape runbook ids have (`incident-<id>:<source>:<what>`), so an
    incident's actions still share its prefix."""
    token = uuid.uuid4().hex
    return f"chat-{token}" if incident_id is None else f"incident-{incident_id}:chat:{token}"


async def previous_version(deps: GraphDeps, path: str) -> str:
    """The commit of the version of `path` before the current one (newest first, skipping
    commits that deleted the file); ValidationFailed when there is none."""
    result = await _read(deps, VERSIONS_TOOL, {"path": path, "limit": _MAX_VERSIONS})
    versions: list[dict[str, Any]] = result.data.get("versions") or []
    if result.status == "no_data" or not versions:
        raise ValidationFailed(f"{path} has no history in the GitOps repository",
                               {"field": "path"})
    current = result.data.get("current")
    at = 0
    if isinstance(current, dict):
        at = next((i + 1 for i, v in enumerate(versions) if v.get("commit") ==
                   current.get("commit")), len(versions))
    earlier = [v for v in versions[at:] if not v.get("deleted")]
    if not earlier:
        shown = f"v{current['version']}" if isinstance(current, dict) else "the current one"
        raise ValidationFailed(
            f"{path} has no version before {shown}; name one with "
            "`rollback prompt NAME to COMMIT`", {"field": "to_commit"})
    return str(earlier[0]["commit"])


async def propose(deps: GraphDeps, proposal: Proposal, principal: Principal, via: audit.Via,
                  incident_id: int | None) -> str:
    """A change asked for in chat, through the same gate as a runbook's writes (preview,
    snapshot, inverse, policy, proposal row); the asker is its requester, so separation of
    duties keeps them from approving it. Returns the new action's id."""
    if proposal.tool not in deps.registry.names():
        raise NotFound(not_configured(proposal.tool), {"field": "tool", "tool": proposal.tool})
    tool = deps.registry.get(proposal.tool)
    if not isinstance(tool, WriteTool):
        raise TypeError(f"{proposal.tool} is not a write tool")
    if incident_id is not None:
        async with deps.db.read() as session:
            if await session.get(Incident, incident_id) is None:
                raise NotFound(f"no incident {incident_id}", {"field": "incident_id"})
    values = proposal.args
    if isinstance(proposal, RollbackPrompt) and not proposal.complete:
        values = {**values, "to_commit": await previous_version(deps, proposal.path)}
    try:
        args = tool.spec.args.model_validate(values)
    except ValidationError as exc:
        fields = _fields(exc)
        raise ValidationFailed(f"{proposal.name}: {fields[0]['field']}: {fields[0]['problem']}",
                               {"fields": fields}) from None
    action_id = chat_action_id(incident_id)
    await propose_write(deps, incident_id, tool, args, action_id,
                        audit.Actor("human", principal.name, via),
                        requested_by=principal.name, source=f"chat:{via}")
    return action_id
