"""The supervisor graph: route → specialists in order → approval (interrupt only) ⇄ execute."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Literal, TypedDict

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.errors import GraphBubbleUp
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import interrupt
from sqlalchemy import select

from agents.reasoner import SPECIALISTS, is_cost_alert
from agents.routing import claimed_by_rules, llm_route
from agents.runbooks.context import AlertContext
from agents.specialist_names import COST_INVESTIGATOR, LOG_SUMMARIZER, RUNBOOK_EXECUTOR
from agents.specialists.cost_investigator import cost_investigator
from agents.specialists.deps import GraphDeps
from agents.specialists.log_summarizer import log_summarizer
from agents.specialists.runbook_executor import action_id_for, run_runbook, small
from agents.specialists.window import investigation_window
from core.models import Action, Alert, AuditEvent
from core.telemetry import incident_attributes, start_span, tracer
from core.timeutil import utcnow
from guardrails import audit
from guardrails.actions import PENDING
from guardrails.injection import screen

__all__ = ["GraphDeps", "IncidentState", "action_id_for", "build_graph"]

SUPERVISOR = audit.Actor("agent", "supervisor", "system")
APPROVAL = "approval"


class IncidentState(TypedDict, total=False):
    """JSON-native graph state (ids and small findings; big data stays in the database)."""

    incident_id: int
    routes: list[str]
    done: list[str]
    runbook: str | None
    specialist_findings: dict[str, Any]  # specialist -> its finding's data (redacted)
    findings: dict[str, Any]  # runbook READ step id -> its data (redacted)
    proposals: list[str]
    pending: bool


async def _statuses(deps: GraphDeps, ids: list[str]) -> dict[str, str]:
    if not ids:
        return {}
    async with deps.db.read() as session:
        rows = await session.execute(select(Action.id, Action.status).where(Action.id.in_(ids)))
        return {str(i): str(s) for i, s in rows.all()}


def _contexts(rows: list[Alert]) -> list[AlertContext]:
    return [AlertContext.of(row) for row in rows]


def _services(rows: list[Alert]) -> list[str] | None:
    return sorted({r.service for r in rows if r.service}) or None


def _after(state: IncidentState, name: str) -> dict[str, Any]:
    return {"done": [*state.get("done", []), name]}


def _next(state: IncidentState) -> str:
    done = set(state.get("done", []))
    return next((r for r in state.get("routes", []) if r not in done), APPROVAL)


Node = Callable[[IncidentState], Awaitable[dict[str, Any]]]


def _traced(deps: GraphDeps, name: str, node: Node) -> Any:  # LangGraph's node protocols
    """A span per node run, with the incident id. A pause for approval (LangGraph's interrupt
    exception) is marked as such, not as an error."""
    spans = tracer("metaops.graph", deps.tracer_provider)

    async def run(state: IncidentState) -> dict[str, Any]:
        with start_span(spans, f"graph.node {name}", not_errors=(GraphBubbleUp,), attributes={
                "metaops.graph.node": name, **incident_attributes(state.get("incident_id"))}) \
                as span:
            try:
                return await node(state)
            except GraphBubbleUp:
                span.set_attribute("metaops.graph.interrupted", True)
                raise

    return run


def build_graph(deps: GraphDeps,
                saver: BaseCheckpointSaver[str]) -> CompiledStateGraph[Any, Any, Any, Any]:
    async def supervisor(state: IncidentState) -> dict[str, Any]:
        incident_id = state["incident_id"]
        rows = await deps.alert_rows(incident_id)
        contexts = _contexts(rows)
        routes = deps.reasoner.route(contexts)
        # Alert text is screened for instructions aimed at the agent. The screen only flags:
        # runbooks never read annotations, and a model's routing can only pick a specialist
        # that reads (never writes), so nothing flagged can change an action.
        report = screen({f"alerts[{r.id}]": {"annotations": r.annotations, "title": r.title}
                         for r in rows})
        async with deps.db.read() as session:
            seen = (await session.scalars(select(AuditEvent).where(
                AuditEvent.incident_id == incident_id,
                AuditEvent.type == "investigation.routed").limit(1))).first()
        if seen is not None:  # this node re-runs after a crash: keep the routing recorded
            return {"routes": list(seen.payload.get("routes", routes)), "done": [],
                    "proposals": [], "specialist_findings": {}}
        by = "rules"
        if (deps.llm is not None and deps.llm.enabled
                and not claimed_by_rules(deps.reasoner, contexts)):
            choice = await llm_route(deps.llm, rows, report, incident_id)
            if choice is not None:
                routes, by = [choice], "llm"
        async with deps.db.write() as session:
            again = (await session.scalars(select(AuditEvent.seq).where(
                AuditEvent.incident_id == incident_id,
                AuditEvent.type == "investigation.routed").limit(1))).first()
            if again is None:  # recorded once, even if two runs raced to here
                await audit.append(session, type="investigation.routed", actor=SUPERVISOR,
                                   incident_id=incident_id, target=f"incident:{incident_id}",
                                   outcome="ok", payload={"routes": routes, "by": by})
                if report.suspected:
                    await audit.append(session, type="injection.suspected", actor=SUPERVISOR,
                                       incident_id=incident_id, target="alert annotations",
                                       outcome="flagged", payload=report.as_dict())
        return {"routes": routes, "done": [], "proposals": [], "specialist_findings": {}}

    async def log_summarizer_node(state: IncidentState) -> dict[str, Any]:
        incident_id = state["incident_id"]
        every = await deps.alert_rows(incident_id)
        rows = [r for r in every if not is_cost_alert(AlertContext.of(r))] or every
        window = investigation_window(rows, utcnow(), deps.config)
        found = await log_summarizer(deps, incident_id, window, _services(rows))
        return {**_after(state, LOG_SUMMARIZER), "specialist_findings": {
            **state.get("specialist_findings", {}), LOG_SUMMARIZER: small(found.data)}}

    async def cost_investigator_node(state: IncidentState) -> dict[str, Any]:
        incident_id = state["incident_id"]
        every = await deps.alert_rows(incident_id)
        # The incident's cost alerts; all of its alerts when a model routed it here.
        rows = [r for r in every if is_cost_alert(AlertContext.of(r))] or every
        window = investigation_window(rows, utcnow(), deps.config)
        services = _services(rows)
        found = await cost_investigator(deps, incident_id, window,
                                        services[0] if services and len(services) == 1 else None)
        findings = {**state.get("specialist_findings", {}), COST_INVESTIGATOR: small(found.data)}
        update: dict[str, Any] = {**_after(state, COST_INVESTIGATOR),
                                  "specialist_findings": findings}
        # The cost runbook's proposals (block the user, emergency rate limit) are made here,
        # from these figures: the investigator owns cost incidents end to end.
        contexts = _contexts(rows)
        runbook = deps.reasoner.runbook_for(contexts)
        if runbook is not None:
            alert = next(a for a in contexts if deps.reasoner.runbook_for([a]) is runbook)
            run = await run_runbook(deps, incident_id, runbook, alert, findings,
                                    audit.Actor("agent", COST_INVESTIGATOR, "system"))
            update["proposals"] = [*state.get("proposals", []), *run.proposals]
            update["runbook"] = runbook.name
        return update

    async def runbook_executor_node(state: IncidentState) -> dict[str, Any]:
        incident_id = state["incident_id"]
        contexts = [a for a in _contexts(await deps.alert_rows(incident_id))
                    if not is_cost_alert(a)]
        runbook = deps.reasoner.runbook_for(contexts)
        update: dict[str, Any] = _after(state, RUNBOOK_EXECUTOR)
        if runbook is None:
            return {**update, "runbook": None}
        alert = next(a for a in contexts if deps.reasoner.runbook_for([a]) is runbook)
        run = await run_runbook(deps, incident_id, runbook, alert,
                                state.get("specialist_findings", {}),
                                audit.Actor("agent", RUNBOOK_EXECUTOR, "system"))
        return {**update, "runbook": runbook.name, "findings": run.steps,
                "proposals": [*state.get("proposals", []), *run.proposals]}

    async def approval(state: IncidentState) -> dict[str, Any]:
        # Interrupt and nothing else: this node re-runs from the top on every resume.
        statuses = await _statuses(deps, state.get("proposals", []))
        waiting = [i for i, s in statuses.items() if s == PENDING]
        if waiting and "approved" not in statuses.values():
            interrupt({"type": "approval_request", "pending": waiting})
        return {}

    async def execute(state: IncidentState) -> dict[str, Any]:
        ids = state.get("proposals", [])
        for action_id, status in (await _statuses(deps, ids)).items():
            if status == "approved":
                await deps.executor.execute(action_id)
        after = await _statuses(deps, ids)
        return {"pending": PENDING in after.values()}

    def again(state: IncidentState) -> Literal["approval", "__end__"]:
        return "approval" if state.get("pending") else "__end__"

    def first(state: IncidentState) -> str:
        return _next(state) if state.get("routes") else END

    builder: StateGraph[IncidentState, Any, Any, Any] = StateGraph(IncidentState)
    builder.add_node("supervisor", _traced(deps, "supervisor", supervisor))
    builder.add_node(LOG_SUMMARIZER, _traced(deps, LOG_SUMMARIZER, log_summarizer_node))
    builder.add_node(COST_INVESTIGATOR, _traced(deps, COST_INVESTIGATOR, cost_investigator_node))
    builder.add_node(RUNBOOK_EXECUTOR, _traced(deps, RUNBOOK_EXECUTOR, runbook_executor_node))
    for name in SPECIALISTS:
        builder.add_conditional_edges(name, _next, [*SPECIALISTS, APPROVAL])
    builder.add_node(APPROVAL, _traced(deps, APPROVAL, approval))
    builder.add_node("execute", _traced(deps, "execute", execute))
    builder.add_edge(START, "supervisor")
    builder.add_conditional_edges("supervisor", first, [*SPECIALISTS, END])
    builder.add_edge(APPROVAL, "execute")
    builder.add_conditional_edges("execute", again, [APPROVAL, END])
    return builder.compile(checkpointer=saver)
