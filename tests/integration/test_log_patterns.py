"""logs.patterns on the reference scenarios, malformed lines, the level prefilter, a 2 GB file
in bounded memory (subprocess), and Loki."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.fake_loki import FakeLoki, serve
from tools.base import Effect, ReadTool, ToolResult
from tools.logs.jsonl import JsonlSource
from tools.logs.loki import LokiSource, from_ns, to_ns
from tools.logs.records import LogQuery, LogSource
from tools.logs.tools import logs_tools

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = Path("/work/shared/reference/scenarios")
OUTAGE = SCENARIOS / "provider-outage" / "logs.jsonl"
OUTAGE_WINDOW = {"start": "2026-11-27T09:32:00Z", "end": "2026-11-27T11:02:00Z"}


def patterns_tool(source: LogSource) -> ReadTool:
    return next(t for t in logs_tools(source) if t.spec.name == "logs.patterns")


def call(tool: ReadTool, args: dict[str, Any]) -> ToolResult:
    return tool.run(args)  # type: ignore[arg-type]


def line(ts: str, level: str, message: str, *, ascii_only: bool = True, **extra: Any) -> str:
    return json.dumps({"timestamp": ts, "level": level, "service": "chat-api",
                       "event_type": "app_log", "message": message, **extra},
                      ensure_ascii=ascii_only)


# --- scenarios -----------------------------------------------------------------------------

def test_provider_outage_three_error_patterns() -> None:
    tool = patterns_tool(JsonlSource([str(OUTAGE)]))
    assert tool.spec.effect is Effect.READ and "not redacted" in tool.spec.description
    result = call(tool, {"service": "chat-api", **OUTAGE_WINDOW})
    assert result.status == "ok", result.error
    data = result.data
    assert data["totals"] == {"error": 2000, "warning": 40}
    errors = [p for p in data["patterns"] if p["level"] == "error"]
    assert [(p["count"], p["share"]) for p in errors] == [(1600, 0.8), (300, 0.15), (100, 0.05)]
    for pattern, name in zip(errors, ["OpenAIConnectionError", "JSONDecodeError",
                                      "redis.exceptions.ConnectionError"], strict=True):
        assert pattern["template"].startswith(name + ":"), pattern["template"]
        assert pattern["exemplar"].startswith(name + ":")
        assert pattern["services"] == ["chat-api"]
    assert errors[0]["template"] == ("OpenAIConnectionError: request to api.openai.com timed "
                                     "out after <NUM> (request_id=<HEX>, attempt=<NUM>)")
    assert data["distinct"]["error"] == 3

    # first/last seen, against the file itself
    stamps: dict[str, list[str]] = {}
    for raw in OUTAGE.read_text().splitlines():
        obj = json.loads(raw)
        if obj["level"] == "ERROR":
            stamps.setdefault(obj["message"].split(":")[0], []).append(obj["timestamp"])
    for pattern in errors:
        seen = sorted(stamps[pattern["template"].split(":")[0]])
        assert pattern["first_seen"] == seen[0] and pattern["last_seen"] == seen[-1]

    # the 40 "user message" warnings: raw at this layer (the agent layer redacts)
    warnings = [p for p in data["patterns"] if p["level"] == "warning"]
    assert sum(p["count"] for p in warnings) == 40 == data["totals"]["warning"]
    assert all(p["template"].startswith("user message:") for p in warnings)
    assert sum(p["share"] for p in warnings) == pytest.approx(1.0)
    assert any("jane.doe@example.com" in p["exemplar"] for p in warnings)

    stats = data["stats"]
    assert stats["lines_read"] == 3840 and stats["matched"] == 2040
    assert stats["malformed"] == 0 and stats["prefiltered"] == 1800
    assert data["filters"]["levels"] == ["ERROR", "CRITICAL", "WARNING"]


def test_kv_cache_saturation_top_pattern() -> None:
    alerts = json.loads((SCENARIOS / "kv-cache-saturation" / "alerts.json").read_text())
    starts = min(datetime.fromisoformat(a["startsAt"]) for a in alerts["alerts"])
    window = {"start": (starts - timedelta(minutes=30)).isoformat(),
              "end": (starts + timedelta(hours=2)).isoformat()}
    tool = patterns_tool(JsonlSource([str(SCENARIOS / "kv-cache-saturation" / "logs.jsonl")]))
    result = call(tool, window)
    assert result.status == "ok", result.error
    top = result.data["patterns"][0]
    assert "not enough KV cache space" in top["template"]
    assert (top["level"], top["count"], top["share"]) == ("warning", 200, 1.0)
    assert top["services"] == ["vllm-llama3-70b"]
    assert result.data["totals"] == {"error": 0, "warning": 200}


def test_malformed_lines_counted_patterns_unchanged(tmp_path: Path) -> None:
    clean = tmp_path / "clean.jsonl"
    shutil.copy(OUTAGE, clean)
    lines = OUTAGE.read_text().splitlines()
    bad = ["this is not json at all",
           '{"event_type": "app_log", "level": "ERROR", "message": "OpenAIConnectionError: requ',
           '{"cost_usd": 0.01, "event_type": "llm_completion", "level": "INFO", "mess',
           line("yesterday", "ERROR", "OpenAIConnectionError: request timed out"),
           line("2026-11-27T10:30:00Z", "ERROR", "truncated", extra="x")[:-5],
           "[1, 2, 3]"]
    rng = random.Random(4)
    for text in bad * 5:
        lines.insert(rng.randrange(len(lines) + 1), text)
    dirty = tmp_path / "dirty.jsonl"
    dirty.write_text("\n".join(lines) + "\n")

    before = call(patterns_tool(JsonlSource([str(clean)])), OUTAGE_WINDOW)
    after = call(patterns_tool(JsonlSource([str(dirty)])), OUTAGE_WINDOW)
    assert after.status == "ok"
    for key in ("patterns", "totals", "distinct"):
        assert after.data[key] == before.data[key]
    stats = after.data["stats"]
    assert stats["malformed"] == 30 and before.data["stats"]["malformed"] == 0
    assert stats["bad_json"] == 25 and stats["bad_timestamp"] == 5
    assert stats["lines_read"] == 3840 + 30


def test_prefilter_never_drops_a_matching_line(tmp_path: Path) -> None:
    """Lines built to trip a byte-level filter: the prefiltered query returns exactly what the
    unfiltered query returns filtered by LogQuery.matches; plain INFO lines count as
    prefiltered."""
    ts = "2026-11-27T10:00:00Z"
    info_lines = [line(ts, "INFO", "completion ok"),
                  line(ts, "INFO", "an ERROR word in an INFO line"),
                  line(ts, "INFO", "ünïcödé and ✓ in the message", ascii_only=False),
                  '{"timestamp": "2026-11-27T10:00:01Z", "message": "no level at all"}',
                  line(ts, "ınfo", "dotless i: upper-cases to INFO", ascii_only=False),
                  line(ts, "debug", "tab\tand \"quotes\" and a backslash \\ here")]
    tricky = [
        line(ts, "error", "lower-case level"),
        line(ts, "Warn", "alias, mixed case"),
        line(ts, "FATAL", "alias of CRITICAL"),
        line(ts, " ERROR ", "padded level"),
        line(ts, "warnıng", "dotless i: upper-cases to WARNING", ascii_only=False),
        '{"timestamp": "2026-11-27T10:00:02Z", "level": "\\u0045RROR", "message": "escaped level"}',
        '{"timestamp": "2026-11-27T10:00:03Z", "lev\\u0065l": "ERROR", "message": "escaped key"}',
        '{"timestamp": "2026-11-27T10:00:04Z", "level": "INFO", "message": "duplicate key", '
        '"level": "ERROR"}',
        '{"timestamp": "2026-11-27T10:00:05Z", "ctx": {"level": "INFO"}, "level": "ERROR", '
        '"message": "nested INFO first"}',
        '{"timestamp": "2026-11-27T10:00:06Z", "ctx": {"level": "ERROR"}, "level": "INFO", '
        '"message": "nested ERROR, top-level INFO"}',
        '{"timestamp": "2026-11-27T10:00:07Z", "ctx": {"level": "ERROR"}, '
        '"message": "only a nested level"}',
        '{"timestamp" : "2026-11-27T10:00:08Z" , "level" :  "ERROR" , "message" : "spaced"}',
        line(ts, "ERROR", "crlf line ending") + "\r",
        line(ts, "ERROR", "a \\u escape in the message: \u00e9", note="\\u0041"),
    ]
    path = tmp_path / "tricky.jsonl"
    path.write_text("\n".join(info_lines * 3 + tricky + info_lines) + "\n\n   \n")
    window = {"start": datetime(2026, 11, 27, 9, tzinfo=UTC),
              "end": datetime(2026, 11, 27, 11, tzinfo=UTC)}
    levels = ["ERROR", "CRITICAL", "WARNING"]
    source = JsonlSource([str(path)])
    wanted = LogQuery(**window, levels=levels)
    expected = [r for r in source.query(LogQuery(**window)) if wanted.matches(r)]
    unfiltered_stats = dict(source.stats)
    got = list(source.query(wanted))
    assert got == expected
    assert [r.message for r in got] == [
        "lower-case level", "alias, mixed case", "alias of CRITICAL", "padded level",
        "dotless i: upper-cases to WARNING", "escaped level", "escaped key", "duplicate key",
        "nested INFO first", "spaced", "crlf line ending",
        "a \\u escape in the message: \u00e9"]
    stats = source.stats
    assert stats["prefiltered"] == 4 * len(info_lines)
    assert stats["lines_read"] == unfiltered_stats["lines_read"] == 4 * len(info_lines) + 14
    assert stats["malformed"] == 0 and stats["matched"] == 12

    result = call(patterns_tool(source), {"start": "2026-11-27T09:00:00Z",
                                          "end": "2026-11-27T11:00:00Z", "top": 50})
    assert result.data["totals"] == {"error": 10, "warning": 2}
    assert result.data["stats"]["prefiltered"] == 24


def test_arguments(tmp_path: Path) -> None:
    tool = patterns_tool(JsonlSource([str(tmp_path / "*.jsonl")]))
    for bad in ({"top": 51}, {"top": 0}, {"level": "INFO"}, {"levels": ["ERROR", "DEBUG"]},
                {"bogus": 1}):
        result = call(tool, {**OUTAGE_WINDOW, **bad})
        assert result.status == "error" and "invalid arguments" in (result.error or "")
    empty = call(tool, {**OUTAGE_WINDOW, "level": ["err", "fatal"]})
    assert empty.status == "no_data"
    assert empty.data["patterns"] == [] and empty.data["stats"]["files"] == 0
    assert empty.data["filters"]["levels"] == ["err", "fatal"]


# --- a 2 GB file in bounded memory -------------------------------------------------------------

# The child's peak RSS is VmHWM (KiB): ru_maxrss would do on its own, but Linux carries the
# parent's high-water mark across fork/vfork + exec, so in a child of a big pytest process
# ru_maxrss reports the parent's peak (printed anyway, for comparison).
_SUMMARIZE = """
import json, resource, sys, time
from tools.logs.jsonl import JsonlSource
from tools.logs.tools import logs_tools
tool = next(t for t in logs_tools(JsonlSource([sys.argv[1]])) if t.spec.name == "logs.patterns")
started = time.perf_counter()
result = tool.run({"start": "2026-11-27T09:00:00Z", "end": "2026-11-27T12:00:00Z"})
seconds = time.perf_counter() - started
hwm = next(int(row.split()[1]) for row in open("/proc/self/status") if row.startswith("VmHWM:"))
print(json.dumps({"status": result.status, "error": result.error, "data": result.data,
                  "seconds": seconds, "peak_rss_kib": hwm,
                  "ru_maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def _block() -> tuple[bytes, dict[str, int]]:
    """~4 MB of lines like the scenarios': fat INFO lines, 1 % errors and warnings in three
    patterns, 3 malformed lines."""
    rng = random.Random(9)
    out: list[str] = []
    counts = {"timeout": 0, "refused": 0, "slow": 0, "info": 0}
    base = datetime(2026, 11, 27, 10, tzinfo=UTC)
    while sum(len(x) + 1 for x in out) < 4_000_000:
        ts = (base + timedelta(milliseconds=len(out) * 3)).isoformat().replace("+00:00", "Z")
        roll = rng.random()
        if roll < 0.006:
            counts["timeout"] += 1
            out.append(line(ts, "ERROR", f"OpenAIConnectionError: request timed out after "
                                         f"{rng.uniform(1, 30):.1f}s (request_id=req_"
                                         f"{rng.getrandbits(48):012x})"))
        elif roll < 0.008:
            counts["refused"] += 1
            out.append(line(ts, "CRITICAL", f"redis.exceptions.ConnectionError: Error 111 "
                                            f"connecting to 10.0.0.{rng.randint(1, 250)}:6379"))
        elif roll < 0.01:
            counts["slow"] += 1
            out.append(line(ts, "WARNING", f"slow request took {rng.randint(2000, 9000)}ms"))
        else:
            counts["info"] += 1
            out.append(json.dumps({
                "timestamp": ts, "level": "INFO", "service": "chat-api",
                "event_type": "llm_completion", "message": "completion ok",
                "model": "gpt-4-turbo", "trace_id": f"{rng.getrandbits(64):016x}",
                "token_usage": {"prompt": rng.randint(100, 900), "completion": 99},
                "prompt_preview": "x" * 400}))
    out += ["garbage, not json", '{"timestamp": "2026-11-27T10:00:00Z", "level": "ERROR", "mes',
            line("not a time", "ERROR", "bad timestamp")]
    return ("\n".join(out) + "\n").encode(), counts


@pytest.mark.slow
def test_two_gigabytes_in_bounded_memory(tmp_path: Path) -> None:
    block, counts = _block()
    repeats = -(-2_000_000_000 // len(block))
    path = tmp_path / "big.jsonl"
    started = time.perf_counter()
    try:
        with path.open("wb") as fh:
            for _ in range(repeats):
                fh.write(block)
        assert path.stat().st_size >= 2_000_000_000
        run = subprocess.run([sys.executable, "-c", _SUMMARIZE, str(path)], cwd=ROOT,
                             capture_output=True, text=True, timeout=900, check=False)
    finally:
        path.unlink(missing_ok=True)
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    assert out["status"] == "ok", out["error"]
    data = out["data"]
    peak_mb = out["peak_rss_kib"] / 1024
    print(f"\n2 GB file: {repeats} x {len(block):,} bytes, summarized in {out['seconds']:.1f} s "
          f"(test {time.perf_counter() - started:.1f} s), peak RSS {peak_mb:.0f} MB "
          f"(ru_maxrss, with the parent's: {out['ru_maxrss_kib'] / 1024:.0f} MB)")
    assert peak_mb < 300, f"peak RSS {peak_mb:.0f} MB"

    errors = counts["timeout"] + counts["refused"]
    assert data["totals"] == {"error": errors * repeats, "warning": counts["slow"] * repeats}
    assert [(p["level"], p["count"]) for p in data["patterns"]] == [
        ("error", counts["timeout"] * repeats), ("error", counts["refused"] * repeats),
        ("warning", counts["slow"] * repeats)]
    assert data["patterns"][0]["template"].startswith("OpenAIConnectionError: request timed out")
    stats = data["stats"]
    assert stats["malformed"] == 3 * repeats  # counted and reported, never fatal
    assert stats["bad_json"] == 2 * repeats and stats["bad_timestamp"] == repeats
    assert stats["prefiltered"] == counts["info"] * repeats
    assert stats["lines_read"] == (sum(counts.values()) + 3) * repeats


# --- Loki ----------------------------------------------------------------------------------

def test_patterns_over_loki() -> None:
    t0 = to_ns(datetime(2026, 11, 27, 10, 0, tzinfo=UTC))
    chat, vllm = {"service": "chat-api"}, {"service": "vllm-llama3-70b"}
    entries: list[tuple[Any, ...]] = []
    for i in range(30):
        entries.append((chat, t0 + i * 1_000_000, json.dumps(
            {"level": "error", "message": f"OpenAIConnectionError: request timed out after "
                                          f"{i % 9 + 1}.5s (attempt={i % 3 + 1})"})))
        entries.append((chat, t0 + i * 1_000_000 + 1, json.dumps(
            {"level": "info", "message": "completion ok"})))
    for i in range(10):
        entries.append((vllm, t0 + i * 2_000_000 + 7, json.dumps(
            {"level": "warning", "message": f"Sequence group {1000 + i} is preempted because "
                                            f"there is not enough KV cache space"})))
    with serve(FakeLoki(entries=entries)) as fake:
        tool = patterns_tool(LokiSource(fake.url, page_limit=16))
        result = call(tool, {"start": from_ns(t0).isoformat(),
                             "end": from_ns(t0 + 10**9).isoformat()})
    assert result.status == "ok", result.error
    data = result.data
    assert data["source"] == "loki"
    assert data["totals"] == {"error": 30, "warning": 10}
    assert [(p["level"], p["count"], p["share"], p["services"]) for p in data["patterns"]] == [
        ("error", 30, 1.0, ["chat-api"]), ("warning", 10, 1.0, ["vllm-llama3-70b"])]
    assert data["patterns"][0]["template"] == (
        "OpenAIConnectionError: request timed out after <NUM> (attempt=<NUM>)")
    assert data["stats"]["requests"] > 1  # paged
    query = fake.requests[0]["query"]
    assert query.startswith('{service=~".+"} | json | level=~"(?i)')
    assert all(name in query for name in ("ERROR", "CRITICAL", "WARNING"))
