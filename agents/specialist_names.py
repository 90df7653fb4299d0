"""Names of the specialists: graph nodes, audit actors and `findings.<name>` in runbooks."""

from __future__ import annotations

RUNBOOK_EXECUTOR = "runbook_executor"
LOG_SUMMARIZER = "log_summarizer"
COST_INVESTIGATOR = "cost_investigator"
POSTMORTEM_WRITER = "postmortem_writer"

# Specialists whose findings a runbook step may read as `findings.<name>`.
FINDING_SPECIALISTS = frozenset({LOG_SUMMARIZER, COST_INVESTIGATOR})
