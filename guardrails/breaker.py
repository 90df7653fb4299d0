"""Circuit breakers per model provider: closed → open → half_open, on an injectable clock."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "DEFAULT_TRIAL_TIMEOUT_SECONDS",
    "BreakerConfig",
    "BreakerSnapshot",
    "BreakerState",
    "Breakers",
    "CircuitBreaker",
    "Transition",
]

BreakerState = Literal["closed", "open", "half_open"]
Clock = Callable[[], float]
DEFAULT_TRIAL_TIMEOUT_SECONDS: Final = 60.0


class BreakerConfig(BaseModel):
    """One breaker configuration shared by every provider (settings → Breakers)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    failure_threshold: int = Field(default=5, ge=1)
    window_seconds: float = Field(default=60.0, gt=0, allow_inf_nan=False)
    cooldown_seconds: float = Field(default=30.0, ge=0, allow_inf_nan=False)
    # How long a half-open trial may stay unreported before it is presumed lost (its caller was
    # cancelled) and another trial is let through. Set it above the provider call's own timeout
    # including retries. None: the cool-down or 60 s, whichever is longer.
    trial_timeout_seconds: float | None = Field(default=None, gt=0, allow_inf_nan=False)


@dataclass(frozen=True, slots=True)
class Transition:
    """A state change caused by record_success/record_failure, returned so callers can audit it."""

    name: str
    from_state: BreakerState
    to_state: BreakerState
    at: float


@dataclass(frozen=True, slots=True)
class BreakerSnapshot:
    """Point-in-time view of one breaker for metrics and audit payloads."""

    name: str
    state: BreakerState
    failures_in_window: int
    failure_threshold: int
    opened_at: float | None
    retry_in_seconds: float | None
    trial_in_flight: bool
    times_opened: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "state": self.state,
            "failures_in_window": self.failures_in_window,
            "failure_threshold": self.failure_threshold,
            "retry_in_seconds": self.retry_in_seconds,
            "trial_in_flight": self.trial_in_flight,
            "times_opened": self.times_opened,
        }


