"""`metrics.cost_report` on the scenario request logs (read through a real JsonlSource) and on
hand-written events; every expected figure is computed here from the raw JSON lines."""

from __future__ import annotations

import json
import math
import statistics
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from tools.base import Effect, ReadTool
from tools.logs.jsonl import JsonlSource
from tools.logs.records import LogQuery
from tools.metrics.cost import CostReport, cost_tools

SCENARIOS = Path("/work/shared/reference/scenarios")
COST_SPIKE = SCENARIOS / "cost-spike"
OUTAGE_LOG = SCENARIOS / "provider-outage/logs.jsonl"


def request_log(source: JsonlSource) -> Any:
    """As agents/toolbox.py builds it: the JSONL records as request-log event dicts."""

    def events(start: datetime, end: datetime) -> Iterator[dict[str, Any]]:
        for record in source.query(LogQuery(start=start, end=end)):
            yield {**record.fields, "timestamp": record.ts.isoformat(), "level": record.level,
                   "service": record.service, "message": record.message}

    return events


def at(hh: int, mm: int, day: int = 27) -> datetime:
    return datetime(2026, 11, day, hh, mm, tzinfo=UTC)


def _ts(raw: str) -> datetime:
    return datetime.fromisoformat(raw.replace("Z", "+00:00"))


def raw_completions(path: Path, start: datetime, end: datetime,
                    service: str = "chat-api") -> list[dict[str, Any]]:
    """The window's llm_completion lines of `service`, read with plain json."""
    out = []
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        e = json.loads(line)
        if (e.get("event_type") == "llm_completion" and e.get("service") == service
                and start <= _ts(e["timestamp"]) < end):
            out.append(e)
    return out


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[98]


@pytest.fixture(scope="module")
def spike() -> CostReport:
    tools = cost_tools(request_log(JsonlSource([str(COST_SPIKE / "logs.jsonl")])))
    assert len(tools) == 1 and isinstance(tools[0], CostReport)
    assert isinstance(tools[0], ReadTool)
    assert tools[0].spec.name == "metrics.cost_report" and tools[0].spec.effect is Effect.READ
    return tools[0]


