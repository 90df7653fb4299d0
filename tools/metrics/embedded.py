"""The golden signals computed from structured request-log events when there is no Prometheus.

Requests are `llm_completion` events plus failed requests: events at level ERROR/CRITICAL, or with
finish_reason `error`. A failure's type is its `error_type` field, else the exception name that
starts its message (`OpenAIConnectionError: ...` -> `OpenAIConnectionError`), else `error`.
Quantiles interpolate linearly between ranks (like numpy's default). KV-cache and GPU figures are
not in the request log, so they are always null with a reason.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

COMPLETION = "llm_completion"
ERROR_LEVELS = frozenset({"ERROR", "CRITICAL", "FATAL"})
_ERROR_NAME = re.compile(r"^\s*([A-Za-z_][\w.]*(?:Error|Exception|Timeout|Failure)\w*)\s*:")


def quantile(values: list[float], q: float) -> float | None:
    """The q-quantile of `values` (linear interpolation); None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def parse_ts(raw: Any) -> datetime | None:
    """An event's timestamp as an aware datetime (naive means UTC); None if unusable."""
    if not isinstance(raw, str):
        return None
    try:
        ts = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        return None
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


def error_type(event: Mapping[str, Any]) -> str | None:
    """The failure type of `event`, or None if it does not mark a failed request."""
    level = str(event.get("level") or "").upper()
    if level not in ERROR_LEVELS and event.get("finish_reason") != "error":
        return None
    if isinstance(event.get("error_type"), str) and event["error_type"]:
        return str(event["error_type"])
    match = _ERROR_NAME.match(str(event.get("message") or ""))
    return match.group(1) if match else "error"


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:  # a JSON integer too big for a float is no usable figure
        return None
    return number if math.isfinite(number) else None


def _signal(value: float | None, unit: str, reason: str | None = None,
            **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"value": value, "unit": unit,
                           "reason": None if value is not None else reason}
    out.update(extra)
    return out


def embedded_signals(events: Iterable[Mapping[str, Any]], service: str | None,
                     start: datetime, end: datetime) -> dict[str, Any]:
    """{"signals": name -> {value, unit, reason, ...}, "meta": counts} of `service` (None: all)
    over [start, end) from request-log `events`; signals with no data have value None.
    """
    seconds = (end - start).total_seconds()
    if seconds <= 0:
        raise ValueError("end must be after start")
    ttft: list[float] = []
    itl: list[float] = []
    errors: Counter[str] = Counter()
    completions = prompt = completion_tokens = skipped = 0
    cost = 0.0
    for event in events:
        if service is not None and event.get("service") != service:
            continue
        ts = parse_ts(event.get("timestamp"))
        if ts is None:
            skipped += 1
            continue
        if not start <= ts < end:
            continue
        failed = error_type(event)
        if failed is not None:
            errors[failed] += 1
            continue
        if event.get("event_type", event.get("event")) != COMPLETION:
            continue
        completions += 1
        first = _num(event.get("ttft_ms"))
        if first is not None:
            ttft.append(first / 1000)
        usage = event.get("token_usage")
        usage = usage if isinstance(usage, Mapping) else {}
        p, c = _num(usage.get("prompt")), _num(usage.get("completion"))
        prompt += int(p or 0)
        completion_tokens += int(c or 0)
        total_ms = _num(event.get("latency_ms"))
        if first is not None and total_ms is not None and c is not None and c > 1:
            itl.append((total_ms - first) / 1000 / (c - 1))
        cost += _num(event.get("cost_usd")) or 0.0
    requests = completions + sum(errors.values())
    none = "no llm_completion events in the window"
    error_rate = (sum(errors.values()) / requests) if requests else None
    by_type = {k: v / requests for k, v in errors.most_common()} if requests else {}
    signals = {
        "ttft_p50": _signal(quantile(ttft, 0.5), "s", none if not completions
                            else "no ttft_ms in the window's completions"),
        "ttft_p99": _signal(quantile(ttft, 0.99), "s", none if not completions
                            else "no ttft_ms in the window's completions"),
        "inter_token_latency_p99": _signal(
            quantile(itl, 0.99), "s",
            "needs latency_ms, ttft_ms and more than one completion token"),
        "error_rate": _signal(error_rate, "ratio", "no requests in the window",
                              by=by_type, errors=sum(errors.values()), requests=requests),
        "input_tokens_per_s": _signal(prompt / seconds if completions else None, "tokens/s",
                                      none),
        "output_tokens_per_s": _signal(completion_tokens / seconds if completions else None,
                                       "tokens/s", none),
        "burn_rate_usd_per_h": _signal(cost / seconds * 3600 if completions else None, "USD/h",
                                       none, cost_usd=round(cost, 6)),
        "kv_cache_usage": _signal(None, "ratio",
                                  "not available from the request log (needs Prometheus/vLLM)"),
        "gpu_utilization": _signal(None, "percent",
                                   "not available from the request log (needs Prometheus/DCGM)"),
    }
    return {"signals": signals,
            "meta": {"requests": requests, "completions": completions,
                     "skipped_bad_timestamp": skipped, "window_seconds": seconds}}
