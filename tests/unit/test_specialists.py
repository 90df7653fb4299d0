"""Routing rules, the investigation window, runaway detection and the summaries' wording."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from agents.reasoner import RuleReasoner, is_cost_alert
from agents.runbooks.context import AlertContext
from agents.runbooks.loader import load_runbooks
from agents.runbooks.schema import Runbook
from agents.runbooks.templates import check_runbook
from agents.specialists.config import SpecialistConfig
from agents.specialists.cost_investigator import runaway_reasons
from agents.specialists.cost_investigator import summarize as cost_summary
from agents.specialists.log_summarizer import summarize as log_summary
from agents.specialists.window import investigation_window

T0 = datetime(2026, 11, 27, 10, 2, tzinfo=UTC)


@dataclass
class _Alert:
    starts_at: datetime
    ends_at: datetime | None = None


def _ctx(name: str, **labels: str) -> AlertContext:
    return AlertContext.from_labels({"alertname": name, **labels})


@pytest.mark.parametrize(("name", "labels", "cost"), [
    ("CostBurnRateHigh", {}, True),
    ("LLMSpendHigh", {}, True),
    ("TokenBudgetExceeded", {}, True),
    ("LLMProviderErrorRateHigh", {}, False),
    ("TTFTP99High", {}, False),
    ("HallucinationRateHigh", {}, False),
    ("Anything", {"category": "cost"}, True),
    ("CostBurnRateHigh", {"category": "errors"}, False),  # an explicit label wins
])
def test_cost_alerts(name: str, labels: dict[str, str], cost: bool) -> None:
    assert is_cost_alert(_ctx(name, **labels)) is cost


def test_routes() -> None:
    reasoner = RuleReasoner(load_runbooks())
    assert reasoner.route([_ctx("CostBurnRateHigh", service="chat-api")]) == ["cost_investigator"]
    assert reasoner.route([_ctx("LLMProviderErrorRateHigh", provider="openai")]) == [
        "log_summarizer", "runbook_executor"]
    # No runbook: the log summary is still worth having.
    assert reasoner.route([_ctx("DiskPressure")]) == ["log_summarizer"]
    assert reasoner.route([_ctx("CostBurnRateHigh"), _ctx("HallucinationRateHigh",
                                                          service="chat-api")]) == [
        "cost_investigator", "log_summarizer", "runbook_executor"]
    assert reasoner.route([]) == []


def test_window_from_the_alerts_own_time() -> None:
    cfg = SpecialistConfig()
    now = T0 + timedelta(days=1)  # a replayed alert: its own time, not the wall clock
    w = investigation_window([_Alert(T0)], now, cfg)
    assert (w.start, w.end, w.fired_at) == (T0 - timedelta(minutes=30),
                                           T0 + timedelta(hours=2), T0)
    # Still firing and recent: up to now.
    w = investigation_window([_Alert(T0)], T0 + timedelta(minutes=5), cfg)
    assert w.end == T0 + timedelta(minutes=5)
    # Resolved: up to its end; with several alerts, from the earliest start.
    w = investigation_window([_Alert(T0, T0 + timedelta(minutes=20)),
                              _Alert(T0 + timedelta(minutes=3), T0 + timedelta(minutes=40))],
                             now, cfg)
    assert (w.start, w.end) == (T0 - timedelta(minutes=30), T0 + timedelta(minutes=40))
    # One alert still firing: the other's end does not cut the window.
    w = investigation_window([_Alert(T0, T0 + timedelta(minutes=20)), _Alert(T0)], now, cfg)
    assert w.end == T0 + timedelta(hours=2)
    # An alert dated in the future leaves an empty window rather than reading ahead.
    w = investigation_window([_Alert(T0 + timedelta(hours=1))], T0, cfg)
    assert w.empty
    custom = SpecialistConfig(lookback=timedelta(minutes=5), max_span=timedelta(minutes=10))
    w = investigation_window([_Alert(T0)], now, custom)
    assert (w.start, w.end) == (T0 - timedelta(minutes=5), T0 + timedelta(minutes=10))
    with pytest.raises(ValueError, match="at least one alert"):
        investigation_window([], now, cfg)


def _user(**kw: Any) -> dict[str, Any]:
    base = {"user_id": "u-1", "requests_per_minute": 60.0, "active_minutes": 60.0,
            "context_factor": 12.0, "tool_call_share": 1.0}
    return {**base, **kw}


def test_runaway_needs_sustained_rate_and_a_loop_sign() -> None:
    cfg = SpecialistConfig()
    assert len(runaway_reasons(_user(), cfg)) == 3
    assert runaway_reasons(_user(requests_per_minute=5.0), cfg) == []
    assert runaway_reasons(_user(active_minutes=2.0), cfg) == []  # a burst, not a loop
    # Busy but ordinary: normal contexts, normal answers.
    assert runaway_reasons(_user(context_factor=1.1, tool_call_share=0.1), cfg) == []
    assert runaway_reasons(_user(context_factor=None, tool_call_share=0.9), cfg) != []
    assert runaway_reasons(_user(context_factor=4.0, tool_call_share=0.0), cfg) != []


def test_cost_summary_in_plain_words() -> None:
    text = cost_summary({
        "burn_rate_usd_per_hour": 420.0, "baseline_burn_rate_usd_per_hour": 20.0,
        "burn_rate_ratio": 21.0, "budget_usd_per_hour": 20.0, "spend_usd": 420.0,
        "top_users": [{"user_id": "u-4711", "cost_usd": 400.0, "requests": 3600,
                       "tokens": 1}],
        "runaway_users": [{"user_id": "u-4711", "reasons": ["60 requests/min for 60 min"]}],
        "cost_per_query_p50": 0.11, "cost_per_query_p99": 0.12})
    assert text.startswith("Burn rate $420.00/h in the 15 min before the alert (baseline "
                           "$20.00/h, 21.0×; budget $20.00/h, 21.0× the budget).")
    assert "Top user u-4711: $400.00 over 3,600 requests, 95 % of spend." in text
    assert "Runaway: u-4711 (60 requests/min for 60 min)." in text
    quiet = cost_summary({"burn_rate_usd_per_hour": None, "top_users": [], "runaway_users": []})
    assert quiet == "Burn rate n/a/h in the 15 min before the alert. No user looks like a " \
                    "runaway loop."


def test_log_summary_in_plain_words() -> None:
    window = investigation_window([_Alert(T0)], T0 + timedelta(days=1), SpecialistConfig())
    data = {"patterns": [
        {"template": "OpenAIConnectionError: timed out after <NUM>s", "level": "error",
         "share": 0.8, "count": 1600},
        {"template": "JSONDecodeError: Expecting value", "level": "error", "share": 0.15,
         "count": 300},
        {"template": "pool exhausted while waiting for a connection to the primary database "
                     "and then some more words", "level": "error", "share": 0.05, "count": 100},
        {"template": "user message: <*>", "level": "warning", "share": 1.0, "count": 40}],
        "totals": {"error": 2000, "warning": 40}, "distinct": {"error": 3, "warning": 1},
        "stats": {"malformed": 2}}
    text = log_summary(data, window, ["chat-api"])
    assert text == (
        "2,000 error lines in 3 distinct patterns: 80 % OpenAIConnectionError, "
        "15 % JSONDecodeError, 5 % pool exhausted while waiting for a connection to the… "
        "40 warning lines in 1 pattern. 2 malformed log lines were skipped. "
        "(service chat-api, 09:32–12:02 UTC)")
    empty = log_summary({"patterns": [], "totals": {}}, window, None)
    assert empty == "No error lines. (all services, 09:32–12:02 UTC)"


def test_runbooks_may_read_specialist_findings_but_not_shadow_them() -> None:
    def book(step_id: str, arg: str) -> Runbook:
        return Runbook.model_validate({
            "name": "t", "description": "d", "match": {"alertname": "X"},
            "steps": [{"id": step_id, "tool": "gitops.block_user", "args": {"user_id": arg}}]})

    ok = book("block", "{{ findings.cost_investigator.runaway_users[0].user_id }}")
    assert check_runbook(ok) == []
    assert check_runbook(book("block", "{{ findings.log_summarizer.patterns[0].template }}")) \
        == []
    assert check_runbook(book("block", "{{ findings.nobody.x }}")) == [
        ("steps[0].args.user_id", "findings.nobody: there is no step 'nobody'")]
    problems = check_runbook(book("cost_investigator", "u-1"))
    assert problems and problems[0][0] == "steps[0].id"