def test_cost_spike_names_the_runaway_user(spike: CostReport) -> None:
    expected = json.loads((COST_SPIKE / "expected.json").read_text())
    start, end = at(9, 45), at(12, 15)
    res = spike.run({"start": start, "end": end, "service": "chat-api", "top": 5})
    assert res.status == "ok", res
    d = res.data
    assert d["service"] == "chat-api"
    assert d["window"] == {"start": "2026-11-27T09:45:00+00:00",
                           "end": "2026-11-27T12:15:00+00:00", "seconds": 9000.0}

    # Independent figures from the raw lines.
    done = raw_completions(COST_SPIKE / "logs.jsonl", start, end)
    hog = [e for e in done if e["user_id"] == "u-4711"]
    rest = [e for e in done if e["user_id"] != "u-4711"]
    hog_cost = sum(e["cost_usd"] for e in hog)
    costs = [e["cost_usd"] for e in done]
    prompts = [e["token_usage"]["prompt"] for e in done]
    assert len(hog) == 3600

    assert d["totals"] == {
        "requests": len(done), "cost_usd": pytest.approx(sum(costs), abs=1e-6),
        "tokens": sum(e["token_usage"]["total"] for e in done),
        "prompt_tokens": sum(prompts),
        "completion_tokens": sum(e["token_usage"]["completion"] for e in done)}
    assert d["burn_rate_usd_per_hour"] == pytest.approx(sum(costs) / 2.5, abs=1e-6)
    assert d["cost_per_query_p50"] == pytest.approx(statistics.median(costs), abs=1e-6)
    assert d["cost_per_query_p99"] == pytest.approx(p99(costs), abs=1e-6)
    assert d["prompt_tokens_p50"] == pytest.approx(statistics.median(prompts))

    top = d["top_users"]
    assert len(top) == 5
    assert top[0] == {"user_id": "u-4711", "cost_usd": pytest.approx(hog_cost, abs=1e-6),
                      "tokens": sum(e["token_usage"]["total"] for e in hog), "requests": 3600}
    assert top[0]["cost_usd"] >= expected["top_user_cost_usd_min"]
    assert expected["top_user"] == "u-4711"
    by_user: Counter[str] = Counter()
    for e in rest:
        by_user[e["user_id"]] += e["cost_usd"]
    runners_up = sorted(by_user.items(), key=lambda kv: (-kv[1], kv[0]))[:4]
    assert [(u["user_id"], u["cost_usd"]) for u in top[1:]] == [
        (name, pytest.approx(cost, abs=1e-6)) for name, cost in runners_up]
    assert top[1]["cost_usd"] < hog_cost / 20

    assert d["top_models"] == [{"model": "gpt-4-turbo",
                                "cost_usd": pytest.approx(sum(costs), abs=1e-6),
                                "tokens": d["totals"]["tokens"], "requests": len(done)}]

    activity = d["user_activity"]
    assert [a["user_id"] for a in activity] == [u["user_id"] for u in top]
    loop = activity[0]
    first, last = _ts(hog[0]["timestamp"]), _ts(hog[-1]["timestamp"])
    span = (last - first).total_seconds() / 60
    hog_prompts = [e["token_usage"]["prompt"] for e in hog]
    others_median = statistics.median(e["token_usage"]["prompt"] for e in rest)
    per_minute = Counter(_ts(e["timestamp"]).replace(second=0, microsecond=0) for e in hog)
    assert loop["requests"] == 3600
    assert loop["cost_usd"] == pytest.approx(hog_cost, abs=1e-6)
    assert (loop["first_seen"], loop["last_seen"]) == (first.isoformat(), last.isoformat())
    assert loop["active_minutes"] == pytest.approx(span, abs=1e-4)
    assert loop["requests_per_minute"] == pytest.approx(3600 / span, abs=1e-4)
    assert loop["requests_per_minute"] == pytest.approx(60, rel=0.01)
    assert loop["peak_requests_per_minute"] == max(per_minute.values()) == 60
    assert loop["tool_call_share"] == 1.0
    assert loop["prompt_tokens_mean"] == pytest.approx(statistics.mean(hog_prompts), abs=1e-4)
    assert (loop["prompt_tokens_min"], loop["prompt_tokens_max"]) == (min(hog_prompts),
                                                                      max(hog_prompts))
    assert loop["context_factor"] == pytest.approx(
        statistics.mean(hog_prompts) / others_median, abs=1e-4)
    assert loop["context_factor"] > 5
    # The other top spenders look like people: a handful of requests an hour, no tool loops.
    for a in activity[1:]:
        assert a["requests_per_minute"] < 2 and a["peak_requests_per_minute"] <= 5
        assert a["tool_call_share"] == 0.0 and a["context_factor"] < 2

    assert d["meta"] == {"events_seen": len(done), "completions": len(done), "missing_cost": 0,
                         "users": len({e["user_id"] for e in done}), "models": 1,
                         "skipped_bad_timestamp": 0}

    # service None: the same, since the file has one service.
    every = spike.run({"start": start, "end": end})
    assert every.status == "ok" and every.data["service"] is None
    assert every.data["totals"] == d["totals"]


def test_cost_spike_burn_rate_before_and_during(spike: CostReport) -> None:
    expected = json.loads((COST_SPIKE / "expected.json").read_text())
    # The 15 minutes before the alert fired (startsAt 10:15Z), then the quiet hour before.
    during = spike.run({"start": at(10, 0), "end": at(10, 15), "service": "chat-api"})
    before = spike.run({"start": at(9, 0), "end": at(10, 0), "service": "chat-api"})
    assert during.status == before.status == "ok"
    spent = sum(e["cost_usd"] for e in raw_completions(COST_SPIKE / "logs.jsonl", at(10, 0),
                                                       at(10, 15)))
    quiet = raw_completions(COST_SPIKE / "logs.jsonl", at(9, 0), at(10, 0))
    assert during.data["burn_rate_usd_per_hour"] == pytest.approx(spent * 4, abs=1e-5)
    assert during.data["burn_rate_usd_per_hour"] >= expected["burn_rate_usd_per_hour_min"]
    assert before.data["burn_rate_usd_per_hour"] == pytest.approx(
        sum(e["cost_usd"] for e in quiet), abs=1e-5)
    assert before.data["burn_rate_usd_per_hour"] * 10 < during.data["burn_rate_usd_per_hour"]
    assert "u-4711" not in {u["user_id"] for u in before.data["top_users"]}
    assert during.data["top_users"][0]["user_id"] == "u-4711"
    costs = [e["cost_usd"] for e in quiet]
    assert before.data["cost_per_query_p50"] == pytest.approx(statistics.median(costs),
                                                              abs=1e-6)
    assert before.data["cost_per_query_p99"] == pytest.approx(p99(costs), abs=1e-6)


