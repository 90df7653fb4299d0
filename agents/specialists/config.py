"""What the specialists read from settings: the investigation window and cost thresholds."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from core.settings import Settings


@dataclass(frozen=True, slots=True)
class SpecialistConfig:
    lookback: timedelta = timedelta(minutes=30)
    max_span: timedelta = timedelta(hours=2)
    budget_usd_per_hour: float | None = None
    runaway_min_rpm: float = 20.0
    runaway_min_minutes: float = 5.0
    runaway_context_factor: float = 3.0
    runaway_tool_call_share: float = 0.5
    top: int = 10

    @classmethod
    def from_settings(cls, settings: Settings) -> SpecialistConfig:
        return cls(
            lookback=timedelta(minutes=settings.investigation_lookback_minutes),
            max_span=timedelta(minutes=settings.investigation_max_minutes),
            budget_usd_per_hour=settings.cost_budget_usd_per_hour,
            runaway_min_rpm=settings.runaway_min_rpm,
            runaway_min_minutes=settings.runaway_min_minutes,
            runaway_context_factor=settings.runaway_context_factor,
        )
