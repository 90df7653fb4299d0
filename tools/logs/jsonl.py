"""A log source over JSONL files matched by globs, read block by block in constant memory."""

from __future__ import annotations

import dataclasses
import glob
import json
import re
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import IO, Any

import orjson

from tools.logs.records import LEVEL_ALIASES, LogQuery, LogRecord, norm_level

BLOCK_BYTES = 1 << 18
_ABSENT = object()
_fromisoformat = datetime.fromisoformat
_LEVEL_KEY = b'"level"'
_KEY_LEN = len(_LEVEL_KEY)
_LEVEL_VALUE = re.compile(rb'[ \t\r\n]*:[ \t\r\n]*"([^"\\]*)"')  # right after "level"


def level_tokens(levels: Iterable[str]) -> tuple[bytes, ...] | None:
    """Byte strings one of which an upper-cased line must contain to carry one of `levels`
    (canonical names and their aliases, minus any that contains a shorter one: ERROR holds ERR);
    None when a level is not purely alphabetic and so cannot be prefiltered safely."""
    names: set[str] = set()
    for level in levels:
        canon = norm_level(level)
        if not canon.isascii() or not canon.isalpha():
            return None
        names.add(canon)
        names.update(alias for alias, target in LEVEL_ALIASES.items() if target == canon)
    keep = sorted(n for n in names if not any(o != n and o in n for o in names))
    return tuple(n.encode("ascii") for n in keep)


class _Prefilter:
    """Proves from a line's bytes alone that it cannot carry one of the wanted levels."""

    def __init__(self, levels: Iterable[str], tokens: tuple[bytes, ...]) -> None:
        self.wanted = frozenset(norm_level(level) for level in levels)
        self.tokens = tokens
        self.verdicts: dict[str, bool] = {}  # level as written -> wanted? (few distinct)
        # `:"INFO"`, `: "ERROR"` and the like, as they followed the "level" key in lines
        # already decided: one startswith call then settles the common line.
        self.wanted_spellings: tuple[bytes, ...] = ()
        self.unwanted_spellings: tuple[bytes, ...] = ()

    def wanted_level(self, level: str) -> bool:
        verdict = self.verdicts.get(level)
        if verdict is None:
            verdict = norm_level(level) in self.wanted
            if len(self.verdicts) < 1000:  # garbage levels must not grow this
                self.verdicts[level] = verdict
        return verdict

    def skips(self, raw: bytes, at: int) -> bool:
        """Whether a line with no \\u escape, its first "level" key at `at` (-1: none), provably
        cannot carry a wanted level; remembers how a decisive value was spelled."""
        if at < 0:
            return True  # no "level" key spelled out, and no escape to hide one: level ""
        if raw.rfind(_LEVEL_KEY) == at:
            # The only "level" key; if it is nested, the top level has none: level "".
            value = _LEVEL_VALUE.match(raw, at + _KEY_LEN)
            if value is not None:
                try:
                    level = value[1].decode()
                except UnicodeDecodeError:
                    return False  # the parser will count it
                spelling = raw[at + _KEY_LEN:value.end()]
                if self.wanted_level(level):
                    if len(self.wanted_spellings) < 64:
                        self.wanted_spellings = (*self.wanted_spellings, spelling)
                    return False
                if len(self.unwanted_spellings) < 64:
                    self.unwanted_spellings = (*self.unwanted_spellings, spelling)
                return True
        return self.skips_by_tokens(raw)

    def skips_by_tokens(self, raw: bytes) -> bool:
        """The general rule: the upper-cased bytes hold none of the level names or aliases.
        ASCII only: str.upper maps some other letters (the dotless i) to ASCII ones."""
        if not raw.isascii():
            return False
        up = raw.upper()
        return not any(token in up for token in self.tokens)


def _unicode_escape(buf: bytes) -> bool:
    """Whether `buf` may hold a \\u escape (single-byte searches: far faster than b"\\u")."""
    at = buf.find(b"\\")
    while at >= 0:
        if buf[at + 1:at + 2] == b"u":
            return True
        at = buf.find(b"\\", at + 2)  # past the escaped character, which may be a backslash
    return False


