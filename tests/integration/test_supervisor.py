"""The graph with a hand-made runbook: a broken step is recorded, the rest still proposed."""

from __future__ import annotations

import uuid
from pathlib import Path

from langgraph.checkpoint.memory import InMemorySaver
from sqlalchemy import select

from agents.investigation import InvestigationRunner
from agents.reasoner import RuleReasoner
from agents.runbooks.loader import load_runbooks
from agents.supervisor import GraphDeps, build_graph
from core.database import Database
from core.models import Action, Alert, AuditEvent, GraphThread, Incident
from core.timeutil import utcnow
from guardrails.executor import Executor
from guardrails.policy import Policy
from tests.support import SCENARIOS, load_json
from tools.gitops import gitops_tools
from tools.gitops.bootstrap import open_gitops_repo
from tools.registry import ToolRegistry

RUNBOOK = """
name: flags-only
description: test runbook with one broken step
match: {alertname: FlagTrouble}
steps:
  - {id: flags, tool: gitops.get_flags}
  - id: bogus
    tool: gitops.set_flag
    args: {flag: no-such-flag, variant: "off"}
  - id: refund_off
    tool: gitops.set_flag
    args: {flag: refund-tool, variant: "off"}
"""


async def _incident_with_alert(db: Database, alertname: str) -> Incident:
    """An open incident with one firing alert and its graph thread, as intake leaves them."""
    async with db.write() as s:
        incident = Incident(source="generic", group_key="g", open_key=f"k-{uuid.uuid4()}",
                            title=alertname,
                            severity="warning")
        s.add(incident)
        await s.flush()
        s.add(Alert(incident_id=incident.id, source="generic", fingerprint="f", status="firing",
                    name=alertname, title="t", severity="warning", starts_at=utcnow()))
        s.add(GraphThread(incident_id=incident.id, thread_id=f"incident-{incident.id}",
                          status="running"))
    return incident


async def test_broken_step_is_recorded_and_the_rest_proposed(db: Database,
                                                            tmp_path: Path) -> None:
    (tmp_path / "runbooks").mkdir()
    (tmp_path / "runbooks" / "flags-only.yaml").write_text(RUNBOOK)
    registry = ToolRegistry(gitops_tools(open_gitops_repo(tmp_path / "data")))
    deps = GraphDeps(db, registry, Policy.load(),
                     RuleReasoner(load_runbooks(tmp_path / "runbooks")),
                     Executor(db, registry))
    runner = InvestigationRunner(db, build_graph(deps, InMemorySaver()))
    incident = await _incident_with_alert(db, "FlagTrouble")
    await runner.run(incident.id)
    async with db.read() as s:
        actions = list(await s.scalars(select(Action)))
        done = await s.scalar(select(AuditEvent).where(AuditEvent.type == "runbook.completed"))
        thread = await s.get(GraphThread, incident.id)
    assert [(a.tool, a.args["flag"], a.status) for a in actions] == [
        ("gitops.set_flag", "refund-tool", "pending_approval")]
    assert done is not None and set(done.payload["failed_steps"]) == {"bogus"}
    assert "no-such-flag" in done.payload["failed_steps"]["bogus"]
    assert thread is not None and thread.status == "waiting" and thread.interrupt_id
    async with db.read() as s:
        steps = list(await s.scalars(select(AuditEvent).where(AuditEvent.type == "runbook.step")
                                     .order_by(AuditEvent.seq)))
    # The timeline shows every step, in order, with what became of it.
    assert [(e.payload["step"], e.outcome) for e in steps] == [
        ("flags", "read"), ("bogus", "failed"), ("refund_off", "proposed")]
    assert steps[2].action_id == actions[0].id


LOG_RUNBOOK = """
name: read-logs
description: reads log lines that carry personal data
match: {alertname: LogTrouble}
steps:
  - id: leaks
    tool: logs.search
    args: {contains: "user message", start: "2026-11-27T09:00:00Z", end: "2026-11-27T12:00:00Z"}
"""