class CircuitBreaker:
    """Opens after `failure_threshold` failures within the last `window_seconds`; after
    `cooldown_seconds` it half-opens and lets exactly one trial call through at a time:
    its success closes the breaker, its failure re-opens it with a fresh cool-down.

    A failure counts while it is younger than the window: one recorded at t stops counting at
    t + window_seconds. Successes while closed do not erase failures (the window does), so a
    provider failing every other call still trips. Outcomes reported while open are ignored:
    they belong to calls started before it opened and say nothing new.

    Every method takes the lock and never awaits, so one instance is safe to share between
    threads and asyncio tasks. Times are in the clock's units (monotonic seconds by default).
    """

    def __init__(
        self,
        name: str,
        *,
        failure_threshold: int,
        window_seconds: float,
        cooldown_seconds: float,
        clock: Clock = time.monotonic,
        trial_timeout_seconds: float | None = None,
    ) -> None:
        # Validate through the config model so the constructor and settings agree on bounds.
        config = BreakerConfig(
            failure_threshold=failure_threshold,
            window_seconds=window_seconds,
            cooldown_seconds=cooldown_seconds,
            trial_timeout_seconds=trial_timeout_seconds,
        )
        self.name = name
        self.failure_threshold = config.failure_threshold
        self.window_seconds = config.window_seconds
        self.cooldown_seconds = config.cooldown_seconds
        # A trial whose caller was cancelled never reports back; without a lease the breaker
        # would stay half-open with the slot taken, and the provider would never be tried again.
        self.trial_timeout_seconds = (
            config.trial_timeout_seconds
            if config.trial_timeout_seconds is not None
            else max(config.cooldown_seconds, DEFAULT_TRIAL_TIMEOUT_SECONDS)
        )
        self._clock = clock
        self._lock = threading.Lock()
        self._state: BreakerState = "closed"
        self._failures: deque[float] = deque()
        self._opened_at: float | None = None
        self._trial_started: float | None = None
        self._times_opened = 0

    @classmethod
    def from_config(
        cls, name: str, config: BreakerConfig, *, clock: Clock = time.monotonic
    ) -> CircuitBreaker:
        return cls(
            name,
            failure_threshold=config.failure_threshold,
            window_seconds=config.window_seconds,
            cooldown_seconds=config.cooldown_seconds,
            trial_timeout_seconds=config.trial_timeout_seconds,
            clock=clock,
        )

    # -- queries -------------------------------------------------------------------------

    @property
    def state(self) -> BreakerState:
        """Current state; reads "half_open" as soon as the cool-down is over, even unprobed."""
        with self._lock:
            self._advance(self._clock())
            return self._state

    @property
    def opened_at(self) -> float | None:
        """Clock time the breaker last opened; None while closed."""
        with self._lock:
            return self._opened_at

    def snapshot(self) -> BreakerSnapshot:
        with self._lock:
            now = self._clock()
            self._advance(now)
            retry_in: float | None = None
            if self._state == "open" and self._opened_at is not None:
                retry_in = max(0.0, self._opened_at + self.cooldown_seconds - now)
            return BreakerSnapshot(
                name=self.name,
                state=self._state,
                failures_in_window=len(self._failures),
                failure_threshold=self.failure_threshold,
                opened_at=self._opened_at,
                retry_in_seconds=retry_in,
                trial_in_flight=self._trial_started is not None,
                times_opened=self._times_opened,
            )

    # -- the call protocol -----------------------------------------------------------------

    def allow(self) -> bool:
        """May the caller make a call now? While half-open, True hands the caller the single
        trial slot: it must then report record_success, record_failure or release."""
        with self._lock:
            now = self._clock()
            self._advance(now)
            if self._state == "closed":
                return True
            if self._state == "open":
                return False
            if self._trial_started is not None:
                return False
            self._trial_started = now
            return True

    def record_success(self) -> Transition | None:
        with self._lock:
            now = self._clock()
            self._advance(now)
            if self._state != "half_open":
                return None
            # The provider answered again: forget the old failures entirely.
            self._failures.clear()
            self._opened_at = None
            self._trial_started = None
            self._state = "closed"
            return Transition(self.name, "half_open", "closed", now)

    def record_failure(self) -> Transition | None:
        with self._lock:
            now = self._clock()
            self._advance(now)
            if self._state == "open":
                return None
            if self._state == "half_open":
                return self._open(now, "half_open")
            self._failures.append(now)
            self._prune(now)
            if len(self._failures) >= self.failure_threshold:
                return self._open(now, "closed")
            return None

    def release(self) -> None:
        """Give the half-open trial slot back without an outcome (the call was cancelled)."""
        with self._lock:
            self._trial_started = None

    # -- internals (lock held) -----------------------------------------------------------

    def _prune(self, now: float) -> None:
        horizon = now - self.window_seconds
        while self._failures and self._failures[0] <= horizon:
            self._failures.popleft()

    def _advance(self, now: float) -> None:
        """Apply the time-driven transitions: window expiry, open → half_open, lost trials."""
        if self._state == "closed":
            self._prune(now)
        elif self._state == "open":
            if self._opened_at is not None and now >= self._opened_at + self.cooldown_seconds:
                self._state = "half_open"
                self._trial_started = None
        elif (
            self._trial_started is not None
            and now >= self._trial_started + self.trial_timeout_seconds
        ):
            self._trial_started = None

    def _open(self, now: float, from_state: BreakerState) -> Transition:
        self._state = "open"
        self._opened_at = now
        self._trial_started = None
        self._failures.clear()
        self._times_opened += 1
        return Transition(self.name, from_state, "open", now)


class Breakers:
    """Registry of breakers keyed by provider name, all built from one config on first use."""

    def __init__(
        self, config: BreakerConfig | None = None, *, clock: Clock = time.monotonic
    ) -> None:
        self.config = config or BreakerConfig()
        self._clock = clock
        self._lock = threading.Lock()
        self._by_name: dict[str, CircuitBreaker] = {}

    def get(self, name: str) -> CircuitBreaker:
        with self._lock:
            breaker = self._by_name.get(name)
            if breaker is None:
                breaker = CircuitBreaker.from_config(name, self.config, clock=self._clock)
                self._by_name[name] = breaker
            return breaker

    __getitem__ = get

    def __contains__(self, name: object) -> bool:
        with self._lock:
            return name in self._by_name

    def __iter__(self) -> Iterator[CircuitBreaker]:
        with self._lock:
            breakers = list(self._by_name.values())
        return iter(breakers)

    def __len__(self) -> int:
        with self._lock:
            return len(self._by_name)

    def snapshots(self) -> list[BreakerSnapshot]:
        """One snapshot per known provider, sorted by name (stable metrics output)."""
        return [b.snapshot() for b in sorted(self, key=lambda b: b.name)]
