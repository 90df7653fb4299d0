"""Tests for guardrails.breaker: the state machine on a fake clock, trials, the registry."""

from __future__ import annotations

import asyncio
import threading

import pytest
from pydantic import ValidationError

from guardrails.breaker import (
    DEFAULT_TRIAL_TIMEOUT_SECONDS,
    BreakerConfig,
    Breakers,
    BreakerState,
    CircuitBreaker,
    Transition,
)


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def make(clock: FakeClock, **overrides: float) -> CircuitBreaker:
    params: dict[str, float] = {
        "failure_threshold": 3,
        "window_seconds": 60.0,
        "cooldown_seconds": 30.0,
    }
    params.update(overrides)
    return CircuitBreaker(
        "primary",
        failure_threshold=int(params["failure_threshold"]),
        window_seconds=params["window_seconds"],
        cooldown_seconds=params["cooldown_seconds"],
        clock=clock,
    )


def state(breaker: CircuitBreaker) -> BreakerState:
    # Through a function so mypy does not narrow the property across calls that change it.
    return breaker.state


def trip(breaker: CircuitBreaker) -> Transition | None:
    last = None
    for _ in range(breaker.failure_threshold):
        assert breaker.allow()
        last = breaker.record_failure()
    return last


def test_starts_closed_and_allows(clock: FakeClock) -> None:
    b = make(clock)
    assert state(b) == "closed"
    assert b.opened_at is None
    assert all(b.allow() for _ in range(10))


def test_opens_after_exactly_n_failures_in_window(clock: FakeClock) -> None:
    b = make(clock)
    assert b.record_failure() is None
    clock.advance(10)
    assert b.record_failure() is None
    assert state(b) == "closed"
    assert b.allow()
    clock.advance(10)
    transition = b.record_failure()
    assert transition == Transition("primary", "closed", "open", clock.now)
    assert state(b) == "open"
    assert b.opened_at == clock.now


def test_failures_older_than_the_window_do_not_count(clock: FakeClock) -> None:
    b = make(clock)
    b.record_failure()  # t=0
    clock.advance(30)
    b.record_failure()  # t=30
    clock.advance(30)  # t=60: the first failure is exactly window_seconds old, so it expired
    assert b.record_failure() is None
    assert state(b) == "closed"
    assert b.snapshot().failures_in_window == 2
    clock.advance(29.999)  # t=89.999: failures at 30 and 60 still count
    assert b.record_failure() is not None
    assert state(b) == "open"


def test_window_slides_while_idle(clock: FakeClock) -> None:
    b = make(clock)
    b.record_failure()
    b.record_failure()
    clock.advance(61)
    assert b.snapshot().failures_in_window == 0
    b.record_failure()
    assert state(b) == "closed"


def test_successes_while_closed_do_not_erase_failures(clock: FakeClock) -> None:
    b = make(clock)
    for _ in range(2):
        b.record_failure()
        assert b.record_success() is None
    b.record_failure()
    assert state(b) == "open"


def test_rejects_while_open(clock: FakeClock) -> None:
    b = make(clock)
    trip(b)
    for _ in range(5):
        assert not b.allow()
        clock.advance(5)  # 25 s into a 30 s cool-down
    assert state(b) == "open"
    snap = b.snapshot()
    assert snap.retry_in_seconds == pytest.approx(5.0)
    assert snap.trial_in_flight is False


def test_outcomes_reported_while_open_are_ignored(clock: FakeClock) -> None:
    b = make(clock)
    trip(b)
    opened = b.opened_at
    clock.advance(20)
    assert b.record_failure() is None  # a late failure does not extend the cool-down
    assert b.record_success() is None  # nor does a late success close it
    assert b.opened_at == opened
    clock.advance(10)
    assert state(b) == "half_open"


def test_half_opens_after_cooldown(clock: FakeClock) -> None:
    b = make(clock)
    trip(b)
    clock.advance(29.999)
    assert state(b) == "open"
    assert not b.allow()
    clock.advance(0.001)
    assert state(b) == "half_open"
    assert b.snapshot().retry_in_seconds is None


def test_only_one_trial_in_half_open(clock: FakeClock) -> None:
    b = make(clock)
    trip(b)
    clock.advance(30)
    assert b.allow()
    assert b.snapshot().trial_in_flight
    assert not b.allow()
    assert not b.allow()
    assert state(b) == "half_open"


def test_trial_success_closes_and_clears_counts(clock: FakeClock) -> None:
    b = make(clock)
    b.record_failure()
    b.record_failure()
    b.record_failure()
    clock.advance(30)
    assert b.allow()
    assert b.record_success() == Transition("primary", "half_open", "closed", clock.now)
    assert state(b) == "closed"
    assert b.opened_at is None
    snap = b.snapshot()
    assert snap.failures_in_window == 0
    assert not snap.trial_in_flight
    # Counts start from zero: it takes a full N failures again to open.
    b.record_failure()
    b.record_failure()
    assert state(b) == "closed"
    b.record_failure()
    assert state(b) == "open"


