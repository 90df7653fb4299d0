"""Reasoners decide which specialists look at an incident; the rule reasoner needs no model."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from agents.runbooks.context import AlertContext
from agents.runbooks.matcher import match
from agents.runbooks.schema import Runbook

RUNBOOK_EXECUTOR = "runbook_executor"
SPECIALISTS = (RUNBOOK_EXECUTOR,)  # log_summarizer, cost_investigator, postmortem_writer follow


class Reasoner(Protocol):
    def route(self, alerts: Sequence[AlertContext]) -> list[str]:
        """Specialists to run for these alerts, in order; each must be in SPECIALISTS."""
        ...


class RuleReasoner:
    """Pure rules: alert name and labels against the runbooks' match blocks."""

    def __init__(self, runbooks: Sequence[Runbook]) -> None:
        self._runbooks = list(runbooks)

    def runbook_for(self, alerts: Sequence[AlertContext]) -> Runbook | None:
        for alert in alerts:
            found = match(self._runbooks, alert)
            if found is not None:
                return found
        return None

    def route(self, alerts: Sequence[AlertContext]) -> list[str]:
        return [RUNBOOK_EXECUTOR] if self.runbook_for(alerts) is not None else []
