"""READ tool `metrics.cost_report`: LLM spend by user and model from the structured request log.

Only `llm_completion` events (field `event_type`, else `event`) of the service in [start, end)
count. A missing, non-numeric, non-finite or negative value is skipped but its event still counts
as a request; a request without a usable `cost_usd` is also counted in `meta.missing_cost`. A
request's tokens are `token_usage.total`, else prompt + completion (whichever are usable); a
missing user or model is "(unknown)". Quantiles interpolate like `embedded.quantile`.

Memory grows with the number of users and models, plus three compact per-request arrays: the
costs (for the cost quantiles), the prompt tokens (-1 when unusable) and, aligned with them, a
packed (user, minute) key. The last lets `context_factor` (against the exact median of the other
users' prompt tokens) and `peak_requests_per_minute` be exact for the reported users, whatever
order the events arrive in (several files interleave one user's requests), without keeping
per-event objects. Only at the end are the costs and prompt tokens sorted into lists, and the
reported users' own requests gathered.
"""

from __future__ import annotations

import math
from array import array
from bisect import bisect_right
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Self

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from tools.base import Effect, ReadTool, ToolResult, ToolSpec
from tools.metrics.embedded import COMPLETION, parse_ts
from tools.metrics.tools import RequestLogProvider, ServiceName

UNKNOWN = "(unknown)"
TOOL_CALLS = "tool_calls"
# A key packs (user index, minute offset from the window's first minute): 2**34 minutes is
# more than the whole datetime range, so the two never overlap.
_MINUTE_BITS = 34
_MINUTE_MASK = (1 << _MINUTE_BITS) - 1
_MINUTE = timedelta(minutes=1)
_MAX_COUNT = 2**53


class CostReportArgs(BaseModel):
    """Spend over [start, end) of one service (None: every service); `top` users and models."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    start: AwareDatetime
    end: AwareDatetime
    service: ServiceName | None = None
    top: int = Field(default=10, ge=1, le=100)

    @model_validator(mode="after")
    def _window(self) -> Self:
        if self.end <= self.start:
            raise ValueError("end must be after start")
        return self


def _num(value: Any) -> float | None:
    """`value` as a finite, non-negative number; None if it is anything else."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)  # a JSON integer can be too large for a float
    except OverflowError:
        return None
    return number if math.isfinite(number) and number >= 0 else None


def _count(value: Any) -> int | None:
    """`value` as a token count; None if unusable or beyond what a float counts exactly (such
    a figure is garbage, and it would not fit the 64-bit prompt-token array)."""
    number = _num(value)
    return int(number) if number is not None and number < _MAX_COUNT else None


def _at(ordered: Sequence[float], q: float) -> float | None:
    """The q-quantile of sorted `ordered`, interpolated exactly like `embedded.quantile`."""
    if not ordered:
        return None
    pos = (len(ordered) - 1) * q
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return float(ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo))


def _kth_excluding(everyone: Sequence[int], own: Sequence[int], k: int) -> int:
    """The k-th smallest (0-based) of the multiset `everyone` minus `own` (both sorted, `own`
    contained in `everyone`): binary search for the first value with k + 1 others at or below."""
    lo, hi = 0, len(everyone) - 1
    while lo < hi:
        mid = (lo + hi) // 2
        value = everyone[mid]
        if bisect_right(everyone, value) - bisect_right(own, value) >= k + 1:
            hi = mid
        else:
            lo = mid + 1
    return everyone[lo]


def _median_excluding(everyone: Sequence[int], own: Sequence[int]) -> float | None:
    """The median (linear interpolation) of `everyone` without `own`; None if nothing is left."""
    n = len(everyone) - len(own)
    if n <= 0:
        return None
    pos = (n - 1) * 0.5
    lo = math.floor(pos)
    hi = min(lo + 1, n - 1)
    a = _kth_excluding(everyone, own, lo)
    b = a if hi == lo else _kth_excluding(everyone, own, hi)
    return a + (b - a) * (pos - lo)


@dataclass(slots=True)
class _Spend:
    """Running totals of one user or one model."""

    cost: float = 0.0
    tokens: int = 0
    requests: int = 0


