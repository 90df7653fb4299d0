"""Log records, queries, the LogSource protocol and the error every source raises."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol, runtime_checkable

# Aliases folded together when levels are compared (always upper case).
LEVEL_ALIASES = {"WARN": "WARNING", "ERR": "ERROR", "FATAL": "CRITICAL", "CRIT": "CRITICAL"}


def norm_level(level: str) -> str:
    """`level` upper-cased with common aliases folded (warn -> WARNING)."""
    up = level.strip().upper()
    return LEVEL_ALIASES.get(up, up)


def parse_ts(value: object) -> datetime | None:
    """An RFC 3339 timestamp (Z or offset) as an aware UTC datetime; None if invalid.

    A timestamp without an offset is taken as UTC."""
    if not isinstance(value, str) or not value:
        return None
    try:
        ts = datetime.fromisoformat(value)
    except ValueError:
        return None
    if ts.tzinfo is None:
        return ts.replace(tzinfo=UTC)
    return ts.astimezone(UTC)


@dataclass(frozen=True, slots=True)
class LogRecord:
    ts: datetime  # aware, UTC
    level: str  # as written by the source ("" if absent)
    service: str  # "" if absent
    message: str
    fields: dict[str, Any] = field(default_factory=dict)  # every other key (event_type, ...)

    def get(self, name: str) -> Any:
        """A top-level attribute (ts, level, service, message) or a field by name."""
        if name in ("ts", "level", "service", "message"):
            return getattr(self, name)
        return self.fields.get(name)

    def to_dict(self) -> dict[str, Any]:
        return {"ts": self.ts.isoformat().replace("+00:00", "Z"), "level": self.level,
                "service": self.service, "message": self.message, "fields": self.fields}


@dataclass(frozen=True, slots=True)
class LogQuery:
    """Window [start, end) (both aware); services/levels None = any; contains = substring of the
    message (case-sensitive, like LogQL `|=`); limit None = no limit."""

    start: datetime
    end: datetime
    services: list[str] | None = None
    levels: list[str] | None = None
    contains: str | None = None
    limit: int | None = None
    _levels: frozenset[str] | None = field(init=False, repr=False, compare=False, default=None)

    def __post_init__(self) -> None:
        if self.levels is not None:
            object.__setattr__(self, "_levels", frozenset(norm_level(lv) for lv in self.levels))
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("LogQuery start and end must be timezone-aware")
        if self.limit is not None and self.limit < 1:
            raise ValueError("LogQuery limit must be >= 1")

    def in_window(self, ts: datetime) -> bool:
        return self.start <= ts < self.end

    def matches(self, record: LogRecord) -> bool:
        """The service, level and substring filters (not the window)."""
        if self.services is not None and record.service not in self.services:
            return False
        if self._levels is not None and norm_level(record.level) not in self._levels:
            return False
        return self.contains is None or self.contains in record.message


class LogSourceError(Exception):
    """A source failed: carries the exact query sent and the upstream message."""

    def __init__(self, query: str, message: str, status: int | None = None) -> None:
        self.query = query
        self.message = message
        self.status = status
        where = f"HTTP {status}" if status is not None else "request failed"
        super().__init__(f"{where}: {message} (query: {query})")


@runtime_checkable
class LogSource(Protocol):
    name: str

    def query(self, q: LogQuery) -> Iterator[LogRecord]:
        """Matching records in time order (per file/page); raises LogSourceError."""
        ...

    @property
    def stats(self) -> Mapping[str, int]:
        """Counters of the last query (lines read, matched, malformed, ...)."""
        ...
