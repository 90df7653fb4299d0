"""Log sources and tools: JSONL on the provider-outage scenario, bounded memory, Loki paging."""

from __future__ import annotations

import json
import shutil
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.fake_loki import FakeLoki, serve
from tools.base import Effect, ReadTool, ToolResult
from tools.logs.jsonl import JsonlSource
from tools.logs.loki import LokiError, LokiSource, build_logql, from_ns, to_ns
from tools.logs.records import LogQuery, LogSource
from tools.logs.tools import logs_tools

SCENARIO = Path("/work/shared/reference/scenarios/provider-outage/logs.jsonl")
STARTS_AT = datetime(2026, 11, 27, 10, 2, tzinfo=UTC)
WINDOW = {"start": (STARTS_AT - timedelta(minutes=30)).isoformat(),
          "end": (STARTS_AT + timedelta(hours=2)).isoformat()}


def call(tool: ReadTool, args: dict[str, Any]) -> ToolResult:
    """Run `tool` on raw (unvalidated) arguments, as the agents do."""
    return tool.run(args)  # type: ignore[arg-type]


def tools_by_name(source: LogSource) -> dict[str, ReadTool]:
    return {t.spec.name: t for t in logs_tools(source)}


@pytest.fixture
def scenario_copy(tmp_path: Path) -> Path:
    if not SCENARIO.exists():
        pytest.skip("scenario logs not available")
    dest = tmp_path / "logs.jsonl"
    shutil.copy(SCENARIO, dest)
    return dest


# --- JSONL ---------------------------------------------------------------------------------

def test_jsonl_counts_in_alert_window(scenario_copy: Path) -> None:
    source = JsonlSource([str(scenario_copy)])
    tools = tools_by_name(source)
    assert all(t.spec.effect is Effect.READ for t in tools.values())
    count_by = tools["logs.count_by"]

    by_level = call(count_by, {"field": "level", **WINDOW})
    assert by_level.status == "ok", by_level.error
    assert by_level.data["counts"] == {"ERROR": 2000, "INFO": 1680, "WARNING": 40}
    assert by_level.data["stats"]["lines_read"] == 3840
    assert by_level.data["stats"]["outside_window"] == 120
    assert by_level.data["stats"]["malformed"] == 0

    by_service = call(count_by, {"field": "service", **WINDOW})
    assert by_service.data["counts"] == {"chat-api": 3720}

    errors_by_type = call(count_by,
        {"field": "event_type", "level": ["error", "warn"], "service": "chat-api", **WINDOW})
    assert errors_by_type.data["counts"] == {"app_log": 2040}

    search = call(tools["logs.search"],
        {"levels": ["ERROR"], "contains": "OpenAIConnectionError", "limit": 1000, **WINDOW})
    assert search.status == "ok"
    assert search.data["count"] == 1000 and search.data["truncated"] is True
    stamps = [r["ts"] for r in search.data["records"]]
    assert stamps == sorted(stamps) and stamps[0] >= "2026-11-27T09:32"
    first = search.data["records"][0]
    assert first["level"] == "ERROR" and "OpenAIConnectionError" in first["message"]
    assert first["fields"]["event_type"] == "app_log"

    nothing = call(tools["logs.search"], {"service": "nope", **WINDOW})
    assert nothing.status == "no_data" and nothing.data["records"] == []


