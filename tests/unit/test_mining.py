"""PatternMiner: masking, shapes, clustering, shares per level class, bounds, labels."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tools.logs.mining import PatternMiner, compile_shape, fits, label, mask, shape_of
from tools.logs.records import LogRecord

T0 = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)


def rec(message: str, level: str = "ERROR", *, at: int = 0, service: str = "chat-api") -> LogRecord:
    return LogRecord(T0 + timedelta(seconds=at), level, service, message)


def mined(records: list[LogRecord], top: int = 10, **kwargs: Any) -> dict[str, Any]:
    miner = PatternMiner(**kwargs)
    assert miner.add_all(records) == len(records)
    return miner.result(top)


# --- masking -------------------------------------------------------------------------------

@pytest.mark.parametrize(("message", "masked"), [
    ("OpenAIConnectionError: request to api.openai.com timed out after 9.9s "
     "(request_id=req_15a345f7aa93, attempt=1)",
     "OpenAIConnectionError: request to api.openai.com timed out after <NUM> "
     "(request_id=<HEX>, attempt=<NUM>)"),
    ("redis.exceptions.ConnectionError: Error 111 connecting to redis-cache:6379. "
     "Connection refused. (pool=4)",
     "redis.exceptions.ConnectionError: Error <NUM> connecting to redis-cache:<NUM>. "
     "Connection refused. (pool=<NUM>)"),
    ("JSONDecodeError: Expecting value: line 1 column 46 (char 896) while parsing output of "
     "tool ProductSearch for trace 12719f0a",
     "JSONDecodeError: Expecting value: line <NUM> column <NUM> (char <NUM>) while parsing "
     "output of tool ProductSearch for trace <HEX>"),
    ("upstream 10.0.3.17:8080 returned 503 for span 3f2a9c1e-7b4d-4e2a-9f1c-0a1b2c3d4e5f "
     "after 250ms", "upstream <IP>:<NUM> returned <NUM> for span <UUID> after <NUM>"),
    ("took 1.5 s, 12KB, 3MiB, 99% at 0xDEADbeef", "took <NUM> s, <NUM>, <NUM>, <NUM> at <HEX>"),
    # ids: >= 8 hex with a digit; a run of digits is a number; letters-only words stay
    ("trace deadbeef01 order 12345678 word bfaadcea facade", "trace <HEX> order <NUM> word "
     "bfaadcea facade"),
    # names with digits stay whole: exception names, modules, versions, models, regions, users
    ("OpenAI4Error in s3.client v1.2.3 for gpt-4-turbo on us-east-1 by u-1013 via http2",
     "OpenAI4Error in s3.client v1.2.3 for gpt-4-turbo on us-east-1 by u-1013 via http2"),
    ("+1 (415) 555-0142 and 123-45-6789", "+<NUM> (<NUM>) <NUM>-<NUM> and <NUM>-<NUM>-<NUM>"),
    ("sk-proj-4f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a", "sk-proj-<HEX>"),
    ("", ""),
])
def test_mask(message: str, masked: str) -> None:
    assert mask(message) == masked


def test_shapes_agree_with_the_mask() -> None:
    """fits and the compiled hot-shape check accept exactly the messages that mask to a shape
    (the compiled one may only be stricter), over varied random messages."""
    rng = random.Random(5)

    def variable() -> str:
        return rng.choice([
            str(rng.randint(0, 10**rng.randint(1, 10))), f"{rng.random() * 100:.2f}ms",
            f"{rng.getrandbits(40):010x}", f"req_{rng.getrandbits(48):012x}",
            ".".join(str(rng.randint(0, 255)) for _ in range(4)),
            f"{rng.getrandbits(32):08x}-{rng.getrandbits(16):04x}-4abc-8def-"
            f"{rng.getrandbits(48):012x}", "abcdef", "deadbeef", "1.2.3.4.5", "12345678-x",
            f"0x{rng.getrandbits(16):x}", "v2", "gpt-4"])

    templates = ["Error {} at {}: retry {} of {}", "{} failed", "id={}, span={} ({})",
                 "user {} on host {} took {}", "{}"]
    messages = [rng.choice(templates).format(*(variable() for _ in range(4)))
                for _ in range(3000)]
    shapes = {shape_of(mask(m)) for m in messages[:300]}
    compiled = {shape: compile_shape(shape) for shape in shapes}
    for message in messages:
        own = shape_of(mask(message))
        for shape, fast in compiled.items():
            fitted = fits(message, shape)
            assert fitted == (shape == own), (message, shape)
            if message.startswith(shape[0]) and fast(message, len(shape[0])) is not None:
                assert shape == own, (message, shape)
        if own in compiled:
            assert fits(message, own)


# --- clustering ----------------------------------------------------------------------------

def test_varied_messages_cluster_into_their_templates() -> None:
    rng = random.Random(1)
    records = []
    for i in range(600):
        kind = i % 3
        if kind == 0:
            msg = (f"OpenAIConnectionError: request to api.openai.com timed out after "
                   f"{rng.uniform(1, 30):.1f}s (request_id=req_{rng.getrandbits(48):012x}, "
                   f"attempt={rng.randint(1, 3)})")
        elif kind == 1:
            msg = (f"JSONDecodeError: Expecting value: line 1 column {rng.randint(1, 80)} "
                   f"(char {rng.randint(1, 999)}) while parsing output of tool "
                   f"{rng.choice(['ProductSearch', 'OrderLookup'])} for trace "
                   f"a{rng.getrandbits(24):06x}1")  # hex with a letter and a digit
        else:
            msg = (f"vector search failed: upstream 10.0.{rng.randint(0, 9)}."
                   f"{rng.randint(1, 200)}:6333 returned 503 (trace="
                   f"{rng.getrandbits(32):08x}-{rng.getrandbits(16):04x}-4a2b-9c1d-"
                   f"{rng.getrandbits(48):012x})")
        records.append(rec(msg, at=i))
    result = mined(records, hot_after=50)
    templates = [p["template"] for p in result["patterns"]]
    assert result["distinct"] == {"error": 3, "warning": 0}
    assert sorted(templates) == sorted([
        "OpenAIConnectionError: request to api.openai.com timed out after <NUM> "
        "(request_id=<HEX>, attempt=<NUM>)",
        # two tool names, one token apart: Drain generalizes the token
        "JSONDecodeError: Expecting value: line <NUM> column <NUM> (char <NUM>) while parsing "
        "output of tool <*> for trace <HEX>",
        "vector search failed: upstream <IP>:<NUM> returned <NUM> (trace=<UUID>)"])
    assert all(p["count"] == 200 and p["share"] == pytest.approx(1 / 3, abs=1e-4)
               for p in result["patterns"])


def test_hot_shapes_change_nothing() -> None:
    """Compiling hot shapes is only a speed-up: results equal those of the slow path."""
    rng = random.Random(2)
    records = [rec(f"Error {rng.randint(1, 999)} connecting to db-{rng.randint(1, 3)}:5432 "
                   f"(pool={rng.randint(1, 8)}, id={rng.getrandbits(40):010x})",
                   level=rng.choice(["ERROR", "WARNING", "CRITICAL"]), at=i)
               for i in range(2000)]
    fast = mined(records, hot_after=5)
    slow = mined(records, hot_after=10**9)
    assert fast == slow
    assert sum(p["count"] for p in fast["patterns"]) == 2000


def test_share_per_level_class_first_last_seen_services_exemplar() -> None:
    records = []
    for i in range(2000):  # 1600 timeouts, 400 refusals, deliberately out of time order
        at = (i * 7919) % 2000
        if i % 5:
            records.append(rec(f"upstream timed out after {i % 30 + 1}s", at=at,
                               service=f"svc-{i % 3}"))
        else:
            records.append(rec(f"connection refused by 10.0.0.{i % 250 + 1}", level="CRITICAL",
                               at=at))
    long_warning = "disk almost full on /var/lib/data " + "x" * 600
    records += [rec(f"queue depth 1{i} above threshold", level="warn", at=5000 + i)
                for i in range(40)]
    records += [rec(long_warning, level="WARNING", at=4000), rec("ignored", level="INFO"),
                rec("ignored too", level="debug")]
    result = mined(records)
    assert result["totals"] == {"error": 2000, "warning": 41}
    assert result["distinct"] == {"error": 2, "warning": 2}
    levels = [p["level"] for p in result["patterns"]]
    assert levels == ["error", "error", "warning", "warning"]
    timeout, refused, queue, disk = result["patterns"]
    assert (timeout["count"], timeout["share"]) == (1600, 0.8)  # of errors, not of all lines
    assert (refused["count"], refused["share"]) == (400, 0.2)
    assert (queue["count"], queue["share"]) == (40, 0.9756)
    assert (disk["count"], disk["share"]) == (1, 0.0244)
    assert timeout["template"] == "upstream timed out after <NUM>"
    assert refused["template"] == "connection refused by <IP>"
    firsts = sorted(r.ts for r in records if r.message.startswith("upstream"))
    assert timeout["first_seen"] == firsts[0].isoformat().replace("+00:00", "Z")
    assert timeout["last_seen"] == firsts[-1].isoformat().replace("+00:00", "Z")
    assert timeout["first_seen"].endswith("Z") and refused["last_seen"].endswith("Z")
    assert timeout["services"] == ["svc-0", "svc-1", "svc-2"]
    assert refused["exemplar"] == "connection refused by 10.0.0.1"  # the first raw message
    assert disk["exemplar"] == long_warning[:500]


def test_levels_filter_and_top() -> None:
    kinds = ["disk full on volume", "upstream refused the connection", "certificate expired for",
             "quota exceeded in project", "model returned an empty completion body"]
    records = [rec(f"{kinds[k]} {i}", level=level)
               for k in range(5) for i in range(k + 1)
               for level in ("ERROR", "WARNING")]
    only_errors = mined(records, levels=["error"])
    assert only_errors["totals"] == {"error": 15, "warning": 0}
    top2 = mined(records, top=2)
    assert [(p["level"], p["count"]) for p in top2["patterns"]] == [
        ("error", 5), ("error", 4), ("warning", 5), ("warning", 4)]
    assert top2["distinct"] == {"error": 5, "warning": 5}
    empty = mined([rec("x", level="INFO")])
    assert empty == {"patterns": [], "totals": {"error": 0, "warning": 0},
                     "distinct": {"error": 0, "warning": 0}}


# --- bounds --------------------------------------------------------------------------------

def test_cache_and_shapes_stay_bounded() -> None:
    miner = PatternMiner(cache_size=100, max_shapes=50)
    words = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta"]
    for i in range(3000):  # 3000 distinct masked texts under 8 first words
        msg = f"{words[i % 8]} {' '.join(words[(i >> j) % 8] for j in range(6))} #{i % 7}"
        miner.add(rec(msg, at=i))
        assert miner.cache_len <= 100
        assert miner.shape_count <= 50
    assert miner.totals == {"error": 3000, "warning": 0}


def test_long_messages_mined_on_their_head_and_cache_bounded_by_size() -> None:
    rng = random.Random(6)
    miner = PatternMiner(max_chars=100, max_cached_chars=1000)
    first = ""
    for i in range(300):
        word = "".join(rng.choice("ghijklmnopqrstuvwxyz") for _ in range(8))  # no hex, no mask
        message = f"ValueError: bad input {word} in step {i}\n" + "x" * 100 + "\n".join(
            f"  File handler.py, line {rng.randint(1, 999)}" for _ in range(200))
        first = first or message
        miner.add(rec(message, at=i))
        assert miner.cache_len <= 10  # 100-char masked texts, 1000 chars in all
    result = miner.result()
    assert result["totals"]["error"] == 300
    assert result["patterns"][0]["template"].startswith("ValueError: bad input <*> in step <NUM>")
    assert len(result["patterns"][0]["template"]) < 120  # the head, not the 5 KB trace
    assert result["patterns"][0]["exemplar"] == first[:500]  # raw


def test_drain_eviction_keeps_counts() -> None:
    """With few clusters allowed, Drain evicts (LRU); every line is still counted and the
    kept patterns stay bounded."""
    miner = PatternMiner(max_clusters=10)
    rng = random.Random(3)
    vocabulary = [f"w{chr(97 + i)}{chr(97 + j)}" for i in range(26) for j in range(26)]
    for i in range(2000):
        miner.add(rec(" ".join(rng.choice(vocabulary) for _ in range(rng.randint(2, 9))),
                      at=i))
    result = miner.result(50)
    assert result["totals"]["error"] == 2000
    assert len(miner._patterns["error"]) <= 4 * 10 + 1
    assert result["distinct"]["error"] >= len(result["patterns"])
    assert sum(p["count"] for p in result["patterns"]) <= 2000


# --- labels --------------------------------------------------------------------------------

@pytest.mark.parametrize(("template", "expected"), [
    ("OpenAIConnectionError: request to api.openai.com timed out after <NUM>",
     "OpenAIConnectionError"),
    ("redis.exceptions.ConnectionError: Error <NUM> connecting to redis-cache:<NUM>.",
     "redis.exceptions.ConnectionError"),
    ("JSONDecodeError: Expecting value: line <NUM> column <NUM>", "JSONDecodeError"),
    ("KeyError:", "KeyError"),
    ("judge: response <HEX> scored hallucination=<NUM>",
     "judge: response <HEX> scored hallucination=<NUM>"),
    ("ERROR: disk full", "ERROR: disk full"),
    ("Sequence group <NUM> is preempted by PreemptionMode.RECOMPUTE because there is not "
     "enough KV cache space.", "Sequence group <NUM> is preempted by…"),
    ("user message: My email is jane.doe@example.com", "user message: My email is "
     "jane.doe@example.com"),
])
def test_label(template: str, expected: str) -> None:
    assert label(template) == expected
    assert len(label(template)) <= 60
