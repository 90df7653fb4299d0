"""A log source over JSONL files matched by globs, read line by line in constant memory."""

from __future__ import annotations

import glob
import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from tools.logs.records import LogQuery, LogRecord, parse_ts

_TOP = ("timestamp", "level", "service", "message")


class JsonlSource:
    """Files are read in sorted path order, each top to bottom; a line that is not a JSON object
    or lacks a valid `timestamp` is counted as malformed and skipped, never fatal."""

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
        st = self._stats = {"files": 0, "unreadable_files": 0, "lines_read": 0, "matched": 0,
                            "malformed": 0, "bad_json": 0, "bad_timestamp": 0,
                            "outside_window": 0}
        for path in self.files():
            try:
                handle = open(path, "rb")  # noqa: SIM115 - closed by the with below
            except OSError:
                st["unreadable_files"] += 1
                continue
            st["files"] += 1
            with handle:
                for raw in handle:  # one line at a time: memory stays flat whatever the size
                    if not raw.strip():
                        continue
                    st["lines_read"] += 1
                    record = self._parse(raw, st)
                    if record is None:
                        continue
                    if not q.in_window(record.ts):
                        st["outside_window"] += 1
                        continue
                    if not q.matches(record):
                        continue
                    st["matched"] += 1
                    yield record
                    if q.limit is not None and st["matched"] >= q.limit:
                        return

    @staticmethod
    def _parse(raw: bytes, st: dict[str, int]) -> LogRecord | None:
        try:
            obj: Any = json.loads(raw)
        except ValueError:  # includes UnicodeDecodeError
            obj = None
        if not isinstance(obj, dict):
            st["malformed"] += 1
            st["bad_json"] += 1
            return None
        ts = parse_ts(obj.get("timestamp"))
        if ts is None:
            st["malformed"] += 1
            st["bad_timestamp"] += 1
            return None
        message = obj.get("message", obj.get("msg", ""))
        return LogRecord(ts=ts, level=str(obj.get("level", "") or ""),
                         service=str(obj.get("service", "") or ""),
                         message=message if isinstance(message, str) else json.dumps(message),
                         fields={k: v for k, v in obj.items() if k not in _TOP})