def test_provider_outage_has_no_runaway_user() -> None:
    tool = CostReport(request_log(JsonlSource([str(OUTAGE_LOG)])))
    start, end = at(9, 30), at(11, 0)
    res = tool.run({"start": start, "end": end, "service": "chat-api", "top": 100})
    assert res.status == "ok", res
    d = res.data
    done = raw_completions(OUTAGE_LOG, start, end)
    assert len(done) == 1800
    users = {e["user_id"] for e in done}
    assert d["totals"] == {
        "requests": 1800, "cost_usd": pytest.approx(sum(e["cost_usd"] for e in done), abs=1e-6),
        "tokens": sum(e["token_usage"]["total"] for e in done),
        "prompt_tokens": sum(e["token_usage"]["prompt"] for e in done),
        "completion_tokens": sum(e["token_usage"]["completion"] for e in done)}
    assert d["burn_rate_usd_per_hour"] == pytest.approx(d["totals"]["cost_usd"] / 1.5, abs=1e-6)
    # Every event of the window was read, errors included; only completions count.
    assert d["meta"]["events_seen"] == 3840 and d["meta"]["completions"] == 1800
    assert d["meta"]["users"] == len(users) and d["meta"]["missing_cost"] == 0
    assert len(d["user_activity"]) == len(users)
    assert sum(a["requests"] for a in d["user_activity"]) == 1800
    # Completions only before the outage (about 60 a minute over 40 users): a few a minute per
    # user at most, where the cost-spike loop ran at 60.
    assert max(_ts(e["timestamp"]) for e in done) < at(10, 0)
    peaks = {u: max(Counter(_ts(e["timestamp"]).replace(second=0, microsecond=0)
                            for e in done if e["user_id"] == u).values()) for u in users}
    for a in d["user_activity"]:
        assert a["requests_per_minute"] < 5, a
        assert a["peak_requests_per_minute"] == peaks[a["user_id"]] < 10, a
        assert a["tool_call_share"] == 0.0
        assert a["context_factor"] is not None and 0.3 < a["context_factor"] < 3, a
    top = max(users, key=lambda u: (sum(e["cost_usd"] for e in done if e["user_id"] == u),
                                    u))
    assert d["top_users"][0]["user_id"] == top


def _completion(ts: str, user: str | None, cost: Any, usage: Any = None, *,
                model: str | None = "m1", finish: str = "stop", service: str = "api",
                key: str = "event_type") -> dict[str, Any]:
    e: dict[str, Any] = {"timestamp": ts, "level": "INFO", "service": service,
                         "message": "completion ok", key: "llm_completion",
                         "finish_reason": finish, "latency_ms": 900, "ttft_ms": 200}
    if user is not None:
        e["user_id"] = user
    if model is not None:
        e["model"] = model
    if cost is not ...:
        e["cost_usd"] = cost
    if usage is not None:
        e["token_usage"] = usage
    return e


HAND = [
    _completion("2026-01-01T12:00:10Z", "a", 1.0,
                {"prompt": 100, "completion": 20, "total": 120}),
    _completion("2026-01-01T12:00:50Z", "a", ...,  # no cost at all
                {"prompt": 200, "completion": 10, "total": 210}, finish="tool_calls"),
    _completion("2026-01-01T12:02:00Z", "a", math.nan,  # string prompt, no total
                {"prompt": "300", "completion": 30}, model="m2"),
    _completion("2026-01-01T12:30:00Z", None, 0.5,  # no user; the `event` spelling
                {"prompt": 400, "completion": 40, "total": 440}, model="m2",
                finish="tool_calls", key="event"),
    _completion("2026-01-01T12:15:00Z", "c", 0.5, {"prompt": 10, "completion": 0, "total": 10}),
    _completion("2026-01-01T12:59:59.999Z", "b", 2.0,  # no usable token count at all
                {"prompt": 10**400, "completion": 1e30, "total": "7"}, model=None),
    _completion("2026-01-01T12:59:00Z", "b", True,  # bool is no cost; negative prompt skipped
                {"prompt": -3, "total": 5.0}, model=None),
    # Not counted: another event type, another service, outside [start, end), bad timestamp.
    {**_completion("2026-01-01T12:10:00Z", "a", 100.0), "event_type": "app_log"},
    {"timestamp": "2026-01-01T12:11:00Z", "level": "ERROR", "service": "api",
     "message": "OpenAIConnectionError: boom", "user_id": "a"},
    _completion("2026-01-01T12:20:00Z", "a", 50.0,
                {"prompt": 9, "completion": 1, "total": 10}, service="batch"),
    _completion("2026-01-01T11:59:59.999Z", "a", 10.0),
    _completion("2026-01-01T13:00:00Z", "a", 10.0),
    _completion("yesterday", "a", 10.0),
]


