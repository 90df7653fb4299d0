"""After a runbook step's action ran: the scheduled `verify` and what `on_fail` says to do."""

from __future__ import annotations

import logging
import operator
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from agents.runbooks.context import AlertContext
from agents.runbooks.schema import Runbook, Step, Verify, parse_duration
from agents.runbooks.templates import build_context, render_args
from agents.specialist_names import RUNBOOK_EXECUTOR
from agents.specialists.deps import GraphDeps
from agents.specialists.runbook_executor import not_configured, propose_write
from core.models import Action, Alert, AuditEvent
from core.timeutil import utcnow
from guardrails import audit
from tools.base import WriteTool

log = logging.getLogger("metaops.verification")
AGENT = audit.Actor("agent", RUNBOOK_EXECUTOR, "scheduler")
_OPS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge, "==": operator.eq}
VERIFY_EVENTS = ("verify.passed", "verify.failed")


@dataclass(frozen=True, slots=True)
class StepRef:
    runbook: Runbook
    step: Step


def step_of(action: Action, runbooks: list[Runbook]) -> StepRef | None:
    """The runbook step that proposed `action` (its source is `runbook:<name>/<step>`)."""
    source = action.source or ""
    if not source.startswith("runbook:") or "/" not in source:
        return None
    name, _, step_id = source.removeprefix("runbook:").partition("/")
    for runbook in runbooks:
        if runbook.name == name:
            return next((StepRef(runbook, s) for s in runbook.steps if s.id == step_id), None)
    return None


def needs_check(ref: StepRef | None) -> bool:
    return ref is not None and ref.step.verify is not None


def delay(ref: StepRef) -> timedelta:
    return parse_duration(ref.step.wait) if ref.step.wait else timedelta(0)


@dataclass(frozen=True, slots=True)
class Outcome:
    passed: bool
    value: float | None
    reason: str


async def _alert(deps: GraphDeps, incident_id: int | None) -> AlertContext:
    if incident_id is None:
        return AlertContext(name="unknown")
    async with deps.db.read() as session:
        row = (await session.scalars(select(Alert).where(Alert.incident_id == incident_id)
                                     .order_by(Alert.id).limit(1))).first()
    return AlertContext.of(row) if row is not None else AlertContext(name="unknown")


async def measure(deps: GraphDeps, ref: StepRef, verify: Verify, alert: AlertContext) -> Outcome:
    """Evaluate the condition now. A value that cannot be read counts as a failed check: an
    unverifiable change is not a verified one."""
    context = build_context(ref.runbook, alert)
    if verify.promql is not None:
        probe = ref.step.model_copy(update={"args": {"promql": verify.promql}})
        query = str(render_args(ref.runbook, probe, context)["promql"])
        result = await deps.read("metrics.query", {"query": query})
        if result is None:
            return Outcome(False, None, not_configured("metrics.query"))
        values = [p for s in result.data.get("series", []) for p in _values(s)]
        if result.status != "ok" or not values:
            return Outcome(False, None, f"no value for {query}: {result.error or 'no series'}")
        value = max(values)
        what = query
    else:
        assert verify.logs is not None
        check = verify.logs
        now = utcnow()
        args: dict[str, Any] = {"field": "level", "start": now - parse_duration(check.window),
                                "end": now}
        if check.contains:
            probe = ref.step.model_copy(update={"args": {"contains": check.contains}})
            args["contains"] = str(render_args(ref.runbook, probe, context)["contains"])
        if check.levels:
            args["levels"] = check.levels
        if check.services:
            args["services"] = check.services
        result = await deps.read("logs.count_by", args)
        if result is None:
            return Outcome(False, None, not_configured("logs.count_by"))
        if result.status == "error":
            return Outcome(False, None, f"log count failed: {result.error}")
        value = float(result.data.get("total", 0))
        matching = check.model_dump(exclude_none=True)
        what = f"log lines in the last {check.window} matching {matching}"
    passed = _OPS[verify.op](value, verify.threshold)
    return Outcome(passed, value, f"{what} = {value:g}, want {verify.op} {verify.threshold:g}")


def _values(series: dict[str, Any]) -> list[float]:
    points = series.get("points") or ([series["value"]] if "value" in series else [])
    out = []
    for point in points:
        raw = point[-1] if isinstance(point, list | tuple) else point
        if isinstance(raw, int | float) and not isinstance(raw, bool):
            out.append(float(raw))
    return out


async def verify_action(deps: GraphDeps, runbooks: list[Runbook], action_id: str) -> str | None:
    """The scheduled check of one executed action: audit the outcome, then escalate, propose
    the inverse, or go on. Returns the outcome ("passed", "failed") or None if not checkable.
    Runs at most once per action: a recorded outcome ends it (a job fired twice is harmless)."""
    async with deps.db.read() as session:
        action = await session.get(Action, action_id)
        if action is None or action.status != "succeeded":
            return None
        done = (await session.scalars(select(AuditEvent.seq).where(
            AuditEvent.action_id == action_id, AuditEvent.type.in_(VERIFY_EVENTS)))).first()
    ref = step_of(action, runbooks)
    if done is not None or ref is None or ref.step.verify is None:
        return None
    outcome = await measure(deps, ref, ref.step.verify, await _alert(deps, action.incident_id))
    event = "verify.passed" if outcome.passed else "verify.failed"
    async with deps.db.write() as session:
        await audit.append(session, type=event, actor=AGENT, incident_id=action.incident_id,
                           action_id=action_id, target=f"runbook:{ref.runbook.name}/{ref.step.id}",
                           outcome="passed" if outcome.passed else "failed",
                           payload={"value": outcome.value, "reason": outcome.reason,
                                    "on_fail": ref.step.on_fail})
    if not outcome.passed:
        await _on_fail(deps, action, ref, outcome)
    return "passed" if outcome.passed else "failed"


async def _on_fail(deps: GraphDeps, action: Action, ref: StepRef, outcome: Outcome) -> None:
    if ref.step.on_fail == "continue":
        return
    if ref.step.on_fail == "rollback" and action.inverse:
        tool_name = str(action.inverse["tool"])
        if tool_name in deps.registry.names():
            tool = deps.registry.get(tool_name)
            assert isinstance(tool, WriteTool)
            args = tool.spec.args.model_validate(action.inverse["args"])
            # The inverse is a change like any other: through policy and human approval.
            await propose_write(deps, action.incident_id, tool, args,
                                f"{action.id}:rollback", AGENT,
                                requested_by=f"runbook:{ref.runbook.name}",
                                source=f"rollback:{action.id}", tighten=ref.step.policy)
            return
    escalation = ref.runbook.escalation
    async with deps.db.write() as session:
        await audit.append(session, type="incident.escalated", actor=AGENT,
                           incident_id=action.incident_id, action_id=action.id,
                           target=f"runbook:{ref.runbook.name}/{ref.step.id}", outcome="escalated",
                           payload={"to": escalation.to, "message": escalation.message,
                                    "reason": outcome.reason,
                                    "rollback_unavailable": ref.step.on_fail == "rollback"})
