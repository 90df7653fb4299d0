"""Post-mortem writer (pure): data model, deterministic Markdown draft, validator, lint, merge."""

from agents.postmortem.lint import lint
from agents.postmortem.model import (
    AUTO_MARKER,
    DURATIONS,
    HUMAN_MARKER,
    SECTIONS,
    Draft,
    PostmortemInput,
    Problem,
)
from agents.postmortem.revisions import human_sections, merge
from agents.postmortem.validator import validate
from agents.postmortem.writer import write

__all__ = [
    "AUTO_MARKER",
    "DURATIONS",
    "HUMAN_MARKER",
    "SECTIONS",
    "Draft",
    "PostmortemInput",
    "Problem",
    "human_sections",
    "lint",
    "merge",
    "validate",
    "write",
]