def test_jsonl_malformed_lines_counted_not_fatal(scenario_copy: Path, tmp_path: Path) -> None:
    good = {"timestamp": "2026-11-27T12:00:00+02:00", "level": "ERROR", "service": "rag",
            "message": "offset stamp", "event_type": "app_log"}  # 10:00Z, inside the window
    bad = [b"{not json\n", b"[1, 2, 3]\n", b'{"level": "ERROR", "message": "no ts"}\n',
           b'{"timestamp": "yesterday", "level": "ERROR"}\n', b'{"timestamp": 12}\n',
           b'\xff\xfe{"timestamp": "2026-11-27T10:00:00Z"}\n', b"\n"]
    second = tmp_path / "more" / "b.jsonl"
    second.parent.mkdir()
    second.write_bytes(b"".join(bad[:4]) + json.dumps(good).encode() + b"\n" + b"".join(bad[4:])
                       + b'{"timestamp": "2026-11-27T10:01:00Z", "level": "INFO"')  # no newline

    source = JsonlSource([str(scenario_copy), str(tmp_path / "**" / "*.jsonl"),
                          str(tmp_path / "missing-*.jsonl")])
    result = call(tools_by_name(source)["logs.count_by"],
        {"field": "service", **WINDOW})
    assert result.status == "ok"
    assert result.data["counts"] == {"chat-api": 3720, "rag": 1}
    stats = result.data["stats"]
    assert stats["files"] == 2  # the glob and the explicit path name the copy once
    assert stats["malformed"] == 7
    assert stats["bad_json"] == 4 and stats["bad_timestamp"] == 3

    records = list(source.query(LogQuery(start=STARTS_AT - timedelta(minutes=5),
                                         end=STARTS_AT, services=["rag"])))
    assert [(r.ts, r.message) for r in records] == [
        (datetime(2026, 11, 27, 10, 0, tzinfo=UTC), "offset stamp")]


def test_jsonl_large_file_bounded_memory(tmp_path: Path) -> None:
    path = tmp_path / "big.jsonl"
    base = datetime(2026, 11, 27, 0, 0, tzinfo=UTC)
    n = 200_000
    with path.open("w") as fh:
        for i in range(n):
            fh.write(json.dumps({
                "timestamp": (base + timedelta(milliseconds=100 * i)).isoformat()
                .replace("+00:00", "Z"),
                "level": "ERROR" if i % 10 == 0 else "INFO", "service": f"svc-{i % 3}",
                "message": f"request {i} finished with some padding text " + "x" * 60,
                "event_type": "app_log", "trace_id": f"{i:016x}"}) + "\n")
    assert path.stat().st_size > 30_000_000
    source = JsonlSource([str(path)])
    query = LogQuery(start=base, end=base + timedelta(days=1))
    tracemalloc.start()
    try:
        seen = errors = 0
        for record in source.query(query):
            seen += 1
            errors += record.level == "ERROR"
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert seen == n and errors == n // 10
    assert source.stats["malformed"] == 0
    assert peak < 50 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB"


# --- Loki ----------------------------------------------------------------------------------

T0 = to_ns(datetime(2026, 11, 27, 10, 0, tzinfo=UTC))
CHAT = {"service": "chat-api", "namespace": "llm"}
RAG = {"service": "rag", "namespace": "llm"}


def loki_line(level: str, message: str, **extra: Any) -> str:
    return json.dumps({"level": level, "message": message, **extra})


def paged_entries() -> list[tuple[Any, ...]]:
    """20 lines over two streams; several share a nanosecond (across page boundaries)."""
    entries: list[tuple[Any, ...]] = []
    for i in range(12):
        entries.append((CHAT, T0 + (i // 2) * 1000, loki_line("error", f"chat {i}",
                                                              event_type="app_log")))
    for i in range(8):
        entries.append((RAG, T0 + i * 1000 + 500 * (i % 2), loki_line("warning", f"rag {i}")))
    entries.append((RAG, T0 + 2000, "plain text line, not json"))
    return entries


def test_build_logql() -> None:
    q = LogQuery(start=STARTS_AT, end=STARTS_AT + timedelta(hours=1),
                 services=["chat-api", "rag.v2"], levels=["ERROR", "warning"],
                 contains='say "hi"')
    assert build_logql(q) == ('{service=~"chat-api|rag\\\\.v2"} |= "say \\"hi\\"" | json '
                              '| level=~"(?i)ERR|ERROR|WARN|WARNING"')
    assert build_logql(q, service_label="app", level_from="label") == (
        '{app=~"chat-api|rag\\\\.v2", level=~"(?i)ERR|ERROR|WARN|WARNING"} |= "say \\"hi\\""')
    assert build_logql(LogQuery(start=STARTS_AT, end=STARTS_AT + timedelta(1))) == \
        '{service=~".+"}'
    ns = 1_749_737_091_442_103_921
    assert to_ns(from_ns(ns)) == ns - ns % 1000


