"""LLM mode, findings: the model's prose on a finding is kept only when every number in it is
one of the finding's figures; without it (or with a bad one) the finding is the same."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from agents.llm import LLM
from agents.reasoner import RuleReasoner
from agents.specialists.cost_investigator import cost_investigator
from agents.specialists.deps import GraphDeps
from agents.specialists.narrative import grounded
from agents.specialists.window import investigation_window
from core.database import Database
from core.models import Alert
from core.settings import Settings
from core.timeutil import utcnow
from guardrails.executor import Executor
from guardrails.policy import Policy
from tests.fake_openai import (
    FakeOpenAI,
    configured,
    error,
    respond,
    serve_openai,
    text,
)
from tests.integration.test_supervisor import _scenario_incident
from tests.support import SCENARIOS
from tools.registry import ToolRegistry

# Findings run on PostgreSQL in test_supervisor (the same cost investigator).
pytestmark = pytest.mark.sqlite_pass


def test_grounded_numbers_only() -> None:
    facts = {"patterns": [{"count": 1600, "share": 0.8}], "burn": 422.13, "user": "u-4711"}
    assert grounded("Most errors (80%, 1,600 lines) come from one pattern.", facts)
    assert grounded("Burn rate is 422.13 USD per hour, led by u-4711.", facts)
    assert not grounded("Refunds were wrong for 47 minutes.", facts)
    assert not grounded("Spend is 500 USD per hour.", facts)


@pytest.fixture
def model() -> Iterator[FakeOpenAI]:
    with serve_openai() as fake:
        yield fake


async def _run(db: Database, settings: Settings, model: FakeOpenAI) -> dict[str, Any]:
    from agents.toolbox import request_log
    from tools.logs.jsonl import JsonlSource
    from tools.metrics.cost import cost_tools

    source = JsonlSource([str(SCENARIOS / "cost-spike" / "logs.jsonl")])
    registry = ToolRegistry(cost_tools(request_log(source)))
    deps = GraphDeps(db, registry, Policy.load(), RuleReasoner([]), Executor(db, registry),
                     llm=LLM(configured(settings, model), db))
    incident = await _scenario_incident(db, "CostBurnRateHigh", "2026-11-27T10:15:00Z")
    async with db.read() as s:
        alerts = list(await s.scalars(select(Alert).where(Alert.incident_id == incident.id)))
    found = await cost_investigator(deps, incident.id, investigation_window(
        alerts, utcnow(), deps.config), "chat-api")
    return dict(found.data)


def _facts(body: dict[str, Any]) -> dict[str, Any]:
    content = body["messages"][1]["content"]
    inner = content.split("<data>", 1)[1].rsplit("</data>", 1)[0]
    return dict(json.loads(inner)["facts"])


async def test_a_grounded_narrative_is_kept(db: Database, settings: Settings,
                                            model: FakeOpenAI) -> None:
    def writer(body: dict[str, Any]) -> Any:
        facts = _facts(body)
        top = facts["top_users"][0]
        return text(f"Spend runs at {facts['burn_rate_usd_per_hour']} USD per hour; "
                    f"{top['user_id']} alone cost {top['cost_usd']} USD.")

    model.script(respond(writer))
    data = await _run(db, settings, model)
    assert "u-4711" in data["narrative"] and str(data["burn_rate_usd_per_hour"]) in \
        data["narrative"]
    assert "<data>" in model.last.messages[1]["content"]  # the figures went in fenced


async def test_an_ungrounded_or_missing_narrative_leaves_the_finding_as_it_is(
        db: Database, settings: Settings, model: FakeOpenAI) -> None:
    model.script(text("Refunds were wrong for 47 minutes because of a bad deploy."))
    invented = await _run(db, settings, model)
    assert "narrative" not in invented
    assert invented["top_users"][0]["user_id"] == "u-4711"
    model.script(error(500))
    failed = await _run(db, settings, model)
    assert "narrative" not in failed and failed["top_users"] == invented["top_users"]
