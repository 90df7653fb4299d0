"""Spans for graph nodes and tool calls, exported to an in-memory exporter: the incident id on
every node, tools as children of their node, a pause for approval not marked as an error."""

from __future__ import annotations

from pathlib import Path

from langgraph.checkpoint.memory import InMemorySaver
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from sqlalchemy import select

from agents.investigation import InvestigationRunner
from agents.reasoner import RuleReasoner
from agents.runbooks.loader import load_runbooks
from agents.supervisor import GraphDeps, build_graph
from core import telemetry
from core.database import Database
from core.models import Action
from guardrails.actions import decide_and_commit
from guardrails.executor import Executor
from guardrails.policy import Policy
from guardrails.tokens import Principal
from tests.integration.test_supervisor import RUNBOOK, _incident_with_alert
from tools.gitops import gitops_tools
from tools.gitops.bootstrap import open_gitops_repo
from tools.registry import ToolRegistry


async def test_nodes_and_tools_are_spans_with_the_incident_id(db: Database,
                                                              tmp_path: Path) -> None:
    exporter = InMemorySpanExporter()
    provider = telemetry.new_tracer_provider(SimpleSpanProcessor(exporter))
    (tmp_path / "runbooks").mkdir()
    (tmp_path / "runbooks" / "flags-only.yaml").write_text(RUNBOOK)
    registry = ToolRegistry(gitops_tools(open_gitops_repo(tmp_path / "data")))
    executor = Executor(db, registry, tracer_provider=provider)
    deps = GraphDeps(db, registry, Policy.load(),
                     RuleReasoner(load_runbooks(tmp_path / "runbooks")), executor,
                     tracer_provider=provider)
    runner = InvestigationRunner(db, build_graph(deps, InMemorySaver()))
    incident = await _incident_with_alert(db, "FlagTrouble")
    await runner.run(incident.id)
    spans = exporter.get_finished_spans()
    nodes = {s.name: s for s in spans if s.name.startswith("graph.node ")}
    assert set(nodes) == {"graph.node supervisor", "graph.node log_summarizer",
                          "graph.node runbook_executor", "graph.node approval"}
    for span in nodes.values():
        assert span.attributes is not None
        assert span.attributes["metaops.incident_id"] == incident.id
    approval = nodes["graph.node approval"]
    assert approval.attributes is not None and approval.attributes["metaops.graph.interrupted"]
    assert approval.status.status_code is not StatusCode.ERROR  # waiting is not failing
    [tool] = [s for s in spans if s.name == "tool gitops.get_flags"]
    assert tool.attributes is not None
    assert tool.attributes["gen_ai.tool.name"] == "gitops.get_flags"
    assert tool.attributes["metaops.tool.status"] == "ok"
    runbook = nodes["graph.node runbook_executor"]
    assert tool.parent is not None and tool.parent.span_id == runbook.context.span_id
    # An approved write runs in its own span, with the action and the incident.
    async with db.read() as session:
        action = (await session.scalars(select(Action))).one()
    await decide_and_commit(db, action.id, Principal("alice", "approver"), "approve", "api")
    assert await executor.execute(action.id) == "succeeded"
    [write] = [s for s in exporter.get_finished_spans() if s.name == "tool gitops.set_flag"]
    assert write.attributes is not None
    assert write.attributes["metaops.action_id"] == action.id
    assert write.attributes["metaops.incident_id"] == incident.id
    assert write.attributes["metaops.tool.status"] == "ok"