def test_loki_pages_forward_and_dedups_boundary() -> None:
    entries = paged_entries()
    with serve(FakeLoki(entries=entries)) as fake:
        source = LokiSource(fake.url, page_limit=3, timeout=5)
        q = LogQuery(start=from_ns(T0), end=from_ns(T0 + 10_000_000))
        got = list(source.query(q))
    assert len(got) == len(entries)  # every line exactly once
    assert sorted(r.message for r in got) == sorted(
        json.loads(e[2])["message"] if e[2].startswith("{") else e[2] for e in entries)
    assert [r.ts for r in got] == sorted(r.ts for r in got)
    assert source.stats["duplicates"] > 0 and source.stats["requests"] > 5
    assert all(p["direction"] == "forward" for p in fake.requests)
    # 4 lines share T0 + 2000 ns, more than a page: that nanosecond was fetched on its own
    assert [p["limit"] for p in fake.requests].count("5000") == source.stats["same_ns_fetches"]
    assert source.stats["same_ns_fetches"] >= 1 and source.stats["skipped_same_ns"] == 0
    starts = [int(p["start"]) for p in fake.requests]
    assert starts == sorted(starts) and starts[0] == T0
    chat0 = next(r for r in got if r.message == "chat 0")
    assert (chat0.level, chat0.service, chat0.fields["event_type"]) == ("error", "chat-api",
                                                                        "app_log")
    assert chat0.fields["namespace"] == "llm"
    plain = next(r for r in got if r.message.startswith("plain"))
    assert plain.service == "rag" and plain.level == ""


def test_loki_total_limit_and_full_page_in_one_nanosecond() -> None:
    same_ns = [(CHAT, T0, f"line {i}") for i in range(5)] + [(CHAT, T0 + 1, "after")]
    with serve(FakeLoki(entries=same_ns)) as fake:
        source = LokiSource(fake.url, page_limit=3)
        window: dict[str, Any] = {"start": from_ns(T0), "end": from_ns(T0 + 1_000_000)}
        assert len(list(source.query(LogQuery(**window, limit=2)))) == 2
        assert source.stats["requests"] == 1
        got = [r.message for r in source.query(LogQuery(**window))]
        last3 = [(p["start"], p["end"], p["limit"]) for p in fake.requests[-3:]]
        capped = LokiSource(fake.url, page_limit=2, same_ns_limit=3)
        capped_got = [r.message for r in capped.query(LogQuery(**window))]
    # 5 lines in one nanosecond with pages of 3: that nanosecond is fetched alone.
    assert got == [f"line {i}" for i in range(5)] + ["after"]
    assert source.stats["same_ns_fetches"] == 1 and source.stats["skipped_same_ns"] == 0
    assert last3 == [
        (str(T0), str(T0 + 1_000_000), "3"), (str(T0), str(T0 + 1), "5000"),
        (str(T0 + 1), str(T0 + 1_000_000), "3")]
    assert capped_got == ["line 0", "line 1", "line 2", "after"]
    assert capped.stats["skipped_same_ns"] == 1


def test_loki_categorized_entries_and_tools() -> None:
    meta = {"structuredMetadata": {"trace_id": "4bf9"}, "parsed": {"level": "error"}}
    entries = [*paged_entries(),
               (RAG, T0 + 3001, loki_line("error", "vector search timeout"), meta)]
    with serve(FakeLoki(entries=entries)) as fake:
        tools = tools_by_name(LokiSource(fake.url, page_limit=4))
        window = {"start": from_ns(T0).isoformat(), "end": from_ns(T0 + 10**9).isoformat()}
        counts = call(tools["logs.count_by"], {"field": "service", **window})
        assert counts.status == "ok", counts.error
        assert counts.data["counts"] == {"chat-api": 12, "rag": 10}
        levels = call(tools["logs.count_by"], {"field": "level", **window})
        assert levels.data["counts"] == {"error": 13, "warning": 8, "(missing)": 1}
        search = call(tools["logs.search"],
            {"service": ["rag"], "level": "ERROR", "contains": "vector", "limit": 5, **window})
        assert search.status == "ok"
        assert fake.requests[-1]["query"] == \
            '{service=~"rag"} |= "vector" | json | level=~"(?i)ERR|ERROR"'
        # the fake does not filter: the tool returns what Loki returned, oldest first
        assert search.data["count"] == 5 and search.data["truncated"] is True
        vec = call(tools["logs.search"], {"limit": 1000, **window})
        rec = next(r for r in vec.data["records"] if r["message"] == "vector search timeout")
        assert rec["fields"]["trace_id"] == "4bf9"


