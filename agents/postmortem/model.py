"""Post-mortem data model: the writer's input and draft, problems, and the shared Markdown shape."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from core.timeutil import as_utc, parse_ts

TITLE_PREFIX: Final = "# Post-mortem: "
# The sections of every draft, in this order.
SECTIONS: Final[tuple[str, ...]] = (
    "Summary",
    "Impact",
    "Detection",
    "Timeline",
    "Actions taken",
    "Root cause and contributing factors",
    "What went well",
    "What went wrong",
    "Where we got lucky",
    "Action items",
    "Links",
)
LINKS: Final = "Links"
ACTION_ITEMS: Final = "Action items"
AUTO_MARKER: Final = "<!-- auto -->"
HUMAN_MARKER: Final = "<!-- human: kept on regeneration -->"
DURATIONS: Final[tuple[str, ...]] = (
    "time_to_detect",
    "time_to_acknowledge",
    "time_to_approve",
    "time_to_mitigate",
)

# A citation: the seq of an audit event of this incident (its place in the hash chain).
CITATION: Final = re.compile(r"\[ev:(\d+)\]")
SECTION_HEADING: Final = re.compile(r"^## (.+?)\s*$")


@dataclass(frozen=True, slots=True)
class PostmortemInput:
    """Everything the writer reads; events are the exported audit events of the incident."""

    incident: dict[str, Any]
    alerts: list[dict[str, Any]]
    findings: list[dict[str, Any]]
    actions: list[dict[str, Any]]
    events: list[dict[str, Any]]
    now: datetime


@dataclass(frozen=True, slots=True)
class Draft:
    """A written post-mortem: the Markdown, each section's body, the durations (seconds) and
    the seqs it cites."""

    markdown: str
    sections: dict[str, str]
    durations: dict[str, float | None]
    cited: list[int]


@dataclass(frozen=True, slots=True, order=True)
class Problem:
    """Something wrong with a draft, at a 1-based line of its Markdown."""

    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


@dataclass(frozen=True, slots=True)
class Section:
    name: str
    line: int  # 1-based line of the heading
    body: list[str]


def split_sections(markdown: str) -> tuple[list[str], list[Section]]:
    """The lines before the first `## ` heading, then each `## ` section with its body lines.

    Only level-2 headings split; `###` stays inside its section.
    """
    head: list[str] = []
    sections: list[Section] = []
    for number, line in enumerate(markdown.splitlines(), start=1):
        m = SECTION_HEADING.match(line)
        if m is not None:
            sections.append(Section(m.group(1), number, []))
        elif sections:
            sections[-1].body.append(line)
        else:
            head.append(line)
    return head, sections


def cited(text: str) -> list[int]:
    """Seqs cited in `text`, in order of first appearance."""
    return list(dict.fromkeys(int(m) for m in CITATION.findall(text)))


def to_datetime(value: Any) -> datetime | None:
    """An ISO string or datetime as aware UTC; None (or Go's zero time) stays None."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return as_utc(value)
    if isinstance(value, str):
        try:
            return parse_ts(value)
        except ValueError:
            return None
    return None


def event_time(event: dict[str, Any]) -> datetime | None:
    return to_datetime(event.get("ts"))