def _record_setters() -> tuple[Callable[[LogRecord, Any], None], ...] | None:
    """The slot setters of LogRecord's fields, to build records at half the cost (a frozen
    dataclass's __init__ goes through object.__setattr__ per field); None, and the plain
    constructor is used, should its fields or slots ever change."""
    names = ("ts", "level", "service", "message", "fields")
    if tuple(f.name for f in dataclasses.fields(LogRecord)) != names or \
            tuple(getattr(LogRecord, "__slots__", ())) != names:
        return None
    return tuple(getattr(LogRecord, name).__set__ for name in names)


_SETTERS = _record_setters()


def _lenient(raw: bytes) -> Any:
    """json.loads for the lines orjson rejects: orjson is stricter (NaN, ints past 64 bits, a
    BOM, lone surrogates), and what json accepts stays accepted; None if json fails too. Only
    bad lines pay for the second parse."""
    try:
        return json.loads(raw)
    except ValueError:  # includes UnicodeDecodeError
        return None


def _read_blocks(handle: IO[bytes]) -> Iterator[tuple[list[bytes], bool]]:
    """The lines of `handle` (without b"\\n"), a block at a time, each with whether the block
    may hold a \\u escape. A line longer than a block is gathered whole, as readline would."""
    pending: list[bytes] = []
    while True:
        buf = handle.read(BLOCK_BYTES)
        if not buf:
            break
        lines = buf.split(b"\n")
        if len(lines) == 1:
            pending.append(buf)
            continue
        escaped = _unicode_escape(buf)
        if pending:
            pending.append(lines[0])
            lines[0] = b"".join(pending)
            escaped = escaped or _unicode_escape(lines[0])
            pending = []
        tail = lines.pop()
        if tail:
            pending.append(tail)
        yield lines, escaped
    if pending:
        last = b"".join(pending)
        yield [last], _unicode_escape(last)


