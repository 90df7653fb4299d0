"""Retry waits: capped exponential backoff with full jitter, and the server's Retry-After."""

from __future__ import annotations

import email.utils
import math
import random
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from core.timeutil import as_utc, utcnow

__all__ = [
    "RETRY_AFTER_MAX_SECONDS",
    "Wait",
    "delay",
    "next_delay",
    "retry_after_seconds",
]

# Longest server-requested wait we represent; anything longer (a year, 1e400) reads as this,
# which is above any sane retry cap, so next_delay() turns it into give_up.
RETRY_AFTER_MAX_SECONDS: Final = 3600.0
# 2**62 times any sane base is already far past any cap; stops float overflow on huge attempts.
_MAX_EXPONENT: Final = 62
# delta-seconds is 1*DIGIT (RFC 9110); a fraction is tolerated because OpenAI-compatible
# servers send one. Signs, exponents, "inf"/"nan" and "1_0" (all accepted by float()) are not.
_NUMBER: Final = re.compile(r"\d+(?:\.\d+)?")

_rng = random.Random()  # noqa: S311 - jitter spreads retries; it is not a secret


@dataclass(frozen=True, slots=True)
class Wait:
    """What to do before the next attempt: sleep `seconds`, or, when `give_up`, stop retrying
    this provider and fall back (`seconds` is then how long the provider asked us to stay away,
    useful to keep it skipped that long)."""

    seconds: float
    give_up: bool
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"seconds": self.seconds, "give_up": self.give_up, "reason": self.reason}


def _check_bounds(base: float, cap: float) -> None:
    if not (math.isfinite(base) and math.isfinite(cap)) or base < 0 or cap < 0:
        raise ValueError(f"backoff base and cap must be finite and >= 0 (got {base}, {cap})")


def delay(attempt: int, *, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Seconds to wait before retry number `attempt` (0 = the first retry): uniform in
    [0, min(cap, base * 2**attempt)].

    Full jitter rather than equal jitter: when a provider throttles, every in-flight incident
    and chat gets its 429 at about the same moment; spreading their retries over the whole
    interval de-synchronises them best and costs the least total waiting (AWS Architecture
    Blog, "Exponential Backoff And Jitter"). Equal jitter's guaranteed minimum wait buys
    nothing here: the breaker, the cap and Retry-After already protect the provider.
    """
    _check_bounds(base, cap)
    ceiling = min(cap, base * 2.0 ** min(max(attempt, 0), _MAX_EXPONENT))
    return (rng or _rng).uniform(0.0, ceiling)


def _header(headers: Mapping[str, str], name: str) -> str | None:
    """Case-insensitive lookup that works for plain dicts as well as httpx.Headers."""
    value = headers.get(name)
    if value is not None:
        return value
    for key, found in headers.items():
        if key.lower() == name:
            return found
    return None


def _http_date_delta(text: str, now: datetime) -> float | None:
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    # HTTP-dates are always GMT; asctime and "-0000" forms parse as naive.
    return (as_utc(when) - as_utc(now)).total_seconds()


def retry_after_seconds(
    headers: Mapping[str, str],
    *,
    now: datetime | None = None,
    max_seconds: float = RETRY_AFTER_MAX_SECONDS,
) -> float | None:
    """The wait a server asked for, in seconds, or None when it asked for none we can read.

    `retry-after-ms` (OpenAI's, more precise) wins over `Retry-After`; `Retry-After` is
    delta-seconds or an HTTP-date (measured against `now`, default the current UTC time).
    A date in the past means 0. The result is within [0, max_seconds]. Malformed values,
    including negative numbers, are ignored so the caller falls back to its own backoff
    rather than retrying at once.
    """
    raw_ms = _header(headers, "retry-after-ms")
    if raw_ms is not None and _NUMBER.fullmatch(raw_ms.strip()):
        return min(float(raw_ms.strip()) / 1000.0, max_seconds)
    raw = _header(headers, "retry-after")
    if raw is None:
        return None
    text = raw.strip()
    if _NUMBER.fullmatch(text):
        # A 400-digit value floats to inf, which min() clamps: a long wait, not garbage.
        return min(float(text), max_seconds)
    delta = _http_date_delta(text, now or utcnow())
    if delta is None:
        return None
    return min(max(delta, 0.0), max_seconds)


def next_delay(
    attempt: int,
    headers: Mapping[str, str] | None,
    *,
    base: float,
    cap: float,
    rng: random.Random | None = None,
    now: datetime | None = None,
) -> Wait:
    """The wait before retry `attempt`: the server's Retry-After when it sent one we can read,
    else our jittered backoff.

    A Retry-After above `cap` gives up instead of being shortened to the cap: retrying before
    the server's time would only earn another 429, and sleeping longer than the cap holds an
    incident hostage to one provider when the next provider or the deterministic path can
    answer now. The server's value is used as is, without jitter: it already tells each client
    its own time, and it is the earliest moment worth trying.
    """
    _check_bounds(base, cap)
    server = retry_after_seconds(headers, now=now) if headers else None
    if server is None:
        seconds = delay(attempt, base=base, cap=cap, rng=rng)
        return Wait(seconds, False, f"backoff: attempt {max(attempt, 0)}, {seconds:.3f}s")
    if server > cap:
        return Wait(
            server,
            True,
            f"server asked to retry after {server:g}s, above the {cap:g}s cap: giving up",
        )
    return Wait(server, False, f"server asked to retry after {server:g}s")
