"""Action lifecycle and exactly-once execution, on the real database and a real file tool."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, update

from core.database import Database
from core.errors import Conflict, Forbidden
from core.models import Action, AuditEvent
from guardrails import audit
from guardrails.actions import Proposal, decide_and_commit, escalate_due, expire_due, propose
from guardrails.executor import Executor, set_kill_switch
from guardrails.tokens import Principal
from tests.filetool import FileTool, SetKey
from tools.base import Effect
from tools.registry import ToolRegistry

ALICE = Principal("alice", "approver")
BOB = Principal("bob", "approver")
VIEWER = Principal("vic", "viewer")


def _decision(approvals: int = 1, sod: bool = True, expiry: int = 30) -> dict[str, Any]:
    return {"outcome": "require_approval", "rule": "test", "reason": "test rule",
            "required_approvals": approvals, "approver_role": "approver",
            "separation_of_duties": sod, "expiry_minutes": expiry}


async def _propose(db: Database, tool: FileTool, action_id: str = "a1", value: str = "on",
                   requested_by: str = "agent:runbook", **decision: Any) -> Action:
    args = SetKey(key="flag", value=value)
    async with db.write() as s:
        action, _ = await propose(s, Proposal(
            action_id=action_id, incident_id=None, tool=tool.spec.name,
            effect=tool.spec.effect.value, args=args.model_dump(), preview=tool.preview(args),
            snapshot=tool.snapshot(args), inverse=None, decision=_decision(**decision),
            requested_by=requested_by), audit.Actor("agent", "runbook_executor", "system"))
    return action


async def _events(db: Database, type: str) -> int:
    async with db.read() as s:
        return int(await s.scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.type == type)) or 0)


async def _decide(db: Database, *args: Any, **kw: Any) -> Any:
    return await decide_and_commit(db, *args, **kw)


@pytest.fixture
def tool(tmp_path: Path) -> FileTool:
    return FileTool(tmp_path / "state.json")


async def test_50_concurrent_approvals_execute_once(db: Database, db_url: str,
                                                    tool: FileTool) -> None:
    await _propose(db, tool)
    executor = Executor(db, ToolRegistry([tool]))
    # Two engines stand in for two replicas sharing the database.
    other = Database(db_url)
    other_executor = Executor(other, ToolRegistry([tool]))

    async def click(i: int) -> str:
        target, ex = (db, executor) if i % 2 else (other, other_executor)
        try:
            result = await _decide(target, "a1", Principal(f"p{i}", "approver"), "approve", "api")
        except Conflict:
            return "409"
        await ex.execute("a1")
        return "already" if result.already or not result.changed else "approved"

    try:
        outcomes = await asyncio.gather(*(click(i) for i in range(50)))
    finally:
        await other.dispose()
    assert outcomes.count("approved") == 1
    assert set(outcomes) <= {"approved", "already", "409"}
    assert tool.executions == 1
    assert await _events(db, "action.succeeded") == 1
    assert await _events(db, "action.executing") == 1
    assert json.loads(tool.path.read_text())["values"] == {"flag": "on"}


async def test_two_approvals_distinct_people_reject_wins_and_sod(db: Database,
                                                                tool: FileTool) -> None:
    await _propose(db, tool, approvals=2, requested_by="alice")
    with pytest.raises(Forbidden, match="separation of duties"):
        await _decide(db, "a1", ALICE, "approve", "api")
    with pytest.raises(Forbidden, match="needs role approver"):
        await _decide(db, "a1", VIEWER, "approve", "api")
    first = await _decide(db, "a1", BOB, "approve", "api")
    again = await _decide(db, "a1", BOB, "approve", "cli")  # same person, other channel
    assert (first.approvals, first.status) == (1, "pending_approval")
    assert again.already and again.approvals == 1 and again.status == "pending_approval"
    carol = await _decide(db, "a1", Principal("carol", "admin"), "approve", "web")
    assert carol.status == "approved" and carol.changed
    assert await Executor(db, ToolRegistry([tool])).execute("a1") == "succeeded"
    assert json.loads(tool.path.read_text())["approved_by"]["a1"] == ["bob", "carol"]

    await _propose(db, tool, action_id="a2", value="off", approvals=2)
    await _decide(db, "a2", BOB, "approve", "api")
    rejected = await _decide(db, "a2", Principal("dave", "approver"), "reject", "api",
                             reason="not now")
    assert rejected.status == "rejected"
    with pytest.raises(Conflict, match="rejected"):
        await _decide(db, "a2", Principal("erin", "approver"), "approve", "api")
    assert await Executor(db, ToolRegistry([tool])).execute("a2") == "rejected"
    assert tool.executions == 1


async def test_expiry_with_a_frozen_clock(db: Database, tool: FileTool) -> None:
    action = await _propose(db, tool, expiry=30)
    assert action.expires_at is not None
    await _propose(db, tool, action_id="a2")
    with pytest.raises(Conflict, match="expired"):
        await _decide(db, "a1", BOB, "approve", "api",
                      now=action.expires_at + timedelta(seconds=1))
    ok = await _decide(db, "a2", BOB, "approve", "api",
                       now=action.expires_at - timedelta(seconds=1))
    assert ok.status == "approved"
    await _propose(db, tool, action_id="a3")
    async with db.write() as s:
        expired = await expire_due(s, now=action.expires_at + timedelta(minutes=1))
    assert [a.id for a in expired] == ["a3"]  # a1 was already marked expired by the late click
    assert await Executor(db, ToolRegistry([tool])).execute("a3") == "expired"
    assert await _events(db, "action.expired") == 2


async def test_kill_switch_holds_then_releases(db: Database, tool: FileTool) -> None:
    await _propose(db, tool)
    executor = Executor(db, ToolRegistry([tool]))
    admin = audit.Actor("human", "root", "cli")
    async with db.write() as s:
        await set_kill_switch(s, True, admin)
    await _decide(db, "a1", BOB, "approve", "api")
    assert await executor.execute("a1") == "held"
    async with db.read() as s:
        assert (await s.get(Action, "a1")).status == "approved"  # type: ignore[union-attr]
    assert tool.executions == 0 and await _events(db, "execution.held") == 1
    async with db.write() as s:
        await set_kill_switch(s, False, admin)
    assert await executor.run_approved() == [("a1", "succeeded")]
    assert tool.executions == 1


async def test_stale_target_and_changed_params_are_refused(db: Database,
                                                          tool: FileTool) -> None:
    await _propose(db, tool)
    await _decide(db, "a1", BOB, "approve", "api")
    # Someone changes the file after the proposal.
    data = json.loads(tool.path.read_text())
    data["values"]["other"] = "x"
    tool.path.write_text(json.dumps(data))
    assert await Executor(db, ToolRegistry([tool])).execute("a1") == "stale"
    await _propose(db, tool, action_id="a2")
    await _decide(db, "a2", BOB, "approve", "api")
    async with db.write() as s:  # tamper with the approved arguments
        await s.execute(update(Action).where(Action.id == "a2").values(
            args={"key": "flag", "value": "evil"}))
    assert await Executor(db, ToolRegistry([tool])).execute("a2") == "failed"
    assert tool.executions == 0
    async with db.read() as s:
        stale = await s.get(Action, "a1")
        refused = await s.get(Action, "a2")
    assert stale is not None and (stale.error or "").startswith("stale")
    assert refused is not None and "params changed" in (refused.error or "")


async def test_reconcile_settles_executing_actions_without_rerunning(
        db: Database, tool: FileTool, tmp_path: Path) -> None:
    destructive = FileTool(tmp_path / "other.json", Effect.DESTRUCTIVE, "test.other")
    registry = ToolRegistry([tool, destructive])
    await _propose(db, tool, action_id="applied")
    await _propose(db, destructive, action_id="lost")
    for action_id, t in (("applied", tool), ("lost", destructive)):
        await _decide(db, action_id, BOB, "approve", "api")
        async with db.write() as s:
            await s.execute(update(Action).where(Action.id == action_id).values(
                status="executing"))
        if action_id == "applied":  # the crash came after the tool did its work
            t.execute(SetKey(key="flag", value="on"), action_id=action_id,
                      approved_by=["bob"], snapshot=t.snapshot(SetKey(key="flag", value="on")))
    settled = dict(await Executor(db, registry).reconcile())
    assert settled == {"applied": "succeeded", "lost": "failed"}
    assert tool.executions == 1 and destructive.executions == 0


async def test_slow_approvals_escalate_once(db: Database, tool: FileTool) -> None:
    action = await _propose(db, tool)
    async with db.write() as s:
        await s.execute(update(Action).where(Action.id == "a1").values(
            decision={**action.decision, "escalate_after_minutes": 15}))
    async with db.write() as s:
        assert await escalate_due(s, now=action.created_at + timedelta(minutes=14)) == []
    for _ in range(2):
        async with db.write() as s:
            await escalate_due(s, now=action.created_at + timedelta(minutes=16))
    assert await _events(db, "action.escalated") == 1
