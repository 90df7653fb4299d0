"""The supervisor graph: route → runbook executor → approval (interrupt only) ⇄ execute."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Literal, TypedDict

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Command, interrupt
from sqlalchemy import select

from agents.reasoner import RUNBOOK_EXECUTOR, RuleReasoner
from agents.runbooks.context import AlertContext
from agents.runbooks.matcher import plan
from core.database import Database
from core.models import Action, Alert
from guardrails import audit
from guardrails.actions import PENDING, Proposal, count_for_incident, count_last_hour, propose
from guardrails.executor import Executor
from guardrails.policy import Policy, PolicyContext
from guardrails.redaction import redact
from tools.base import Effect, ReadTool, WriteTool
from tools.registry import ToolRegistry

AGENT = audit.Actor("agent", RUNBOOK_EXECUTOR, "system")
_MAX_FINDING_CHARS = 20_000


class IncidentState(TypedDict, total=False):
    """JSON-native graph state (ids and small findings; big data stays in the database)."""

    incident_id: int
    routes: list[str]
    runbook: str | None
    findings: dict[str, Any]
    proposals: list[str]
    pending: bool


@dataclass
class GraphDeps:
    db: Database
    registry: ToolRegistry
    policy: Policy
    reasoner: RuleReasoner
    executor: Executor


def action_id_for(incident_id: int, runbook: str, step: str) -> str:
    """Deterministic: a node that re-runs after a crash or resume finds its own proposals."""
    return f"incident-{incident_id}:{runbook}:{step}"


def _small(data: dict[str, Any]) -> dict[str, Any]:
    """A finding as kept in graph state: redacted (tool output can carry log lines and user
    text) and bounded in size."""
    data = redact(data).value
    text = audit.canonical_json(data)
    return data if len(text) <= _MAX_FINDING_CHARS else {"truncated": text[:_MAX_FINDING_CHARS]}


async def _alerts(db: Database, incident_id: int) -> list[AlertContext]:
    async with db.read() as session:
        rows = (await session.scalars(
            select(Alert).where(Alert.incident_id == incident_id).order_by(Alert.id))).all()
    return [AlertContext.of(row) for row in rows]


async def _statuses(db: Database, ids: list[str]) -> dict[str, str]:
    if not ids:
        return {}
    async with db.read() as session:
        rows = await session.execute(select(Action.id, Action.status).where(Action.id.in_(ids)))
        return {str(i): str(s) for i, s in rows.all()}


def build_graph(deps: GraphDeps,
                saver: BaseCheckpointSaver[str]) -> CompiledStateGraph[Any, Any, Any, Any]:
    async def supervisor(
        state: IncidentState,
    ) -> Command[Literal["runbook_executor", "__end__"]]:
        routes = deps.reasoner.route(await _alerts(deps.db, state["incident_id"]))
        goto: Literal["runbook_executor", "__end__"] = (
            "runbook_executor" if RUNBOOK_EXECUTOR in routes else "__end__")
        return Command(goto=goto, update={"routes": routes})

    async def runbook_executor(state: IncidentState) -> dict[str, Any]:
        incident_id = state["incident_id"]
        alerts = await _alerts(deps.db, incident_id)
        runbook = deps.reasoner.runbook_for(alerts)
        if runbook is None:
            return {"runbook": None, "proposals": []}
        alert = next(a for a in alerts if deps.reasoner.runbook_for([a]) is runbook)
        findings: dict[str, Any] = {}
        proposals: list[str] = []
        failed: dict[str, str] = {}
        for step, raw_args in plan(runbook, alert, findings):
            try:
                tool = deps.registry.get(step.tool)
                args = tool.spec.args.model_validate(raw_args)
                if tool.spec.effect is Effect.READ:
                    assert isinstance(tool, ReadTool)
                    result = await asyncio.to_thread(tool.run, args)
                    findings[step.id] = _small(
                        result.data if result.status == "ok" else {"error": result.error})
                    continue
                assert isinstance(tool, WriteTool)
                action_id = action_id_for(incident_id, runbook.name, step.id)
                await _propose(deps, incident_id, runbook.name, step, tool, args, action_id)
                proposals.append(action_id)
            except Exception as exc:
                # One broken step (unknown flag, git error) must not sink the investigation.
                failed[step.id] = f"{exc.__class__.__name__}: {exc}"[:500]
        async with deps.db.write() as session:
            await audit.append(session, type="runbook.completed", actor=AGENT,
                               incident_id=incident_id, target=f"runbook:{runbook.name}",
                               outcome="failed_steps" if failed else "ok",
                               payload={"proposals": proposals, "read_steps": sorted(findings),
                                        "failed_steps": failed})
        return {"runbook": runbook.name, "findings": findings, "proposals": proposals}

    async def approval(state: IncidentState) -> dict[str, Any]:
        # Interrupt and nothing else: this node re-runs from the top on every resume.
        statuses = await _statuses(deps.db, state.get("proposals", []))
        waiting = [i for i, s in statuses.items() if s == PENDING]
        if waiting and "approved" not in statuses.values():
            interrupt({"type": "approval_request", "pending": waiting})
        return {}

    async def execute(state: IncidentState) -> dict[str, Any]:
        ids = state.get("proposals", [])
        for action_id, status in (await _statuses(deps.db, ids)).items():
            if status == "approved":
                await deps.executor.execute(action_id)
        after = await _statuses(deps.db, ids)
        return {"pending": PENDING in after.values()}

    def again(state: IncidentState) -> Literal["approval", "__end__"]:
        return "approval" if state.get("pending") else "__end__"

    builder: StateGraph[IncidentState, Any, Any, Any] = StateGraph(IncidentState)
    builder.add_node("supervisor", supervisor)
    builder.add_node(RUNBOOK_EXECUTOR, runbook_executor)
    builder.add_node("approval", approval)
    builder.add_node("execute", execute)
    builder.add_edge(START, "supervisor")
    builder.add_edge(RUNBOOK_EXECUTOR, "approval")
    builder.add_edge("approval", "execute")
    builder.add_conditional_edges("execute", again, ["approval", END])
    return builder.compile(checkpointer=saver)


async def _propose(deps: GraphDeps, incident_id: int, runbook: str, step: Any,
                   tool: WriteTool, args: Any, action_id: str) -> None:
    async with deps.db.read() as session:
        if await session.get(Action, action_id) is not None:
            return  # proposed before this node re-ran
        ctx = PolicyContext(
            incident_id=str(incident_id), requested_by=None,
            actions_last_hour_for_tool=await count_last_hour(session, tool.spec.name),
            actions_for_incident=await count_for_incident(session, incident_id))
    dumped = args.model_dump(exclude_none=True)
    decision = deps.policy.evaluate(tool.spec.name, tool.spec.effect, dumped, ctx)
    if step.policy is not None:
        decision = decision.tighten(step.policy)
    preview = await asyncio.to_thread(tool.preview, args)
    snapshot = await asyncio.to_thread(tool.snapshot, args)
    inverse = await asyncio.to_thread(tool.inverse, args, preview)
    async with deps.db.write() as session:
        await propose(session, Proposal(
            action_id=action_id, incident_id=incident_id, tool=tool.spec.name,
            effect=tool.spec.effect.value, args=dumped, preview=preview, snapshot=snapshot,
            inverse={"tool": inverse[0], "args": inverse[1]} if inverse else None,
            decision=decision.model_dump(mode="json"), requested_by=f"runbook:{runbook}",
            source=f"runbook:{runbook}/{step.id}"), AGENT)