def test_hand_written_events_give_exact_figures() -> None:
    calls: list[tuple[datetime, datetime]] = []

    def provider(start: datetime, end: datetime) -> list[dict[str, Any]]:
        calls.append((start, end))
        return list(HAND)

    tool = CostReport(provider)
    # Offsets are fine: 13:00+01:00 is 12:00Z.
    res = tool.run({"start": "2026-01-01T13:00:00+01:00", "end": "2026-01-01T13:00:00Z",
                    "service": "api"})
    assert res.status == "ok", res
    assert calls == [(datetime(2026, 1, 1, 12, tzinfo=UTC), datetime(2026, 1, 1, 13, tzinfo=UTC))]
    d = res.data
    assert d["window"] == {"start": "2026-01-01T12:00:00+00:00",
                           "end": "2026-01-01T13:00:00+00:00", "seconds": 3600.0}
    # tokens: 120 + 210 + 30 (no total: unusable prompt + completion) + 440 + 10 + 0 + 5
    assert d["totals"] == {"requests": 7, "cost_usd": 4.0, "tokens": 815,
                           "prompt_tokens": 710, "completion_tokens": 100}
    assert d["burn_rate_usd_per_hour"] == 4.0
    # costs [0.5, 0.5, 1.0, 2.0]; prompts [10, 100, 200, 400]
    assert d["cost_per_query_p50"] == 0.75
    assert d["cost_per_query_p99"] == pytest.approx(1.97)
    assert d["prompt_tokens_p50"] == 150.0
    assert d["top_users"] == [
        {"user_id": "b", "cost_usd": 2.0, "tokens": 5, "requests": 2},
        {"user_id": "a", "cost_usd": 1.0, "tokens": 360, "requests": 3},
        {"user_id": "(unknown)", "cost_usd": 0.5, "tokens": 440, "requests": 1},
        {"user_id": "c", "cost_usd": 0.5, "tokens": 10, "requests": 1},  # tie: by user_id
    ]
    assert d["top_models"] == [
        {"model": "(unknown)", "cost_usd": 2.0, "tokens": 5, "requests": 2},
        {"model": "m1", "cost_usd": 1.5, "tokens": 340, "requests": 3},
        {"model": "m2", "cost_usd": 0.5, "tokens": 470, "requests": 2},
    ]
    assert d["user_activity"] == [
        {"user_id": "b", "requests": 2, "cost_usd": 2.0,
         "first_seen": "2026-01-01T12:59:00+00:00", "last_seen": "2026-01-01T12:59:59.999000+00:00",
         "active_minutes": 1.0, "requests_per_minute": 2.0, "prompt_tokens_mean": None,
         "prompt_tokens_min": None, "prompt_tokens_max": None, "context_factor": None,
         "tool_call_share": 0.0, "peak_requests_per_minute": 2},
        {"user_id": "a", "requests": 3, "cost_usd": 1.0,
         "first_seen": "2026-01-01T12:00:10+00:00", "last_seen": "2026-01-01T12:02:00+00:00",
         "active_minutes": round(110 / 60, 4), "requests_per_minute": round(3 * 60 / 110, 4),
         "prompt_tokens_mean": 150.0, "prompt_tokens_min": 100, "prompt_tokens_max": 200,
         "context_factor": round(150 / 205, 4),  # others' prompts [10, 400]
         "tool_call_share": 0.3333, "peak_requests_per_minute": 2},
        {"user_id": "(unknown)", "requests": 1, "cost_usd": 0.5,
         "first_seen": "2026-01-01T12:30:00+00:00", "last_seen": "2026-01-01T12:30:00+00:00",
         "active_minutes": 1.0, "requests_per_minute": 1.0, "prompt_tokens_mean": 400.0,
         "prompt_tokens_min": 400, "prompt_tokens_max": 400,
         "context_factor": 4.0,  # others [10, 100, 200]
         "tool_call_share": 1.0, "peak_requests_per_minute": 1},
        {"user_id": "c", "requests": 1, "cost_usd": 0.5,
         "first_seen": "2026-01-01T12:15:00+00:00", "last_seen": "2026-01-01T12:15:00+00:00",
         "active_minutes": 1.0, "requests_per_minute": 1.0, "prompt_tokens_mean": 10.0,
         "prompt_tokens_min": 10, "prompt_tokens_max": 10,
         "context_factor": 0.05,  # others [100, 200, 400]
         "tool_call_share": 0.0, "peak_requests_per_minute": 1},
    ]
    assert d["meta"] == {"events_seen": len(HAND), "completions": 7, "missing_cost": 3,
                         "users": 4, "models": 3, "skipped_bad_timestamp": 1}

    # `top` cuts both rankings and the activity rows.
    two = tool.run({"start": datetime(2026, 1, 1, 12, tzinfo=UTC),
                    "end": datetime(2026, 1, 1, 13, tzinfo=UTC), "service": "api", "top": 2})
    assert [u["user_id"] for u in two.data["top_users"]] == ["b", "a"]
    assert [m["model"] for m in two.data["top_models"]] == ["(unknown)", "m1"]
    assert [a["user_id"] for a in two.data["user_activity"]] == ["b", "a"]
    assert two.data["totals"] == d["totals"]

    # Every service: the batch completion counts too, and user a's others change.
    every = tool.run({"start": datetime(2026, 1, 1, 12, tzinfo=UTC),
                      "end": datetime(2026, 1, 1, 13, tzinfo=UTC)})
    assert every.data["totals"] == {"requests": 8, "cost_usd": 54.0, "tokens": 825,
                                    "prompt_tokens": 719, "completion_tokens": 101}
    assert every.data["top_users"][0] == {"user_id": "a", "cost_usd": 51.0, "tokens": 370,
                                          "requests": 4}
    assert every.data["meta"]["missing_cost"] == 3 and every.data["meta"]["users"] == 4