@pytest.mark.parametrize(("status", "body"), [
    (400, "parse error at line 1, col 27: syntax error: unexpected IDENTIFIER"),
    (503, "too many outstanding requests"),
])
def test_loki_error_surfaces_message_and_logql(status: int, body: str) -> None:
    with serve(FakeLoki(error=(status, body + "\n"))) as fake:
        source = LokiSource(fake.url)
        q = LogQuery(start=STARTS_AT, end=STARTS_AT + timedelta(hours=1), services=["chat-api"],
                     contains="timeout")
        with pytest.raises(LokiError) as info:
            list(source.query(q))
        assert info.value.status == status and info.value.message == body
        assert info.value.query == '{service=~"chat-api"} |= "timeout"'
        assert fake.requests[0]["query"] == info.value.query

        result = call(tools_by_name(source)["logs.search"],
            {"service": "chat-api", "contains": "timeout", "start": STARTS_AT.isoformat(),
             "end": (STARTS_AT + timedelta(hours=1)).isoformat()})
    assert result.status == "error"
    assert body in (result.error or "") and info.value.query in (result.error or "")
    assert result.data["query"] == info.value.query and result.data["upstream"] == body
    assert result.data["status"] == status


def test_loki_timeout() -> None:
    with serve(FakeLoki(entries=paged_entries(), delay=1.0)) as fake:
        source = LokiSource(fake.url, timeout=0.2)
        result = call(tools_by_name(source)["logs.count_by"],
            {"field": "level", "start": from_ns(T0).isoformat(),
             "end": from_ns(T0 + 10**9).isoformat()})
    assert result.status == "error"
    assert "timeout after 0.2s" in (result.error or "")
    assert result.data["query"] == '{service=~".+"}' and result.data["status"] is None


def test_loki_unreachable() -> None:
    source = LokiSource("http://127.0.0.1:9", timeout=1)
    with pytest.raises(LokiError) as info:
        list(source.query(LogQuery(start=STARTS_AT, end=STARTS_AT + timedelta(1))))
    assert info.value.query == '{service=~".+"}' and info.value.status is None


# --- argument contract ---------------------------------------------------------------------

@pytest.mark.parametrize("bad", [
    {"limit": 1001},
    {"limit": 0},
    {"bogus": 1},
    {"start": "2026-11-27T10:00:00", "end": "2026-11-27T11:00:00"},  # naive
    {"start": "2026-11-27T11:00:00Z", "end": "2026-11-27T10:00:00Z"},  # reversed
    {"service": "bad name with spaces"},
])
def test_search_rejects_bad_args(tmp_path: Path, bad: dict[str, Any]) -> None:
    tool = tools_by_name(JsonlSource([str(tmp_path / "*.jsonl")]))["logs.search"]
    result = call(tool, {**WINDOW, **bad})
    assert result.status == "error" and "invalid arguments" in (result.error or "")


def test_count_by_rejects_unknown_field(tmp_path: Path) -> None:
    tool = tools_by_name(JsonlSource([str(tmp_path / "*.jsonl")]))["logs.count_by"]
    result = call(tool, {"field": "user_id", **WINDOW})
    assert result.status == "error"
    empty = call(tool, {"field": "level", **WINDOW})
    assert empty.status == "no_data" and empty.data["stats"]["files"] == 0
