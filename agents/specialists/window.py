"""The investigation window, derived from the alerts' own timestamps (not the wall clock alone)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from agents.specialists.config import SpecialistConfig
from core.timeutil import iso


class Timed(Protocol):
    @property
    def starts_at(self) -> datetime: ...

    @property
    def ends_at(self) -> datetime | None: ...


@dataclass(frozen=True, slots=True)
class Window:
    start: datetime
    end: datetime
    fired_at: datetime  # the earliest alert's startsAt: burn rates are measured before it

    @property
    def empty(self) -> bool:
        return self.end <= self.start

    def as_dict(self) -> dict[str, Any]:
        return {"start": iso(self.start), "end": iso(self.end), "fired_at": iso(self.fired_at)}


def investigation_window(alerts: Sequence[Timed], now: datetime,
                         config: SpecialistConfig) -> Window:
    """From the earliest startsAt - lookback to the earliest of: the end of the alerts (only
    when every alert has ended), the earliest startsAt + max span, and now. A delayed or
    replayed alert therefore sees its own time, and a window never reaches into the future."""
    if not alerts:
        raise ValueError("an investigation window needs at least one alert")
    fired = min(a.starts_at for a in alerts)
    ends = [a.ends_at for a in alerts]
    candidates = [fired + config.max_span, now]
    if all(e is not None and e > fired for e in ends):
        candidates.append(max(e for e in ends if e is not None))
    return Window(start=fired - config.lookback, end=min(candidates), fired_at=fired)