class JsonlSource:
    """Files are read in sorted path order, each top to bottom; a line that is not a JSON object
    or lacks a valid `timestamp` is counted as malformed and skipped, never fatal.

    When the query names levels, a prefilter reads the raw bytes first and skips the lines that
    provably cannot carry a wanted level, without parsing them (stats["prefiltered"]). A line
    with a `\\u` escape is always parsed (an escape could spell a level or the key). Any other
    line is skipped if it has no `"level"` key, or exactly one whose value is a plain string
    that is not a wanted level; failing that, if it is ASCII and its upper-cased bytes contain
    none of the wanted level names or aliases (ERROR/ERR, WARNING/WARN, CRITICAL/CRIT/FATAL).
    A skipped line is only shape-checked (stripped, it must start with `{` and end with `}`,
    else it counts as malformed/bad_json): invalid JSON or a bad timestamp inside it goes
    uncounted."""

    name = "jsonl"

    def __init__(self, globs: Sequence[str]) -> None:
        self.globs = list(globs)
        self._stats: dict[str, int] = {}

    @property
    def stats(self) -> Mapping[str, int]:
        return dict(self._stats)

    def files(self) -> list[str]:
        found: set[str] = set()
        for pattern in self.globs:
            found.update(glob.glob(pattern, recursive=True))
        return sorted(found)

    def query(self, q: LogQuery) -> Iterator[LogRecord]:
        return self._scan(q)

    def _blocks(self, st: dict[str, int]) -> Generator[tuple[list[bytes], bool], None, None]:
        for path in self.files():
            try:
                handle = open(path, "rb")  # noqa: SIM115 - closed by the with below
            except OSError:
                st["unreadable_files"] += 1
                continue
            st["files"] += 1
            with handle:
                yield from _read_blocks(handle)  # memory stays flat whatever the size

    def _scan(self, q: LogQuery) -> Iterator[LogRecord]:
        """One generator, with the per-line work inlined on purpose (each Python call costs as
        much as a parse step): most lines of a busy service are INFO, and proving that from
        the bytes costs a fraction of parsing them."""
        st = self._stats = {"files": 0, "unreadable_files": 0, "lines_read": 0, "matched": 0,
                            "malformed": 0, "bad_json": 0, "bad_timestamp": 0,
                            "outside_window": 0, "prefiltered": 0}
        tokens = level_tokens(q.levels) if q.levels is not None else None
        pre = _Prefilter(q.levels or [], tokens) if tokens is not None else None
        loads, start, end, limit = orjson.loads, q.start, q.end, q.limit
        services, contains = q.services, q.contains
        # levels that cannot be prefiltered are checked by q.matches, on the record
        check_level = q.matches if pre is None and q.levels is not None else None
        verdicts: dict[str, bool] = pre.verdicts if pre is not None else {}
        unwanted = pre.unwanted_spellings if pre is not None else ()
        wanted = pre.wanted_spellings if pre is not None else ()
        key, key_len = _LEVEL_KEY, _KEY_LEN
        fromisoformat, utc, absent = _fromisoformat, UTC, _ABSENT
        setters, new = _SETTERS, object.__new__
        if setters is not None:  # else LogRecord(...) below
            set_ts, set_level, set_service, set_message, set_fields = setters
        read = prefiltered = matched = 0  # added to st at the end
        blocks = self._blocks(st)
        try:
            for lines, escaped in blocks:
                for raw in lines:
                    if pre is not None:
                        if escaped and b"\\u" in raw:
                            skip = False  # a \u escape could spell a level or the key: parse
                        else:
                            at = raw.find(key)
                            if at < 0:
                                skip = True  # no "level" key and no escape to hide one: level ""
                            elif raw.startswith(unwanted, at + key_len):
                                # a plain unwanted value; decisive if this is the only key
                                if raw.rfind(key) == at and raw[0] == 123 and raw[-1] == 125:
                                    prefiltered += 1  # and shaped like an object: `{...}`
                                    continue
                                skip = pre.skips(raw, at)
                            elif raw.startswith(wanted, at + key_len):
                                skip = False  # parsing is always safe: no proof needed
                            else:
                                skip = pre.skips(raw, at)  # may learn a new spelling
                                unwanted, wanted = pre.unwanted_spellings, pre.wanted_spellings
                        if skip:
                            body = raw.strip()
                            if not body:
                                continue  # a blank line is no line
                            if body[:1] == b"{" and body[-1:] == b"}":
                                prefiltered += 1
                            else:
                                read += 1
                                st["malformed"] += 1
                                st["bad_json"] += 1
                            continue
                    if not raw or raw.isspace():
                        continue
                    read += 1
                    try:
                        obj: Any = loads(raw)
                    except orjson.JSONDecodeError:  # includes invalid UTF-8
                        obj = _lenient(raw)
                    if type(obj) is not dict:
                        st["malformed"] += 1
                        st["bad_json"] += 1
                        continue
                    # records.parse_ts, inlined; no astimezone when already UTC (fromisoformat
                    # gives the UTC singleton for "Z")
                    stamp = obj.pop("timestamp", None)
                    ts = None
                    if type(stamp) is str and stamp:
                        try:
                            ts = fromisoformat(stamp)
                        except ValueError:
                            ts = None
                        else:
                            tz = ts.tzinfo
                            if tz is not utc:
                                ts = ts.replace(tzinfo=utc) if tz is None else ts.astimezone(utc)
                    if ts is None:
                        st["malformed"] += 1
                        st["bad_timestamp"] += 1
                        continue
                    if not start <= ts < end:  # q.in_window
                        st["outside_window"] += 1
                        continue
                    # The dict becomes `fields` once the top-level keys are popped (no copy).
                    level = obj.pop("level", "")
                    if type(level) is not str:
                        level = str(level or "")
                    service = obj.pop("service", "")
                    if type(service) is not str:
                        service = str(service or "")
                    message = obj.pop("message", absent)
                    if message is absent:
                        message = obj.get("msg", "")
                    if type(message) is not str:
                        message = message if isinstance(message, str) else json.dumps(message)
                    # q.matches, before the record is built (a cached verdict for the level)
                    if pre is not None:
                        verdict = verdicts.get(level)
                        if not (pre.wanted_level(level) if verdict is None else verdict):
                            continue
                    if (services is not None and service not in services) or (
                            contains is not None and contains not in message):
                        continue
                    if setters is not None:  # LogRecord(ts, level, service, message, obj)
                        record = new(LogRecord)
                        set_ts(record, ts)
                        set_level(record, level)
                        set_service(record, service)
                        set_message(record, message)
                        set_fields(record, obj)
                    else:
                        record = LogRecord(ts, level, service, message, obj)
                    if check_level is not None and not check_level(record):
                        continue
                    matched += 1
                    yield record
                    if limit is not None and matched >= limit:
                        return
        finally:
            blocks.close()  # the file, now rather than when collected
            st["lines_read"] += read + prefiltered
            st["prefiltered"] += prefiltered
            st["matched"] += matched
