"""Reasoners decide which specialists look at an incident; the rule reasoner needs no model."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Protocol

from agents.runbooks.context import AlertContext
from agents.runbooks.matcher import match
from agents.runbooks.schema import Runbook
from agents.specialist_names import COST_INVESTIGATOR, LOG_SUMMARIZER, RUNBOOK_EXECUTOR

SPECIALISTS = (COST_INVESTIGATOR, LOG_SUMMARIZER, RUNBOOK_EXECUTOR)

# A cost alert by name; a `category: cost` label says so explicitly for any other name.
_COST_NAME = re.compile(r"(?i)cost|spend|burn_?rate|budget|billing")


def is_cost_alert(alert: AlertContext) -> bool:
    category = alert.labels.get("category", "").lower()
    if category:
        return category == "cost"
    return _COST_NAME.search(alert.name) is not None


class Reasoner(Protocol):
    def route(self, alerts: Sequence[AlertContext]) -> list[str]:
        """Specialists to run for these alerts, in order; each must be in SPECIALISTS."""
        ...


class RuleReasoner:
    """Pure rules. Cost alerts go to the cost investigator, which also proposes what their
    runbook says; every other alert (errors, latency, quality) goes to the log summarizer and
    then, when a runbook matches, to the runbook executor, which can use the summary."""

    def __init__(self, runbooks: Sequence[Runbook]) -> None:
        self._runbooks = list(runbooks)

    def runbook_for(self, alerts: Sequence[AlertContext]) -> Runbook | None:
        for alert in alerts:
            found = match(self._runbooks, alert)
            if found is not None:
                return found
        return None

    def route(self, alerts: Sequence[AlertContext]) -> list[str]:
        cost = [a for a in alerts if is_cost_alert(a)]
        other = [a for a in alerts if not is_cost_alert(a)]
        routes: list[str] = []
        if cost:
            routes.append(COST_INVESTIGATOR)
        if other:
            routes.append(LOG_SUMMARIZER)
            if self.runbook_for(other) is not None:
                routes.append(RUNBOOK_EXECUTOR)
        return routes
