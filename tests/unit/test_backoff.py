"""Tests for guardrails.backoff: jittered delay bounds, Retry-After parsing, next_delay."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from guardrails.backoff import (
    RETRY_AFTER_MAX_SECONDS,
    Wait,
    delay,
    next_delay,
    retry_after_seconds,
)

NOW = datetime(2026, 11, 27, 10, 0, 0, tzinfo=UTC)


# -- delay ---------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(20))
def test_delay_stays_within_the_exponential_ceiling_and_the_cap(seed: int) -> None:
    rng = random.Random(seed)
    for attempt in range(200):
        d = delay(attempt, base=0.5, cap=20.0, rng=rng)
        assert 0.0 <= d <= min(20.0, 0.5 * 2**attempt)


def test_delay_uses_the_whole_interval() -> None:
    # Full jitter: over many draws at the cap, both ends of [0, cap] are reached.
    rng = random.Random(7)
    draws = [delay(10, base=1.0, cap=8.0, rng=rng) for _ in range(2000)]
    assert min(draws) < 0.1
    assert max(draws) > 7.9
    assert 3.5 < sum(draws) / len(draws) < 4.5


def test_delay_is_reproducible_with_a_seeded_rng() -> None:
    a = [delay(n, base=1, cap=30, rng=random.Random(42)) for n in range(10)]
    b = [delay(n, base=1, cap=30, rng=random.Random(42)) for n in range(10)]
    assert a == b


def test_delay_without_rng_and_with_odd_attempts() -> None:
    assert 0.0 <= delay(0, base=1.0, cap=5.0) <= 1.0
    assert 0.0 <= delay(-3, base=1.0, cap=5.0) <= 1.0  # negative reads as the first retry
    assert 0.0 <= delay(10**9, base=1.0, cap=5.0) <= 5.0  # no overflow
    assert delay(3, base=0.0, cap=5.0) == 0.0
    assert delay(3, base=1.0, cap=0.0) == 0.0


@pytest.mark.parametrize(
    ("base", "cap"), [(-1.0, 5.0), (1.0, -5.0), (float("nan"), 5.0), (1.0, float("inf"))]
)
def test_delay_refuses_bad_bounds(base: float, cap: float) -> None:
    with pytest.raises(ValueError, match="finite"):
        delay(1, base=base, cap=cap)


# -- retry_after_seconds ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [("5", 5.0), ("0", 0.0), (" 120 ", 120.0), ("1.5", 1.5), ("007", 7.0)],
)
def test_delta_seconds(value: str, expected: float) -> None:
    assert retry_after_seconds({"retry-after": value}) == expected


def test_http_date_against_a_fixed_now() -> None:
    headers = {"Retry-After": "Fri, 27 Nov 2026 10:00:30 GMT"}
    assert retry_after_seconds(headers, now=NOW) == 30.0


@pytest.mark.parametrize(
    "value",
    [
        "Friday, 27-Nov-26 10:00:30 GMT",  # RFC 850
        "Fri Nov 27 10:00:30 2026",  # asctime, no zone: GMT
        "Fri, 27 Nov 2026 11:00:30 +0100",  # not HTTP-date strictly, but unambiguous
    ],
)
def test_obsolete_and_offset_http_dates(value: str) -> None:
    assert retry_after_seconds({"retry-after": value}, now=NOW) == 30.0


def test_http_date_with_a_naive_now_is_taken_as_utc() -> None:
    headers = {"retry-after": "Fri, 27 Nov 2026 10:01:00 GMT"}
    assert retry_after_seconds(headers, now=NOW.replace(tzinfo=None)) == 60.0


def test_http_date_in_the_past_means_now() -> None:
    headers = {"retry-after": "Fri, 27 Nov 2026 09:59:00 GMT"}
    assert retry_after_seconds(headers, now=NOW) == 0.0


def test_http_date_uses_the_current_time_by_default() -> None:
    soon = datetime.now(UTC) + timedelta(seconds=100)
    value = soon.strftime("%a, %d %b %Y %H:%M:%S GMT")
    seconds = retry_after_seconds({"retry-after": value})
    assert seconds is not None
    assert 90 <= seconds <= 100


def test_ms_header_wins_over_seconds() -> None:
    headers = {"retry-after-ms": "1500", "retry-after": "30"}
    assert retry_after_seconds(headers) == 1.5
    assert retry_after_seconds({"retry-after-ms": "250.5"}) == 0.2505


def test_garbage_ms_header_falls_back_to_retry_after() -> None:
    assert retry_after_seconds({"retry-after-ms": "soon", "retry-after": "2"}) == 2.0


@pytest.mark.parametrize(
    "value",
    ["", "soon", "-5", "+5", "1e3", "inf", "nan", "5_0", "5s", "0x10", "Fri, 99 Nov 2026"],
)
def test_garbage_is_ignored(value: str) -> None:
    assert retry_after_seconds({"retry-after": value}, now=NOW) is None
    assert retry_after_seconds({"retry-after-ms": value}, now=NOW) is None


@pytest.mark.parametrize(
    "value",
    [
        "Fri, 27 Nov 99999 10:00:00 GMT",
        "Tue, 31 Feb 2026 10:00:00 GMT",
        "Fri, 27 Nov 2026 25:00:00 GMT",
    ],
)
def test_impossible_dates_are_ignored(value: str) -> None:
    assert retry_after_seconds({"retry-after": value}, now=NOW) is None


def test_no_header() -> None:
    assert retry_after_seconds({}) is None
    assert retry_after_seconds({"content-type": "application/json"}) is None


def test_clamped_to_the_maximum() -> None:
    assert retry_after_seconds({"retry-after": "86400"}) == RETRY_AFTER_MAX_SECONDS
    assert retry_after_seconds({"retry-after": "9" * 400}) == RETRY_AFTER_MAX_SECONDS
    assert retry_after_seconds({"retry-after-ms": "9" * 400}) == RETRY_AFTER_MAX_SECONDS
    far = {"retry-after": "Fri, 27 Nov 2099 10:00:30 GMT"}
    assert retry_after_seconds(far, now=NOW) == RETRY_AFTER_MAX_SECONDS
    assert retry_after_seconds({"retry-after": "90"}, max_seconds=60) == 60


def test_header_names_are_case_insensitive() -> None:
    assert retry_after_seconds({"RETRY-AFTER": "3"}) == 3.0
    assert retry_after_seconds({"Retry-After-Ms": "3000"}) == 3.0
    # What the OpenAI client hands over: an httpx.Headers from the 429 response.
    headers = httpx.Headers({"Retry-After": "4", "x-request-id": "req_1"})
    assert retry_after_seconds(headers) == 4.0


# -- next_delay ----------------------------------------------------------------------------


def test_next_delay_without_retry_after_backs_off() -> None:
    wait = next_delay(2, {}, base=1.0, cap=30.0, rng=random.Random(1))
    assert not wait.give_up
    assert 0.0 <= wait.seconds <= 4.0
    assert wait.seconds == delay(2, base=1.0, cap=30.0, rng=random.Random(1))
    assert wait.reason.startswith("backoff: attempt 2")
    assert next_delay(0, None, base=1.0, cap=30.0).give_up is False


def test_next_delay_honours_retry_after_within_the_cap() -> None:
    wait = next_delay(0, {"retry-after": "12"}, base=1.0, cap=30.0)
    assert wait == Wait(12.0, False, "server asked to retry after 12s")


def test_next_delay_honours_retry_after_at_the_cap() -> None:
    wait = next_delay(5, {"retry-after-ms": "30000"}, base=1.0, cap=30.0)
    assert wait.seconds == 30.0
    assert not wait.give_up


def test_next_delay_gives_up_when_retry_after_exceeds_the_cap() -> None:
    headers = {"retry-after": "Fri, 27 Nov 2026 10:02:00 GMT"}
    wait = next_delay(0, headers, base=1.0, cap=30.0, now=NOW)
    assert wait.give_up
    assert wait.seconds == 120.0  # how long the provider asked us to stay away
    assert "above the 30s cap" in wait.reason
    assert wait.as_dict() == {"seconds": 120.0, "give_up": True, "reason": wait.reason}


def test_next_delay_ignores_garbage_and_backs_off() -> None:
    wait = next_delay(1, {"retry-after": "later"}, base=1.0, cap=30.0, rng=random.Random(3))
    assert not wait.give_up
    assert 0.0 <= wait.seconds <= 2.0
    assert wait.reason.startswith("backoff")


def test_next_delay_refuses_bad_bounds_even_with_retry_after() -> None:
    with pytest.raises(ValueError, match="finite"):
        next_delay(0, {"retry-after": "1"}, base=1.0, cap=-1.0)
