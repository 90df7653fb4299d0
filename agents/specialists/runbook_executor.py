"""Runs a runbook's steps for an incident: reads run at once, writes become gated proposals."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from agents.runbooks.context import AlertContext
from agents.runbooks.matcher import render_step
from agents.runbooks.schema import Runbook
from agents.specialists.deps import GraphDeps
from core.models import Action
from guardrails import audit
from guardrails.actions import Proposal, count_for_incident, count_last_hour, propose
from guardrails.policy import PolicyContext, PolicyOverride
from guardrails.redaction import redact
from tools.base import Effect, Preview, ReadTool, WriteTool
from tools.kube import KUBE_NOT_CONFIGURED

_MAX_FINDING_CHARS = 20_000


def action_id_for(incident_id: int, runbook: str, step: str) -> str:
    """Deterministic: a node that re-runs after a crash or resume finds its own proposals."""
    return f"incident-{incident_id}:{runbook}:{step}"


_NOT_CONFIGURED = {
    "kube.": KUBE_NOT_CONFIGURED,
    "cache.": "the cache is not configured (set METAOPS_REDIS_URL)",
    "logs.": "no log source is configured (set METAOPS_LOGS_PATH or METAOPS_LOKI_URL)",
    "metrics.": "no metrics source is configured (set METAOPS_PROMETHEUS_URL or "
                "METAOPS_LOGS_PATH)",
}


def not_configured(tool: str) -> str:
    why = next((text for prefix, text in _NOT_CONFIGURED.items() if tool.startswith(prefix)),
               "no such tool")
    return f"{tool} is not available here: {why}"


def small(data: dict[str, Any]) -> dict[str, Any]:
    """Data as kept in graph state: redacted (tool output can carry log lines and user text)
    and bounded in size."""
    data = redact(data).value
    text = audit.canonical_json(data)
    return data if len(text) <= _MAX_FINDING_CHARS else {"truncated": text[:_MAX_FINDING_CHARS]}


@dataclass
class RunbookRun:
    runbook: str
    steps: dict[str, Any] = field(default_factory=dict)  # READ step id -> its (redacted) data
    proposals: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


async def run_runbook(deps: GraphDeps, incident_id: int, runbook: Runbook, alert: AlertContext,
                      specialist_findings: Mapping[str, Any], actor: audit.Actor) -> RunbookRun:
    """Every step in order; templates see `findings.<step id>` of earlier READ steps and
    `findings.<specialist>` of the specialists that ran before. Each step leaves a
    `runbook.step` event (read, proposed, skipped or failed), then `runbook.completed`."""
    run = RunbookRun(runbook.name)
    context: dict[str, Any] = dict(specialist_findings)
    trail: list[dict[str, Any]] = []
    for step in runbook.steps:
        entry: dict[str, Any] = {"step": step.id, "tool": step.tool}
        trail.append(entry)
        try:
            planned = render_step(runbook, step, alert, context)
            if planned is None:
                entry["outcome"] = "skipped"
                continue
            if step.tool not in deps.registry.names():
                # Said plainly in the timeline; no proposal is made for what cannot run here.
                raise LookupError(not_configured(step.tool))
            tool = deps.registry.get(step.tool)
            args = tool.spec.args.model_validate(planned.args)
            if tool.spec.effect is Effect.READ:
                assert isinstance(tool, ReadTool)
                result = await deps.run_read(tool, args)
                context[step.id] = run.steps[step.id] = small(
                    result.data if result.status == "ok" else {"error": result.error})
                entry["outcome"] = "read" if result.status != "error" else "read_error"
                continue
            assert isinstance(tool, WriteTool)
            action_id = action_id_for(incident_id, runbook.name, step.id)
            await propose_write(deps, incident_id, tool, args, action_id, actor,
                                requested_by=f"runbook:{runbook.name}",
                                source=f"runbook:{runbook.name}/{step.id}", tighten=step.policy)
            run.proposals.append(action_id)
            entry.update(outcome="proposed", action_id=action_id)
        except LookupError as exc:
            run.failed[step.id] = str(exc.args[0])
            entry.update(outcome="failed", error=run.failed[step.id])
        except Exception as exc:
            # One broken step (unknown flag, git error, a template) must not sink the rest.
            run.failed[step.id] = f"{exc.__class__.__name__}: {exc}"[:500]
            entry.update(outcome="failed", error=run.failed[step.id])
    async with deps.db.write() as session:
        for entry in trail:
            await audit.append(session, type="runbook.step", actor=actor,
                               incident_id=incident_id, action_id=entry.get("action_id"),
                               target=f"runbook:{runbook.name}/{entry['step']}",
                               outcome=entry["outcome"], payload=entry)
        await audit.append(session, type="runbook.completed", actor=actor,
                           incident_id=incident_id, target=f"runbook:{runbook.name}",
                           outcome="failed_steps" if run.failed else "ok",
                           payload={"proposals": run.proposals, "read_steps": sorted(run.steps),
                                    "failed_steps": run.failed})
    return run


async def propose_write(deps: GraphDeps, incident_id: int | None, tool: WriteTool, args: Any,
                        action_id: str, actor: audit.Actor, *, requested_by: str, source: str,
                        tighten: PolicyOverride | None = None) -> None:
    """One write through the gate: preview, snapshot, inverse, policy (only ever tightened),
    then the proposal row; a no-op when `action_id` was proposed before. `incident_id` is None
    for a change asked for outside any incident (chat)."""
    async with deps.db.read() as session:
        if await session.get(Action, action_id) is not None:
            return  # proposed before this node re-ran
    # The preview comes first: it reads the target (and dry-runs the change where the API can),
    # and policy needs what it observed, e.g. the GPUs per pod of a deployment being scaled.
    preview = await asyncio.to_thread(tool.preview, args)
    snapshot = await asyncio.to_thread(tool.snapshot, args)
    inverse = await asyncio.to_thread(tool.inverse, args, preview)
    async with deps.db.read() as session:
        ctx = PolicyContext(
            incident_id=None if incident_id is None else str(incident_id), requested_by=None,
            actions_last_hour_for_tool=await count_last_hour(session, tool.spec.name),
            actions_for_incident=await count_for_incident(session, incident_id),
            actions_for_incident_for_tool=await count_for_incident(session, incident_id,
                                                                   tool.spec.name),
            gpus_per_pod=_gpus_per_pod(preview))
    dumped = args.model_dump(exclude_none=True)
    decision = deps.policy.evaluate(tool.spec.name, tool.spec.effect, dumped, ctx)
    if tighten is not None:
        decision = decision.tighten(tighten)
    async with deps.db.write() as session:
        await propose(session, Proposal(
            action_id=action_id, incident_id=incident_id, tool=tool.spec.name,
            effect=tool.spec.effect.value, args=dumped, preview=preview, snapshot=snapshot,
            inverse={"tool": inverse[0], "args": inverse[1]} if inverse else None,
            decision=decision.model_dump(mode="json"), requested_by=requested_by,
            source=source), actor)


def _gpus_per_pod(preview: Preview) -> int | None:
    """GPUs per pod as the tool observed them on the cluster (never from the proposal)."""
    current = preview.current if isinstance(preview.current, dict) else {}
    value = current.get("gpus_per_pod")
    return value if isinstance(value, int) and not isinstance(value, bool) else None
