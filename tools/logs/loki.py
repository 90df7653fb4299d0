"""A Grafana Loki log source: LogQL over GET /loki/api/v1/query_range, paged forward by time."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import httpx

from tools.logs.records import LogQuery, LogRecord, LogSourceError, norm_level

QUERY_RANGE = "/loki/api/v1/query_range"


class LokiError(LogSourceError):
    """Loki answered non-2xx, a non-success envelope, or did not answer in time."""


def _str(value: str) -> str:
    """`value` as a LogQL double-quoted string literal."""
    return json.dumps(value, ensure_ascii=False)


_RE2_META = re.compile(r"([\\.+*?()|\[\]{}^$])")


def _alternation(values: list[str]) -> str:
    """`values` as an RE2 alternation, each matched literally (only RE2 metacharacters escaped)."""
    return "|".join(_RE2_META.sub(r"\\\1", v) for v in values)


def _level_regex(levels: list[str]) -> str:
    names: set[str] = set()
    for level in levels:
        names.add(norm_level(level))
        names.update(alias for alias, canon in
                     (("WARN", "WARNING"), ("ERR", "ERROR"), ("FATAL", "CRITICAL"),
                      ("CRIT", "CRITICAL"))
                     if canon == norm_level(level))
    return "(?i)" + _alternation(sorted(names))


def build_logql(q: LogQuery, *, service_label: str = "service",
                level_from: Literal["json", "label"] = "json") -> str:
    """The LogQL for `q`: `{service=~"a|b"} |= "text" | json | level=~"(?i)ERROR|WARNING"`.

    Levels are matched case-insensitively. With level_from="json" (default) the level is read from
    the JSON line body (`| json`), because structured app logs carry it in the line and `level` is
    often not an indexed label (it would multiply streams); the line filter `|=` runs before the
    parser, so Loki only parses lines that already contain the text. With level_from="label" the
    level is a stream-selector matcher instead (cheapest, for pipelines that index `level`)."""
    matchers = []
    if q.services:
        matchers.append(f"{service_label}=~{_str(_alternation(q.services))}")
    else:
        matchers.append(f"{service_label}=~{_str('.+')}")
    if q.levels and level_from == "label":
        matchers.append(f"level=~{_str(_level_regex(q.levels))}")
    logql = "{" + ", ".join(matchers) + "}"
    if q.contains:
        logql += f" |= {_str(q.contains)}"
    if q.levels and level_from == "json":
        logql += f" | json | level=~{_str(_level_regex(q.levels))}"
    return logql


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_ns(ts: datetime) -> int:
    delta = ts.astimezone(UTC) - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000


def from_ns(ns: int) -> datetime:
    return EPOCH + timedelta(microseconds=ns // 1000)


_Entry = tuple[int, str, str, dict[str, Any], dict[str, Any]]  # ns, labels key, line, labels, meta


class LokiSource:
    """Pages forward: each request asks for [cursor, end) with `limit=page_limit`; the next
    cursor is the newest timestamp received (start is inclusive, so lines sharing that nanosecond
    come back and are dropped by (ts, labels, line)); stops at a short page, at `end` or at the
    query's limit. When a full page lies inside one nanosecond, that nanosecond is fetched alone
    with `same_ns_limit` (Loki's default server cap is 5000); beyond that, the rest of it is
    skipped and counted in stats["skipped_same_ns"]."""

    name = "loki"

    def __init__(self, base_url: str, *, timeout: float = 10.0, page_limit: int = 1000,
                 tenant: str | None = None, headers: Mapping[str, str] | None = None,
                 service_label: str = "service",
                 level_from: Literal["json", "label"] = "json",
                 max_pages: int = 10_000, same_ns_limit: int = 5000,
                 client: httpx.Client | None = None) -> None:
        if page_limit < 1:
            raise ValueError("page_limit must be >= 1")
        hdrs = dict(headers or {})
        if tenant:
            hdrs["X-Scope-OrgID"] = tenant
        self.base_url = base_url.rstrip("/")
        self.page_limit = page_limit
        self.service_label = service_label
        self.level_from: Literal["json", "label"] = level_from
        self.max_pages = max_pages
        self.same_ns_limit = max(same_ns_limit, page_limit + 1)
        self.timeout = timeout
        self._client = client or httpx.Client(timeout=httpx.Timeout(timeout), headers=hdrs)
        self._stats: dict[str, int] = {}

    @property
    def stats(self) -> Mapping[str, int]:
        return dict(self._stats)

    def close(self) -> None:
        self._client.close()

    def logql(self, q: LogQuery) -> str:
        return build_logql(q, service_label=self.service_label, level_from=self.level_from)

    def query(self, q: LogQuery) -> Iterator[LogRecord]:
        st = self._stats = {"requests": 0, "lines_read": 0, "matched": 0, "malformed": 0,
                            "duplicates": 0, "same_ns_fetches": 0, "skipped_same_ns": 0,
                            "page_cap_hit": 0}
        logql = self.logql(q)
        cursor, end = to_ns(q.start), to_ns(q.end)
        seen: set[tuple[int, str, str]] = set()  # entries at `cursor` already yielded
        while cursor < end and st["requests"] < self.max_pages:
            entries = self._page(logql, cursor, end, self.page_limit)
            yield from self._emit(entries, cursor, seen, q.limit)
            if self._full(q.limit) or len(entries) < self.page_limit:
                return
            newest = entries[-1][0]
            if newest == cursor:
                # A whole page inside one nanosecond: Loki has no offset, so fetch that
                # nanosecond alone with the large limit, then move past it.
                st["same_ns_fetches"] += 1
                entries = self._page(logql, cursor, cursor + 1, self.same_ns_limit)
                yield from self._emit(entries, cursor, seen, q.limit)
                if self._full(q.limit):
                    return
                if len(entries) >= self.same_ns_limit:
                    st["skipped_same_ns"] += 1
                cursor, seen = cursor + 1, set()
                continue
            cursor = newest
            seen = {(e[0], e[1], e[2]) for e in entries if e[0] == newest}
        if cursor < end:  # stopped by max_pages, not by the data: the caller must know
            st["page_cap_hit"] = 1

    def _full(self, limit: int | None) -> bool:
        return limit is not None and self._stats["matched"] >= limit

    def _emit(self, entries: list[_Entry], cursor: int, seen: set[tuple[int, str, str]],
              limit: int | None) -> Iterator[LogRecord]:
        st = self._stats
        for ns, key, line, labels, meta in entries:
            if ns == cursor and (ns, key, line) in seen:
                st["duplicates"] += 1
                continue
            if ns == cursor:
                seen.add((ns, key, line))
            record = self._record(ns, line, labels, meta)
            if record is None:
                st["malformed"] += 1
                continue
            st["matched"] += 1
            yield record
            if self._full(limit):
                return

    def _page(self, logql: str, start: int, end: int, limit: int) -> list[_Entry]:
        params = {"query": logql, "start": str(start), "end": str(end), "limit": str(limit),
                  "direction": "forward"}
        self._stats["requests"] += 1
        try:
            resp = self._client.get(self.base_url + QUERY_RANGE, params=params)
        except httpx.TimeoutException as exc:
            raise LokiError(logql, f"timeout after {self.timeout}s ({type(exc).__name__})") \
                from exc
        except httpx.HTTPError as exc:
            raise LokiError(logql, f"{type(exc).__name__}: {exc}") from exc
        if resp.status_code >= 300:
            raise LokiError(logql, self._error_text(resp), resp.status_code)
        try:
            body = resp.json()
            data = body["data"]
            if body.get("status") != "success":
                raise LokiError(logql, f"status {body.get('status')!r}: "
                                       f"{body.get('error', '')}", resp.status_code)
            if data.get("resultType") != "streams":
                raise LokiError(logql, f"expected resultType streams, got "
                                       f"{data.get('resultType')!r}", resp.status_code)
            entries: list[_Entry] = []
            for stream in data["result"]:
                labels = dict(stream.get("stream") or {})
                key = json.dumps(labels, sort_keys=True)
                for value in stream["values"]:
                    meta = value[2] if len(value) > 2 and isinstance(value[2], dict) else {}
                    try:
                        ns = int(value[0])
                    except (TypeError, ValueError):
                        self._stats["malformed"] += 1
                        continue
                    entries.append((ns, key, str(value[1]), labels, meta))
        except LokiError:
            raise
        except (ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:
            raise LokiError(logql, f"unexpected response: {type(exc).__name__}: {exc}: "
                                   f"{resp.text[:500]}", resp.status_code) from exc
        entries.sort(key=lambda e: (e[0], e[1], e[2]))
        self._stats["lines_read"] += len(entries)
        return entries

    @staticmethod
    def _error_text(resp: httpx.Response) -> str:
        text = resp.text.strip()
        if "json" in resp.headers.get("content-type", ""):
            try:
                body = resp.json()
                if isinstance(body, dict):
                    text = str(body.get("error") or body.get("message") or text)
            except ValueError:
                pass
        return text[:2000] or resp.reason_phrase

    def _record(self, ns: int, line: str, labels: dict[str, Any],
                meta: dict[str, Any]) -> LogRecord | None:
        if ns < 0:
            return None
        body: dict[str, Any] = {}
        if line.startswith("{"):
            try:
                parsed = json.loads(line)
                body = parsed if isinstance(parsed, dict) else {}
            except ValueError:
                body = {}
        fields: dict[str, Any] = {**labels}
        for part in ("structuredMetadata", "parsed"):
            if isinstance(meta.get(part), dict):
                fields.update(meta[part])
        fields.update(body)
        level = fields.pop("level", None) or labels.get("detected_level") or ""
        service = fields.pop("service", None) or labels.get(self.service_label) or ""
        message = fields.pop("message", None) if "message" in fields else fields.get("msg")
        fields.pop("timestamp", None)
        return LogRecord(ts=from_ns(ns), level=str(level), service=str(service),
                         message=str(message) if body and message is not None else line,
                         fields=fields)