@dataclass(slots=True)
class _User:
    name: str
    index: int
    first: datetime
    last: datetime
    spend: _Spend
    prompt_sum: int = 0
    prompt_n: int = 0
    prompt_min: int | None = None
    prompt_max: int | None = None
    tool_calls: int = 0


def _ranked(items: Mapping[str, _Spend], top: int, key: str) -> list[dict[str, Any]]:
    order = sorted(items.items(), key=lambda kv: (-kv[1].cost, kv[0]))[:top]
    return [{key: name, "cost_usd": round(s.cost, 6), "tokens": s.tokens,
             "requests": s.requests} for name, s in order]


def _iso(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat()


class CostReport:
    spec = ToolSpec("metrics.cost_report",
                    "LLM spend from the request log over [start, end) of a service (default all): "
                    "totals (requests, USD, tokens), burn rate (USD/h), cost per query p50/p99, "
                    "prompt tokens p50, the top users and models by cost, and per top user the "
                    "activity that tells a runaway loop (requests per minute and peak minute, "
                    "prompt size against other users' median, share of tool-call steps).",
                    CostReportArgs, Effect.READ)

    def __init__(self, request_log: RequestLogProvider) -> None:
        self.request_log = request_log

    def run(self, args: BaseModel | Mapping[str, Any]) -> ToolResult:
        try:
            if isinstance(args, CostReportArgs):
                parsed = args
            else:
                raw = args.model_dump() if isinstance(args, BaseModel) else dict(args)
                parsed = CostReportArgs.model_validate(raw)
        except ValidationError as exc:
            return ToolResult.fail(f"{self.spec.name}: invalid arguments: {exc}")
        start, end = parsed.start.astimezone(UTC), parsed.end.astimezone(UTC)
        data = cost_report(self.request_log(start, end), parsed.service, start, end, parsed.top)
        if not data["totals"]["requests"]:
            where = "all services" if parsed.service is None else repr(parsed.service)
            return ToolResult("no_data", data,
                              f"{self.spec.name}: no llm_completion events for {where} in "
                              f"[{_iso(start)}, {_iso(end)})")
        return ToolResult.ok(**data)


def cost_report(events: Iterable[Mapping[str, Any]], service: str | None, start: datetime,
                end: datetime, top: int = 10) -> dict[str, Any]:
    """The report (see the module docstring) of `service` (None: all) over [start, end)."""
    seconds = (end - start).total_seconds()
    if seconds <= 0:
        raise ValueError("end must be after start")
    first_minute = start.astimezone(UTC).replace(second=0, microsecond=0)
    users: dict[str, _User] = {}
    models: dict[str, _Spend] = {}
    costs = array("d")
    prompts = array("q")  # aligned with keys; -1 when the request has no usable prompt count
    keys = array("q")
    seen = missing_cost = bad_ts = 0
    cost_total = 0.0
    tokens_total = prompt_total = completion_total = 0
    for event in events:
        seen += 1
        if service is not None and event.get("service") != service:
            continue
        if event.get("event_type", event.get("event")) != COMPLETION:
            continue
        ts = parse_ts(event.get("timestamp"))
        if ts is None:
            bad_ts += 1
            continue
        if not start <= ts < end:
            continue
        raw_user = event.get("user_id")
        name = str(raw_user) if raw_user not in (None, "") else UNKNOWN
        user = users.get(name)
        if user is None:
            user = users[name] = _User(name, len(users), ts, ts, _Spend())
        raw_model = event.get("model")
        model_name = str(raw_model) if raw_model not in (None, "") else UNKNOWN
        model = models.setdefault(model_name, _Spend())

        cost = _num(event.get("cost_usd"))
        if cost is None:
            missing_cost += 1
            cost = 0.0
        else:
            costs.append(cost)
        usage = event.get("token_usage")
        usage = usage if isinstance(usage, Mapping) else {}
        prompt = _count(usage.get("prompt"))
        completion = _count(usage.get("completion")) or 0
        total = _count(usage.get("total"))
        tokens = total if total is not None else (prompt or 0) + completion

        cost_total += cost
        tokens_total += tokens
        prompt_total += prompt or 0
        completion_total += completion
        for spend in (user.spend, model):
            spend.cost += cost
            spend.tokens += tokens
            spend.requests += 1
        user.first = min(user.first, ts)
        user.last = max(user.last, ts)
        if event.get("finish_reason") == TOOL_CALLS:
            user.tool_calls += 1
        if prompt is not None:
            user.prompt_sum += prompt
            user.prompt_n += 1
            user.prompt_min = prompt if user.prompt_min is None else min(user.prompt_min, prompt)
            user.prompt_max = prompt if user.prompt_max is None else max(user.prompt_max, prompt)
        prompts.append(-1 if prompt is None else prompt)
        keys.append((user.index << _MINUTE_BITS) | ((ts - first_minute) // _MINUTE))

    requests = len(keys)
    ordered_costs = sorted(costs)
    everyone = sorted(p for p in prompts if p >= 0)
    spend_by_user = {name: u.spend for name, u in users.items()}
    top_users = _ranked(spend_by_user, top, "user_id")
    activity = _activity([users[row["user_id"]] for row in top_users], prompts, keys, everyone)
    hours = seconds / 3600
    return {
        "service": service,
        "window": {"start": _iso(start), "end": _iso(end), "seconds": seconds},
        "totals": {"requests": requests, "cost_usd": round(cost_total, 6),
                   "tokens": tokens_total, "prompt_tokens": prompt_total,
                   "completion_tokens": completion_total},
        "burn_rate_usd_per_hour": round(cost_total / hours, 6),
        "cost_per_query_p50": _round(_at(ordered_costs, 0.5), 6),
        "cost_per_query_p99": _round(_at(ordered_costs, 0.99), 6),
        "prompt_tokens_p50": _at(everyone, 0.5),
        "top_users": top_users,
        "top_models": _ranked(models, top, "model"),
        "user_activity": activity,
        "meta": {"events_seen": seen, "completions": requests, "missing_cost": missing_cost,
                 "users": len(users), "models": len(models),
                 "skipped_bad_timestamp": bad_ts},
    }


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def _activity(chosen: list[_User], prompts: Sequence[int], keys: Sequence[int],
              everyone: list[int]) -> list[dict[str, Any]]:
    """Activity rows of the `chosen` users; one pass over the arrays collects just their
    requests per minute and their own prompt sizes (at most the requests of those users)."""
    per_minute: dict[int, Counter[int]] = {u.index: Counter() for u in chosen}
    own: dict[int, list[int]] = {u.index: [] for u in chosen}
    for key, prompt in zip(keys, prompts, strict=True):
        index = key >> _MINUTE_BITS
        minutes = per_minute.get(index)
        if minutes is None:
            continue
        minutes[key & _MINUTE_MASK] += 1
        if prompt >= 0:
            own[index].append(prompt)
    rows: list[dict[str, Any]] = []
    for user in chosen:
        spend = user.spend
        active = max((user.last - user.first).total_seconds() / 60, 1.0)
        mean = user.prompt_sum / user.prompt_n if user.prompt_n else None
        others = _median_excluding(everyone, sorted(own[user.index]))
        factor = mean / others if mean is not None and others else None
        rows.append({
            "user_id": user.name, "requests": spend.requests,
            "cost_usd": round(spend.cost, 6),
            "first_seen": _iso(user.first), "last_seen": _iso(user.last),
            "active_minutes": round(active, 4),
            "requests_per_minute": round(spend.requests / active, 4),
            "prompt_tokens_mean": _round(mean, 4),
            "prompt_tokens_min": user.prompt_min, "prompt_tokens_max": user.prompt_max,
            "context_factor": _round(factor, 4),
            "tool_call_share": round(user.tool_calls / spend.requests, 4),
            "peak_requests_per_minute": max(per_minute[user.index].values()),
        })
    return rows


def cost_tools(request_log: RequestLogProvider) -> list[ReadTool]:
    """The cost tools on the request log: `metrics.cost_report`."""
    return [CostReport(request_log)]
