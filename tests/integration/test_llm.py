"""Model calls through agents/llm.py: the real langchain-openai client against local
OpenAI-compatible servers; fallbacks, breakers, retries, budgets and the llm_call audit trail."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import HumanMessage, SystemMessage
from sqlalchemy import select

from agents.llm import LLM, CallRecord, Scope
from core.database import Database
from core.models import AuditEvent
from core.settings import Settings
from tests.fake_openai import (
    API_KEY,
    MODEL,
    FakeOpenAI,
    configured,
    error,
    rate_limited,
    serve_openai,
    slow,
    text,
)

PROMPT = [SystemMessage("You route alerts."), HumanMessage("alert: chat-api 5xx")]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def primary() -> Iterator[FakeOpenAI]:
    with serve_openai() as fake:
        yield fake


@pytest.fixture
def secondary() -> Iterator[FakeOpenAI]:
    with serve_openai(FakeOpenAI(api_key="sk-secondary-0123456789", models=("backup-model",))) \
            as fake:
        yield fake


def _llm(settings: Settings, db: Database, primary: FakeOpenAI, secondary: FakeOpenAI | None,
         clock: Clock | None = None, sleeps: list[float] | None = None, **values: Any) -> LLM:
    fallbacks = [] if secondary is None else [
        {"name": "secondary", "base_url": secondary.base_url, "model": "backup-model",
         "api_key": "sk-secondary-0123456789"}]
    config = configured(
        settings, primary,
        llm_fallbacks=Settings.model_validate({"llm_fallbacks": fallbacks}).llm_fallbacks,
        **{"llm_timeout_seconds": 2.0, "llm_max_retries": 2, **values})

    async def sleep(seconds: float) -> None:
        (sleeps if sleeps is not None else []).append(seconds)

    return LLM(config, db, sleep=sleep, **({"clock": clock} if clock else {}))


async def _calls(db: Database) -> list[tuple[str | None, dict[str, Any], int | None, str | None]]:
    async with db.read() as session:
        rows = (await session.execute(select(
            AuditEvent.outcome, AuditEvent.payload, AuditEvent.incident_id, AuditEvent.target)
            .where(AuditEvent.type == "llm_call").order_by(AuditEvent.seq))).all()
    return [(r[0], r[1], r[2], r[3]) for r in rows]


async def test_primary_answers_and_the_audit_has_the_server_s_counts_and_cost(
        settings: Settings, db: Database, primary: FakeOpenAI) -> None:
    primary.script(text("log_summarizer", prompt_tokens=120, completion_tokens=7))
    seen: list[CallRecord] = []
    llm = _llm(settings, db, primary, None,
               llm_prices={MODEL: {"input": 2.5, "output": 10.0}})
    llm.observe = seen.append
    result = await llm.invoke(PROMPT, Scope("route", incident_id=None))
    assert result is not None and result.message.content == "log_summarizer"
    assert (result.provider, result.input_tokens, result.output_tokens) == ("primary", 120, 7)
    assert result.cost_usd == Decimal("0.00037")  # 120 * 2.5 / 1M + 7 * 10 / 1M
    request = primary.last
    assert request.api_key == API_KEY and request.model == MODEL and request.retry_count == 0
    assert request.headers["x-stainless-read-timeout"] == "2.0"  # the timeout is always set
    [(outcome, payload, _, _)] = await _calls(db)
    assert outcome == "ok"
    assert (payload["input_tokens"], payload["output_tokens"]) == (120, 7)
    assert payload["cost_usd"] == "0.00037" and payload["provider"] == "primary"
    assert len(payload["prompt_hash"]) == 64 and "prompt" not in payload  # no content logged
    assert [(r.outcome, r.input_tokens) for r in seen] == [("ok", 120)]


async def test_primary_500_then_secondary_then_rules(settings: Settings, db: Database,
                                                     primary: FakeOpenAI,
                                                     secondary: FakeOpenAI) -> None:
    llm = _llm(settings, db, primary, secondary, llm_max_retries=0)
    primary.script(error(500))
    secondary.script(text("cost_investigator", prompt_tokens=50, completion_tokens=2))
    result = await llm.invoke(PROMPT, Scope("route", incident_id=None))
    assert result is not None and result.provider == "secondary"
    assert result.message.content == "cost_investigator"
    primary.script(error(500))
    secondary.script(error(503))
    assert await llm.invoke(PROMPT, Scope("route")) is None  # the caller takes the rules
    outcomes = [(o, p["provider"]) for o, p, _, _ in await _calls(db)]
    assert outcomes == [("error", "primary"), ("ok", "secondary"), ("error", "primary"),
                        ("error", "secondary")]


async def test_breaker_opens_after_n_failures_and_half_opens_after_cool_down(
        settings: Settings, db: Database, primary: FakeOpenAI, secondary: FakeOpenAI) -> None:
    clock = Clock()
    llm = _llm(settings, db, primary, secondary, clock=clock, llm_max_retries=0,
               llm_breaker={"failure_threshold": 2, "window_seconds": 60,
                            "cooldown_seconds": 30})
    primary.script(error(500), error(500))
    for _ in range(2):
        assert (await llm.invoke(PROMPT, Scope("route"))) is not None  # secondary answers
    assert len(primary.completions) == 2
    for _ in range(3):  # open: the primary is not called at all
        result = await llm.invoke(PROMPT, Scope("route"))
        assert result is not None and result.provider == "secondary"
    assert len(primary.completions) == 2
    clock.now += 31  # cool-down over: one trial goes to the primary, and it succeeds
    result = await llm.invoke(PROMPT, Scope("route"))
    assert result is not None and result.provider == "primary"
    assert len(primary.completions) == 3 and llm.breakers.get("primary").state == "closed"
    skipped = [p for o, p, _, _ in await _calls(db) if o == "breaker_open"]
    assert len(skipped) == 3 and {p["provider"] for p in skipped} == {"primary"}


async def test_429_retry_after_is_honoured_then_the_call_succeeds(
        settings: Settings, db: Database, primary: FakeOpenAI) -> None:
    sleeps: list[float] = []
    llm = _llm(settings, db, primary, None, sleeps=sleeps, llm_max_retries=2)
    primary.script(rate_limited(retry_after=3), text("ok", prompt_tokens=5, completion_tokens=1))
    result = await llm.invoke(PROMPT, Scope("chat", conversation="C1:171.1"))
    assert result is not None and result.message.content == "ok"
    assert sleeps == [3.0]  # the server's Retry-After, not our backoff
    assert [c.status for c in primary.completions] == [429, 200]
    calls = await _calls(db)
    assert [o for o, _, _, _ in calls] == ["error", "ok"]
    assert {t for _, _, _, t in calls} == {"conversation:C1:171.1"}
    # A Retry-After longer than our cap: give up on this provider now, do not sleep it out.
    sleeps.clear()
    primary.script(rate_limited(retry_after=600))
    assert await llm.invoke(PROMPT, Scope("chat", conversation="C1:171.1")) is None
    assert sleeps == []


async def test_a_slow_provider_times_out_and_the_next_answers(
        settings: Settings, db: Database, primary: FakeOpenAI, secondary: FakeOpenAI) -> None:
    llm = _llm(settings, db, primary, secondary, llm_timeout_seconds=0.5, llm_max_retries=0)
    primary.script(slow(3, text("too late")))
    secondary.script(text("in time", prompt_tokens=3, completion_tokens=2))
    result = await llm.invoke(PROMPT, Scope("route"))
    assert result is not None and result.message.content == "in time"
    (outcome, payload, _, _), _ok = await _calls(db)
    assert outcome == "error" and "Timeout" in payload["error"]


async def test_over_budget_incidents_stop_calling_the_model(
        settings: Settings, db: Database, primary: FakeOpenAI, tmp_path: Path) -> None:
    await _incident(db, 1)
    await _incident(db, 2)
    llm = _llm(settings, db, primary, None, llm_budget={"incident_tokens": 100})
    primary.script(text("first", prompt_tokens=90, completion_tokens=20))
    assert await llm.invoke(PROMPT, Scope("narrative", incident_id=1)) is not None
    before = len(primary.completions)
    assert await llm.invoke(PROMPT, Scope("narrative", incident_id=1)) is None  # 110 ≥ 100
    assert len(primary.completions) == before  # not called
    assert await llm.invoke(PROMPT, Scope("narrative", incident_id=2)) is not None  # own budget
    outcome, payload, incident, _ = (await _calls(db))[1]
    assert (outcome, incident, payload["limit"]) == ("over_budget", 1, "incident_tokens")
    assert "110" in payload["reason"]


async def test_content_is_logged_only_when_asked_and_then_redacted(
        settings: Settings, db: Database, primary: FakeOpenAI) -> None:
    llm = _llm(settings, db, primary, None, llm_log_content=True)
    primary.script(text("mail jane.doe@example.com", prompt_tokens=4, completion_tokens=4))
    prompt = [HumanMessage("user jane.doe@example.com keeps failing")]
    assert await llm.invoke(prompt, Scope("chat", conversation="C9")) is not None
    [(_, payload, _, _)] = await _calls(db)
    shown = json.dumps(payload)
    assert "keeps failing" in shown and "jane.doe@example.com" not in shown


async def _incident(db: Database, incident_id: int) -> None:
    from core.models import Incident

    async with db.write() as session:
        session.add(Incident(id=incident_id, source="generic", group_key=f"g{incident_id}",
                             title="t", severity="warning"))


async def test_calls_feed_the_prometheus_metrics(settings: Settings, db: Database,
                                                 primary: FakeOpenAI,
                                                 secondary: FakeOpenAI) -> None:
    from prometheus_client import generate_latest

    from api.metrics import Metrics

    metrics = Metrics()
    llm = _llm(settings, db, primary, secondary, llm_max_retries=0,
               llm_prices={"backup-model": {"input": 1.0, "output": 1.0}})
    llm.observe = metrics.observe_llm
    primary.script(error(500))
    secondary.script(text("ok", prompt_tokens=400_000, completion_tokens=100_000))
    assert await llm.invoke([HumanMessage("jane.doe@example.com is angry")], Scope("chat")) \
        is not None
    shown = generate_latest(metrics.registry).decode()
    assert ('metaops_llm_calls_total{model="ops-model",outcome="error",provider="primary",'
            'purpose="chat"} 1.0') in shown
    assert ('metaops_llm_tokens_total{direction="input",model="backup-model",'
            'provider="secondary"} 400000.0') in shown
    assert 'metaops_llm_cost_usd_total{model="backup-model",provider="secondary"} 0.5' in shown
    assert "jane" not in shown and "angry" not in shown
