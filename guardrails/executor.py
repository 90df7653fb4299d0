"""Exactly-once execution: re-check, claim the idempotency key, run the tool once, audit."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core.database import Database, execute_count, insert_for
from core.models import Action, ActionClaim, Control
from core.telemetry import incident_attributes, start_span, tracer
from core.timeutil import utcnow
from guardrails import audit
from guardrails.actions import approvers, params_hash
from tools.base import ToolResult, WriteTool
from tools.registry import ToolRegistry

if TYPE_CHECKING:
    from opentelemetry.trace import TracerProvider

log = logging.getLogger("metaops.executor")
KILL_SWITCH = "kill_switch"
_NODE = f"{socket.gethostname()}:{os.getpid()}"

# Test hook (honoured only with METAOPS_ENV=test): die at this point of an execution.
CrashHook = Callable[[str], None]


async def kill_switch_on(session: AsyncSession) -> bool:
    row = await session.get(Control, KILL_SWITCH)
    return bool(row and row.value.get("on"))


async def set_kill_switch(session: AsyncSession, on: bool, actor: audit.Actor) -> None:
    row = await session.get(Control, KILL_SWITCH)
    if row is None:
        session.add(Control(key=KILL_SWITCH, value={"on": on}, updated_by=actor.id))
    else:
        row.value, row.updated_by, row.updated_at = {"on": on}, actor.id, utcnow()
    await audit.append(session, type="killswitch.on" if on else "killswitch.off", actor=actor,
                       target="kill_switch", outcome="on" if on else "off", payload={}, flush=True)


def _subject(action: Action) -> dict[str, Any]:
    return {"incident_id": action.incident_id, "action_id": action.id, "target": action.tool}


async def _finish(session: AsyncSession, action: Action, status: str, event: str,
                  payload: dict[str, Any], old: str, error: str | None = None,
                  result: dict[str, Any] | None = None) -> bool:
    changed = bool(await execute_count(session, update(Action).where(
        Action.id == action.id, Action.status == old).values(
            status=status, error=error, result=result, updated_at=utcnow(),
            executed_at=utcnow() if status in ("succeeded", "failed") else None)))
    if changed:
        await audit.append(session, type=event, actor=audit.Actor("agent", "executor", "system"),
                           outcome=status, payload=payload, **_subject(action))
    return changed


class Executor:
    """Runs approved actions. Safe to call from many places and replicas at once."""

    def __init__(self, db: Database, registry: ToolRegistry,
                 crash_hook: CrashHook | None = None,
                 on_succeeded: Callable[[str], Awaitable[None]] | None = None,
                 tracer_provider: TracerProvider | None = None) -> None:
        self._db = db
        self._tracer = tracer("metaops.tools", tracer_provider)  # None: the global provider
        self._registry = registry
        self._crash = crash_hook or (lambda _point: None)
        # Told the id of every action this executor saw succeed (e.g. to schedule its check).
        self._on_succeeded = on_succeeded

    def _tool(self, name: str) -> WriteTool:
        tool = self._registry.get(name)
        if not isinstance(tool, WriteTool):
            raise TypeError(f"{name} is not a write tool")
        return tool

    async def execute(self, action_id: str) -> str:
        """Execute `action_id` if it is approved; returns the status it ends in (or 'held')."""
        async with self._db.write() as session:
            action = await session.scalar(
                select(Action).where(Action.id == action_id).with_for_update())
            if action is None or action.status != "approved":
                return action.status if action else "missing"
            if await kill_switch_on(session):
                await audit.append(session, type="execution.held",
                                   actor=audit.Actor("agent", "executor", "system"),
                                   outcome="held", payload={"reason": "kill switch is on"},
                                   **_subject(action))
                return "held"
            if params_hash(action.tool, action.args) != action.params_hash:
                await _finish(session, action, "failed", "action.refused",
                              {"reason": "params changed after approval"}, "approved",
                              error="refused: params changed after approval")
                return "failed"
            tool = self._tool(action.tool)
            args = tool.spec.args.model_validate(action.args)
            try:
                current = await asyncio.to_thread(tool.snapshot, args)
            except Exception as exc:
                # The target can't be read: leave it approved, so a later attempt may run it.
                log.warning("snapshot of %s failed: %s", action.id, exc.__class__.__name__)
                await audit.append(session, type="execution.deferred",
                                   actor=audit.Actor("agent", "executor", "system"),
                                   outcome="deferred",
                                   payload={"reason": f"cannot read the target: {exc}"[:500]},
                                   **_subject(action))
                return "approved"
            if action.snapshot is not None and current != action.snapshot:
                await _finish(session, action, "stale", "action.stale",
                              {"reason": "target changed since the proposal",
                               "proposed_on": action.snapshot, "now": current}, "approved",
                              error="stale: the target changed after the proposal; propose again")
                return "stale"
            claimed = await execute_count(session, _claim_stmt(session, action.id))
            if not claimed:
                return "executing"  # someone else holds the idempotency key
            approved_by = await approvers(session, action.id) or [
                f"policy:{action.decision.get('rule')}"]
            await _finish(session, action, "executing", "action.executing",
                          {"approved_by": approved_by}, "approved")
        # The claim and the `executing` event are committed before the tool runs.
        self._crash("before_tool")
        with start_span(self._tracer, f"tool {action.tool}", attributes={
                "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": action.tool,
                "metaops.tool.effect": action.effect, "metaops.action_id": action.id,
                **incident_attributes(action.incident_id)}) as span:
            try:
                result = await asyncio.to_thread(
                    tool.execute, args, action_id=action.id, approved_by=approved_by,
                    snapshot=action.snapshot or current)
            except Exception as exc:
                log.exception("tool %s raised", action.tool)
                result = ToolResult.fail(f"{exc.__class__.__name__}: {exc}")
            span.set_attribute("metaops.tool.status", result.status)
        self._crash("after_tool")
        return await self._record(action, result)

    async def _record(self, action: Action, result: ToolResult) -> str:
        if result.status == "ok":
            status, event = "succeeded", "action.succeeded"
        elif (result.error or "").startswith("stale"):
            status, event = "stale", "action.stale"
        else:
            status, event = "failed", "action.failed"
        async with self._db.write() as session:
            changed = await _finish(session, action, status, event,
                                    {"result": result.data, "error": result.error}, "executing",
                                    error=result.error, result=result.data)
        if changed and status == "succeeded" and self._on_succeeded is not None:
            try:
                await self._on_succeeded(action.id)
            except Exception:  # the change is done and audited; a hook never undoes that
                log.exception("after-success hook failed for %s", action.id)
        return status

    async def reconcile(self) -> list[tuple[str, str]]:
        """After a crash: settle actions left `executing` from the tool's own record."""
        async with self._db.read() as session:
            stuck = list(await session.scalars(select(Action).where(
                Action.status == "executing")))
        settled = []
        for action in stuck:
            tool = self._tool(action.tool)
            applied = await asyncio.to_thread(tool.reconcile, action.id)
            if applied:
                outcome = ToolResult.ok(reconciled=True)
            else:
                outcome = ToolResult.fail(
                    "interrupted before the change was made; not re-run (propose again)"
                    if applied is False else "interrupted; outcome unknown, check the target",
                    reconciled=True)
            settled.append((action.id, await self._record(action, outcome)))
        return settled

    async def run_approved(self) -> list[tuple[str, str]]:
        """Execute every approved action (after the kill switch is lifted, or a restart)."""
        async with self._db.read() as session:
            ids = list(await session.scalars(
                select(Action.id).where(Action.status == "approved").order_by(Action.created_at)))
        return [(i, await self.execute(i)) for i in ids]


def _claim_stmt(session: AsyncSession, action_id: str) -> Any:
    return insert_for(session, ActionClaim).values(
        action_id=action_id, claimed_by=_NODE, claimed_at=utcnow()).on_conflict_do_nothing()