WINDOW = {"start": "2026-11-27T10:00:00Z", "end": "2026-11-27T11:00:00Z"}


@pytest.mark.parametrize(("args", "field", "says"), [
    ({"start": "2026-11-27T11:00:00Z", "end": "2026-11-27T10:00:00Z"}, "end",
     "end must be after start"),
    ({**WINDOW, "end": WINDOW["start"]}, "end", "end must be after start"),
    ({**WINDOW, "start": datetime(2026, 11, 27, 10)}, "start", "timezone"),
    ({**WINDOW, "end": "2026-11-27T11:00:00"}, "end", "timezone"),
    ({**WINDOW, "top": 0}, "top", "greater than or equal to 1"),
    ({**WINDOW, "top": 101}, "top", "less than or equal to 100"),
    ({**WINDOW, "service": ""}, "service", "at least 1 character"),
    ({**WINDOW, "bogus": 1}, "bogus", "Extra inputs are not permitted"),
    ({"start": WINDOW["start"]}, "end", "Field required"),
])
def test_bad_arguments_are_errors_naming_the_field(args: dict[str, Any], field: str,
                                                   says: str) -> None:
    called: list[tuple[datetime, datetime]] = []

    def provider(start: datetime, end: datetime) -> list[dict[str, Any]]:
        called.append((start, end))
        return []

    res = CostReport(provider).run(args)
    assert res.status == "error"
    assert res.error is not None and "metrics.cost_report: invalid arguments" in res.error
    assert field in res.error and says in res.error, res.error
    assert called == []  # the log is never read for bad arguments


def test_no_completions_is_no_data_with_the_same_shape(spike: CostReport) -> None:
    ok = spike.run({**WINDOW, "service": "chat-api"})
    for args in ({**WINDOW, "service": "no-such-service"},
                 {"start": at(8, 0), "end": at(9, 0)},
                 {"start": at(8, 0, day=28), "end": at(9, 0, day=28), "top": 3}):
        res = spike.run(args)
        assert res.status == "no_data", res
        assert res.error and "no llm_completion events" in res.error
        d = res.data
        assert set(d) == set(ok.data)
        assert d["totals"] == {"requests": 0, "cost_usd": 0.0, "tokens": 0, "prompt_tokens": 0,
                               "completion_tokens": 0}
        assert d["burn_rate_usd_per_hour"] == 0.0
        assert d["cost_per_query_p50"] is d["cost_per_query_p99"] is d["prompt_tokens_p50"] \
            is None
        assert d["top_users"] == d["top_models"] == d["user_activity"] == []
        assert d["meta"]["completions"] == d["meta"]["users"] == d["meta"]["models"] == 0
    # Non-completion events only: read, but no data.
    only_errors = [{"timestamp": "2026-11-27T10:05:00Z", "level": "ERROR", "service": "chat-api",
                    "message": "OpenAIConnectionError: x"}]
    res = CostReport(lambda s, e: only_errors).run(WINDOW)
    assert res.status == "no_data" and res.data["meta"]["events_seen"] == 1
    # An offset window reads the same instants.
    plus_one = timezone(timedelta(hours=1))
    same = spike.run({"start": datetime(2026, 11, 27, 11, tzinfo=plus_one),
                      "end": datetime(2026, 11, 27, 12, tzinfo=plus_one), "service": "chat-api"})
    assert same.data["totals"] == ok.data["totals"]
