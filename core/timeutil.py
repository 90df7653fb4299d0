"""UTC time helpers and the canonical timestamp text used in hashes and APIs."""

from __future__ import annotations

from datetime import UTC, datetime

GO_ZERO_TIME_PREFIX = "0001-01-01"


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """Aware UTC datetime; naive values are taken as UTC."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def checked_utc(value: datetime) -> datetime:
    """as_utc for untrusted input: out-of-range values raise ValueError, not OverflowError."""
    try:
        return as_utc(value)
    except OverflowError as exc:
        raise ValueError("datetime is out of the representable range") from exc


def iso(value: datetime) -> str:
    """Fixed-width ISO-8601 with microseconds and Z, e.g. 2026-11-27T10:02:00.000000Z."""
    return as_utc(value).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_ts(text: str) -> datetime | None:
    """Parse RFC 3339 (nanoseconds allowed); Go's zero time means 'no time' and gives None."""
    raw = text.strip()
    if not raw or raw.startswith(GO_ZERO_TIME_PREFIX):
        return None
    if raw.endswith(("Z", "z")):
        raw = raw[:-1] + "+00:00"
    # Python keeps microseconds only: trim any longer fraction before parsing.
    if "." in raw:
        head, _, rest = raw.partition(".")
        digits = ""
        i = 0
        while i < len(rest) and rest[i].isdigit():
            digits += rest[i]
            i += 1
        raw = f"{head}.{(digits + '000000')[:6]}{rest[i:]}"
    parsed = datetime.fromisoformat(raw)
    try:
        return as_utc(parsed)
    except OverflowError as exc:
        raise ValueError("timestamp is out of the representable range") from exc