def test_trial_failure_reopens_with_fresh_cooldown(clock: FakeClock) -> None:
    b = make(clock)
    trip(b)
    clock.advance(30)
    assert b.allow()
    clock.advance(2)
    assert b.record_failure() == Transition("primary", "half_open", "open", clock.now)
    assert state(b) == "open"
    assert b.opened_at == clock.now
    clock.advance(29)
    assert not b.allow()
    clock.advance(1)
    assert b.allow()  # the next trial
    assert b.snapshot().times_opened == 2


def test_release_frees_the_trial_slot(clock: FakeClock) -> None:
    b = make(clock)
    trip(b)
    clock.advance(30)
    assert b.allow()
    b.release()
    assert state(b) == "half_open"
    assert b.allow()
    assert not b.allow()


def test_lost_trial_is_presumed_gone_after_the_trial_timeout(clock: FakeClock) -> None:
    b = make(clock)  # cool-down 30 s, so the trial timeout defaults to 60 s
    assert b.trial_timeout_seconds == DEFAULT_TRIAL_TIMEOUT_SECONDS
    trip(b)
    clock.advance(30)
    assert b.allow()
    clock.advance(59.9)
    assert not b.allow()
    clock.advance(0.1)
    assert b.allow()
    assert not b.allow()


def test_trial_timeout_is_configurable(clock: FakeClock) -> None:
    b = CircuitBreaker(
        "p",
        failure_threshold=1,
        window_seconds=10,
        cooldown_seconds=5,
        trial_timeout_seconds=120,
        clock=clock,
    )
    b.record_failure()
    clock.advance(5)
    assert b.allow()
    clock.advance(119)
    assert not b.allow()
    clock.advance(1)
    assert b.allow()


def test_threshold_one_and_zero_cooldown(clock: FakeClock) -> None:
    b = make(clock, failure_threshold=1, cooldown_seconds=0)
    b.record_failure()
    assert state(b) == "half_open"  # no cool-down: straight to a trial
    assert b.allow()
    assert not b.allow()


def test_snapshot_as_dict(clock: FakeClock) -> None:
    b = make(clock)
    b.record_failure()
    assert b.snapshot().as_dict() == {
        "name": "primary",
        "state": "closed",
        "failures_in_window": 1,
        "failure_threshold": 3,
        "retry_in_seconds": None,
        "trial_in_flight": False,
        "times_opened": 0,
    }


@pytest.mark.parametrize(
    "overrides",
    [
        {"failure_threshold": 0},
        {"window_seconds": 0},
        {"window_seconds": float("inf")},
        {"cooldown_seconds": -1},
        {"cooldown_seconds": float("nan")},
    ],
)
def test_invalid_settings_are_refused(clock: FakeClock, overrides: dict[str, float]) -> None:
    with pytest.raises(ValidationError):
        make(clock, **overrides)


def test_only_one_thread_gets_the_trial(clock: FakeClock) -> None:
    b = make(clock)
    trip(b)
    clock.advance(30)
    start = threading.Barrier(16)
    granted: list[bool] = []
    lock = threading.Lock()

    def worker() -> None:
        start.wait()
        got = b.allow()
        with lock:
            granted.append(got)

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert granted.count(True) == 1


async def test_usable_from_asyncio_tasks(clock: FakeClock) -> None:
    b = make(clock)
    trip(b)
    clock.advance(30)

    async def attempt() -> bool:
        await asyncio.sleep(0)
        return b.allow()

    results = await asyncio.gather(*(attempt() for _ in range(8)))
    assert results.count(True) == 1


# -- registry ------------------------------------------------------------------------------


def test_registry_creates_one_breaker_per_provider_from_one_config(clock: FakeClock) -> None:
    config = BreakerConfig(failure_threshold=2, window_seconds=10, cooldown_seconds=5)
    breakers = Breakers(config, clock=clock)
    primary = breakers.get("primary")
    assert breakers.get("primary") is primary
    assert breakers["primary"] is primary
    secondary = breakers.get("secondary")
    assert secondary is not primary
    assert "primary" in breakers
    assert "tertiary" not in breakers
    assert len(breakers) == 2
    assert secondary.failure_threshold == 2
    assert secondary.window_seconds == 10
    assert secondary.cooldown_seconds == 5

    primary.record_failure()
    primary.record_failure()
    assert state(primary) == "open"
    assert state(secondary) == "closed"
    assert [(s.name, s.state) for s in breakers.snapshots()] == [
        ("primary", "open"),
        ("secondary", "closed"),
    ]
    clock.advance(5)  # the registry's clock drives every breaker
    assert state(primary) == "half_open"


def test_registry_default_config_and_parsing() -> None:
    assert Breakers().config == BreakerConfig()
    parsed = BreakerConfig.model_validate(
        {"failure_threshold": 4, "window_seconds": 30, "cooldown_seconds": 15}
    )
    assert parsed.trial_timeout_seconds is None
    with pytest.raises(ValidationError):
        BreakerConfig.model_validate({"failure_threshold": 4, "bogus": 1})


def test_registry_is_thread_safe() -> None:
    breakers = Breakers()
    seen: list[CircuitBreaker] = []
    lock = threading.Lock()
    start = threading.Barrier(8)

    def worker() -> None:
        start.wait()
        b = breakers.get("shared")
        with lock:
            seen.append(b)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({id(b) for b in seen}) == 1
