"""Draft validator: each factual line cites events of this incident, and says what they say."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from itertools import combinations
from typing import Any, Final

from agents.postmortem.model import (
    ACTION_ITEMS,
    CITATION,
    LINKS,
    SECTION_HEADING,
    Problem,
    event_time,
    to_datetime,
)

# The past-tense verbs of a change or a decision: a line using one states a fact.
ACTION_WORDS: Final = re.compile(
    r"\b(?:approved|rejected|executed|proposed|rolled back|scaled|deleted|flushed|blocked"
    r"|escalated|reverted|restarted|denied|expired|refused)\b", re.IGNORECASE)
TOOL_NAME: Final = re.compile(r"\b(?:gitops|kube|cache|logs|metrics)\.[a-z_]+", re.IGNORECASE)

_ISO: Final = re.compile(
    r"(?<!\d)(\d{4}-\d{2}-\d{2})(?:[T ](\d{1,2}:\d{2}(?::\d{2})?)(?:\.\d+)?Z?)?(?!\d)")
_CLOCK: Final = re.compile(r"(?<![\d:.])(\d{1,2}):(\d{2})(?::(\d{2}))?(?![\d:])")
_UNIT: Final = r"(?:days?|d|hours?|hrs?|h|minutes?|mins?|seconds?|secs?|s)"
_DURATION: Final = re.compile(
    rf"(?<![\w.,$])\d+\s?{_UNIT}\b(?:,?\s+(?:and\s+)?\d+\s?{_UNIT}\b)*", re.IGNORECASE)
_DURATION_PART: Final = re.compile(rf"(\d+)\s?({_UNIT})\b", re.IGNORECASE)
_NUM: Final = r"(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?"
_MONEY: Final = re.compile(rf"\$\s?({_NUM})")
_PERCENT: Final = re.compile(rf"(?<![\w.])(?<!\w-)({_NUM})\s?%")
_IDENT: Final = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:/@+\-]*")
_NUMBER: Final = re.compile(_NUM)
_ORDINAL: Final = re.compile(r"\d{1,3}(?:st|nd|rd|th)", re.IGNORECASE)
_SUFFIXED: Final = re.compile(r"(\d+(?:\.\d+)?)([a-z]{1,3})", re.IGNORECASE)
_TABLE_SEPARATOR: Final = re.compile(r"^\s*\|?\s*:?-{3,}:?\s*(?:\|\s*:?-{3,}:?\s*)*\|?\s*$")
_HEADING: Final = re.compile(r"^\s{0,3}#{1,6}\s")
_CODE: Final = re.compile(r"`([^`]+)`")
_UNIT_SECONDS: Final = {"d": 86400, "h": 3600, "m": 60, "s": 1}
# The event fields whose digits are bookkeeping, not content (ids, hashes, the chain position);
# the id and action id still count as text an identifier may be quoted from.
_NOT_CONTENT: Final = frozenset({"seq", "id", "ts", "prev_hash", "hash", "action_id",
                                 "incident_id"})
# A number inside text counts only standing alone: the digits of "u-4711", "incident:7" or
# "claude-3" are parts of names, which are checked as names.
_FREE_NUMBER: Final = re.compile(rf"(?<![\w:/.@+])(?<!\w-){_NUM}(?!\w|[.,]\d)")
# Digits joined to other characters ("5-10", "1/2", "1.2.3") form a name, not a number.
_JOINED: Final = re.compile(r"\w[\-:/@+_]\w|\d\.\d+\.\d")
_EPSILON: Final = 1e-9


@dataclass
class _Facts:
    """What one event (plus, for an alert delivery, the alerts) can vouch for."""

    times: list[datetime] = field(default_factory=list)
    clocks: set[str] = field(default_factory=set)
    dates: set[str] = field(default_factory=set)
    numbers: list[float] = field(default_factory=list)
    text: str = ""

    def add_time(self, when: datetime) -> None:
        self.times.append(when)
        self.clocks.update((f"{when:%H:%M}", f"{when:%H:%M:%S}"))
        self.dates.add(f"{when:%Y-%m-%d}")

    def walk(self, value: Any, count: bool) -> None:
        """Numbers, times and dates in a JSON value; with `count`, the sizes of its lists and
        objects too (a payload's "proposals": [a, b, c] vouches for "3 proposals")."""
        if isinstance(value, bool) or value is None:
            return
        if isinstance(value, int | float):
            self.numbers.append(float(value))
        elif isinstance(value, str):
            self.scan(value)
        elif isinstance(value, Mapping):
            if count:
                self.numbers.append(float(len(value)))
            for key, child in value.items():
                self.scan(str(key))
                self.walk(child, count)
        elif isinstance(value, list | tuple):
            if count:
                self.numbers.append(float(len(value)))
            for child in value:
                self.walk(child, count)
        elif isinstance(value, datetime):
            self.add_time(value)

    def scan(self, text: str) -> None:
        for m in _ISO.finditer(text):
            when = to_datetime(m.group(0)) if m.group(2) else None
            if when is not None:
                self.add_time(when)
            self.dates.add(m.group(1))
        for m in _CLOCK.finditer(text):
            self.clocks.add(_clock(m))
            if m.group(3) is None:
                continue
            self.clocks.add(f"{int(m.group(1)):02d}:{m.group(2)}")
        self.numbers.extend(_value(m.group(0)) for m in _FREE_NUMBER.finditer(text))


def _clock(m: re.Match[str]) -> str:
    text = f"{int(m.group(1)):02d}:{m.group(2)}"
    return text + (f":{m.group(3)}" if m.group(3) else "")


def _value(text: str) -> float:
    return float(text.replace(",", ""))


def _decimals(text: str) -> int:
    return len(text.split(".", 1)[1]) if "." in text else 0


def _dump(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str).lower()


def _facts(event: Mapping[str, Any], alerts: Sequence[Mapping[str, Any]]) -> _Facts:
    facts = _Facts()
    when = event_time(dict(event))
    if when is not None:
        facts.add_time(when)
    for key, value in event.items():
        if key not in _NOT_CONTENT:
            facts.walk(value, count=key == "payload")
    facts.text = _dump(event)
    if event.get("type") == "alert.received" and alerts:
        # An alert's startsAt is no event: the delivery that brought the alert vouches for it.
        for alert in alerts:
            facts.walk(dict(alert), count=False)
            for key in ("starts_at", "ends_at"):
                start = to_datetime(alert.get(key))
                if start is not None:
                    facts.add_time(start)
        facts.text += "\n" + _dump(list(alerts))
    return facts


class _Line:
    """The checks of one line against the events it cites."""

    def __init__(self, text: str, facts: list[_Facts], refs: str) -> None:
        self.work = text
        self.facts = facts
        self.refs = refs
        self.problems: list[str] = []
        self.numbers = [n for f in facts for n in f.numbers]

    def take(self, pattern: re.Pattern[str],
             check: Callable[[re.Match[str]], str | None]) -> None:
        def blank(m: re.Match[str]) -> str:
            message = check(m)
            if message is None:
                return " " * len(m.group(0))
            if message:
                self.problems.append(message)
                return " " * len(m.group(0))
            return m.group(0)  # "" means: not mine, leave it for a later pattern

        self.work = pattern.sub(blank, self.work)

    def otherwise(self, token: str, why: str) -> str:
        return f"says “{token}”, but the cited events {self.refs} say otherwise ({why})"

    def quoted(self, token: str) -> bool:
        """The token appears word for word in a cited event ("u-47" is not in "u-4711")."""
        word = re.compile(rf"(?<![a-z0-9_]){re.escape(token.strip().lower())}(?![a-z0-9_])")
        return any(word.search(f.text) is not None for f in self.facts)

    def has_number(self, value: float, decimals: int, percent: bool = False) -> bool:
        tolerance = 0.5 * 10.0 ** -decimals + _EPSILON
        return any(abs(n - value) <= tolerance or (percent and abs(n * 100 - value) <= tolerance)
                   for n in self.numbers)

    def iso(self, m: re.Match[str]) -> str | None:
        date, clock = m.group(1), m.group(2)
        if clock is not None:
            norm = ":".join([f"{int(clock.split(':')[0]):02d}", *clock.split(":")[1:]])
            if any(date in f.dates and norm in f.clocks for f in self.facts):
                return None
            return self.otherwise(m.group(0), "none of them happened at that date and time")
        if any(date in f.dates for f in self.facts):
            return None
        return self.otherwise(date, "none of them is from that day")

    def clock(self, m: re.Match[str]) -> str | None:
        norm = _clock(m)
        if int(m.group(1)) > 23 or int(m.group(2)) > 59:
            return ""  # not a time of day; the number checks read it
        if any(norm in f.clocks for f in self.facts):
            return None
        return self.otherwise(m.group(0), "none of them happened at that time or mentions it")

    def duration(self, m: re.Match[str]) -> str | None:
        parts = [(int(n), _UNIT_SECONDS[u.lower()[0]]) for n, u in _DURATION_PART.findall(
            m.group(0))]
        unit = min(u for _, u in parts)
        total = sum(n * u for n, u in parts)
        times = sorted({t for f in self.facts for t in f.times})
        for a, b in combinations(times, 2):
            if math.floor(abs((b - a).total_seconds()) / unit + _EPSILON) == total // unit:
                return None
        if all(self.has_number(float(n), 0) for n, _ in parts) or self.quoted(m.group(0)):
            return None  # a duration the event states itself ("waiting_minutes": 31, "30s")
        return self.otherwise(m.group(0).strip(),
                              "it is neither the time between two of them nor a figure in them")

    def money(self, m: re.Match[str]) -> str | None:
        if self.has_number(_value(m.group(1)), _decimals(m.group(1))):
            return None
        return self.otherwise(m.group(0), "no such amount in them")

    def percent(self, m: re.Match[str]) -> str | None:
        if self.has_number(_value(m.group(1)), _decimals(m.group(1)), percent=True):
            return None
        return self.otherwise(m.group(0), "no such share or percentage in them")

    def ident(self, m: re.Match[str]) -> str | None:
        token = m.group(0).rstrip(".,;:!?/-")
        if not any(c.isdigit() for c in token) or not (
                any(c.isalpha() for c in token) or _JOINED.search(token)):
            return ""  # a plain number: the number check reads it
        if self.quoted(token) or _ORDINAL.fullmatch(token):
            return None
        suffixed = _SUFFIXED.fullmatch(token)
        if suffixed and self.has_number(_value(suffixed.group(1)),
                                        _decimals(suffixed.group(1))):
            return None
        return self.otherwise(token, "none of them mentions it")

    def number(self, m: re.Match[str]) -> str | None:
        if self.has_number(_value(m.group(0)), _decimals(m.group(0))):
            return None
        return self.otherwise(m.group(0), "no such number in them")

    def check(self) -> list[str]:
        self.take(_ISO, self.iso)
        self.take(_CLOCK, self.clock)
        self.take(_DURATION, self.duration)
        self.take(_MONEY, self.money)
        self.take(_PERCENT, self.percent)
        self.take(_IDENT, self.ident)
        self.take(_NUMBER, self.number)
        return self.problems


def _strip_comments(line: str, inside: bool) -> tuple[str, bool]:
    out: list[str] = []
    rest = line
    while rest:
        if inside:
            end = rest.find("-->")
            if end < 0:
                return "".join(out), True
            rest, inside = rest[end + 3:], False
        else:
            start = rest.find("<!--")
            if start < 0:
                out.append(rest)
                break
            out.append(rest[:start])
            rest, inside = rest[start + 4:], True
    return "".join(out), inside


@dataclass(frozen=True, slots=True)
class _Row:
    number: int
    section: str | None
    text: str  # comments removed
    heading: bool
    table_header: bool
    table_row: bool


def _rows(markdown: str) -> Iterator[_Row]:
    lines = markdown.splitlines()
    section: str | None = None
    inside = False
    for i, raw in enumerate(lines):
        heading = SECTION_HEADING.match(raw)
        if heading is not None and not inside:
            section = heading.group(1)
        text, inside = _strip_comments(raw, inside)
        if not text.strip():
            continue
        is_table = text.lstrip().startswith("|")
        following = lines[i + 1] if i + 1 < len(lines) else ""
        header = is_table and (_TABLE_SEPARATOR.match(text) is not None
                               or _TABLE_SEPARATOR.match(following) is not None)
        yield _Row(i + 1, section, text, _HEADING.match(text) is not None, header, is_table)


def _trigger(text: str) -> str | None:
    """Why a line counts as a factual statement (None: it does not)."""
    for pattern, what in ((_CLOCK, "a time"), (TOOL_NAME, "a tool name"),
                          (ACTION_WORDS, "an action word"), (_NUMBER, "a number")):
        m = pattern.search(text)
        if m is not None:
            return f"{what}, “{m.group(0)}”"
    return None


def validate(markdown: str, events: list[dict[str, Any]],
             alerts: Sequence[Mapping[str, Any]] = ()) -> list[Problem]:
    """Problems with a draft, by line: facts without a citation, citations of events that are
    not this incident's, and times, numbers, durations or identifiers the cited events do not
    bear out. `alerts` (the incident's alert rows) lets a cited alert.received event vouch for
    the alerts' names, startsAt and endsAt, which no event carries."""
    by_seq = {int(e["seq"]): e for e in events if isinstance(e.get("seq"), int)}
    facts_cache: dict[int, _Facts] = {}

    def facts(seq: int) -> _Facts:
        if seq not in facts_cache:
            facts_cache[seq] = _facts(by_seq[seq], alerts)
        return facts_cache[seq]

    problems: list[Problem] = []
    for row in _rows(markdown):
        seqs = [int(s) for s in CITATION.findall(row.text)]
        for seq in dict.fromkeys(seqs):
            if seq not in by_seq:
                problems.append(Problem(
                    row.number, f"cites [ev:{seq}], which is not an event of this incident"))
        known = [s for s in dict.fromkeys(seqs) if s in by_seq]
        if row.section == LINKS:
            problems += _check_link(row, known, by_seq)
            continue
        if row.heading or row.table_header or (row.table_row and row.section == ACTION_ITEMS):
            continue
        bare = CITATION.sub(" ", row.text)
        if not seqs:
            why = _trigger(bare)
            if why is not None:
                problems.append(Problem(row.number, f"states a fact ({why}) without a "
                                                    f"citation; add the [ev:N] it rests on"))
            continue
        if not known:
            continue
        refs = "".join(f"[ev:{s}]" for s in known)
        line = _Line(bare, [facts(s) for s in known], refs)
        problems += [Problem(row.number, message) for message in line.check()]
    return sorted(problems)


def _check_link(row: _Row, known: list[int], by_seq: Mapping[int, Mapping[str, Any]]
                ) -> list[Problem]:
    """A Links entry names the event id next to its seq: it must be that event's id."""
    if len(known) != 1:
        return []
    codes = _CODE.findall(row.text)
    event_id = str(by_seq[known[0]].get("id"))
    if codes and codes[0] != event_id:
        return [Problem(row.number, f"lists [ev:{known[0]}] with id {codes[0]}, but that "
                                    f"event's id is {event_id}")]
    return []