async def test_findings_kept_in_graph_state_are_redacted(db: Database, tmp_path: Path) -> None:
    from tools.logs.jsonl import JsonlSource
    from tools.logs.tools import logs_tools

    scenario = SCENARIOS / "provider-outage"
    forbidden = load_json(scenario / "expected.json")["must_not_appear_anywhere"]
    (tmp_path / "runbooks").mkdir()
    (tmp_path / "runbooks" / "read-logs.yaml").write_text(LOG_RUNBOOK)
    registry = ToolRegistry(logs_tools(JsonlSource([str(scenario / "logs.jsonl")])))
    deps = GraphDeps(db, registry, Policy.load(),
                     RuleReasoner(load_runbooks(tmp_path / "runbooks")), Executor(db, registry))
    graph = build_graph(deps, InMemorySaver())
    runner = InvestigationRunner(db, graph)
    incident = await _incident_with_alert(db, "LogTrouble")
    await runner.run(incident.id)
    state = await graph.aget_state({"configurable": {"thread_id": f"incident-{incident.id}"}})
    text = str(state.values["findings"])
    assert "[REDACTED:email]" in text  # the lines were read...
    for needle in forbidden:  # ...and nothing personal was kept
        assert needle not in text


USES_SUMMARY = """
name: uses-summary
description: acts on the log summarizer's figures
match: {alertname: LogTrouble}
steps:
  - id: refund_off
    tool: gitops.set_flag
    when: findings.log_summarizer.totals.error >= MIN_ERRORS
    args: {flag: refund-tool, variant: "off"}
"""


async def _scenario_incident(db: Database, alertname: str, starts_at: str) -> Incident:
    from core.timeutil import parse_ts

    incident = await _incident_with_alert(db, alertname)
    async with db.write() as s:
        alert = await s.scalar(select(Alert).where(Alert.incident_id == incident.id))
        assert alert is not None
        alert.starts_at = parse_ts(starts_at)  # type: ignore[assignment]
        alert.service = "chat-api"
        alert.fingerprint = f"f-{incident.id}"
    return incident


async def _summary_run(db: Database, tmp_path: Path, min_errors: int) -> list[Action]:
    from tools.logs.jsonl import JsonlSource
    from tools.logs.tools import logs_tools

    books = tmp_path / f"runbooks-{min_errors}"
    books.mkdir()
    (books / "uses-summary.yaml").write_text(USES_SUMMARY.replace("MIN_ERRORS", str(min_errors)))
    source = JsonlSource([str(SCENARIOS / "provider-outage" / "logs.jsonl")])
    registry = ToolRegistry([*gitops_tools(open_gitops_repo(tmp_path / f"data-{min_errors}")),
                             *logs_tools(source)])
    deps = GraphDeps(db, registry, Policy.load(), RuleReasoner(load_runbooks(books)),
                     Executor(db, registry))
    incident = await _scenario_incident(db, "LogTrouble", "2026-11-27T10:02:00Z")
    await InvestigationRunner(db, build_graph(deps, InMemorySaver())).run(incident.id)
    async with db.read() as s:
        return list(await s.scalars(select(Action).where(Action.incident_id == incident.id)))


async def test_runbook_steps_use_the_log_summary(db: Database, tmp_path: Path) -> None:
    # The scenario has 2,000 error lines in the window: the step's `when` reads that figure.
    assert [a.tool for a in await _summary_run(db, tmp_path, 1000)] == ["gitops.set_flag"]
    assert await _summary_run(db, tmp_path, 5000) == []


async def test_a_specialist_that_runs_again_keeps_its_first_finding(db: Database,
                                                                   tmp_path: Path) -> None:
    from agents.specialists.cost_investigator import cost_investigator
    from agents.specialists.window import investigation_window
    from agents.toolbox import request_log
    from core.models import Finding
    from tools.logs.jsonl import JsonlSource
    from tools.metrics.cost import cost_tools

    source = JsonlSource([str(SCENARIOS / "cost-spike" / "logs.jsonl")])
    registry = ToolRegistry(cost_tools(request_log(source)))
    deps = GraphDeps(db, registry, Policy.load(), RuleReasoner([]), Executor(db, registry))
    incident = await _scenario_incident(db, "CostBurnRateHigh", "2026-11-27T10:15:00Z")
    async with db.read() as s:
        alerts = list(await s.scalars(select(Alert).where(Alert.incident_id == incident.id)))
    window = investigation_window(alerts, utcnow(), deps.config)
    first = await cost_investigator(deps, incident.id, window, "chat-api")
    # A re-run (after a crash) with other data must not record a second, different finding.
    other = investigation_window(alerts, alerts[0].starts_at, deps.config)
    again = await cost_investigator(deps, incident.id, other, "chat-api")
    assert again == first and first.data["top_users"][0]["user_id"] == "u-4711"
    async with db.read() as s:
        rows = list(await s.scalars(select(Finding)))
        events = list(await s.scalars(select(AuditEvent).where(
            AuditEvent.type == "finding.recorded")))
    assert len(rows) == 1 and len(events) == 1
    assert events[0].actor_id == "cost_investigator"
    assert events[0].payload["runaway_users"] == ["u-4711"]
