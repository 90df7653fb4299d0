"""Log-mining benchmark: logs.patterns over a JSONL file vs merely parsing the same file.

    .venv/bin/python bench/logmine.py [--lines 1000000] [--error-shares 0.1,0.3] [--repeat 3]

What it does (see /work/shared/design.md, "Performance targets"):

1. Writes --lines JSONL lines (fixed seed) to a temp file, shaped like the reference scenarios'
   logs.jsonl: llm_completion INFO events with many fields, and app_log ERROR/WARNING events
   from 20 message templates with variable ids and numbers, over several services;
   each --error-shares value is the share of app_log errors and warnings (3 in 4 errors).
2. (a) parse-only: reads the file line by line and orjson.loads every line (the parser the
   JSONL source uses); (b) the summarizer: the logs.patterns tool over a JsonlSource on the file
   for its whole time window. Both as lines/s (lines in the file / seconds), best of --repeat
   runs, alternating (a) and (b) to damp drift on a shared machine.
3. Prints both rates, the ratio (b)/(a), the patterns found and the top 3; then the same for a
   worst case where every line is an ERROR/WARNING line (error share 1.0).

Targets (reported PASS/MISS, not asserted): (b) >= 100,000 lines/s and >= 50 % of (a).
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from tools.logs.jsonl import JsonlSource
from tools.logs.patterns import Patterns

T0 = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
SPAN = timedelta(hours=3)
TARGET_RATE = 100_000
TARGET_RATIO = 0.5
SERVICES = ["chat-api", "rag-service", "vllm-llama3-70b", "embedder", "guardrails", "gateway"]
MODELS = ["gpt-4-turbo", "gpt-3.5-turbo", "llama-3-70b"]
TOOLS = ["ProductSearch", "OrderLookup", "RefundTool", "InventoryCheck"]


def _hex(rng: random.Random, n: int) -> str:
    return f"{rng.getrandbits(4 * n):0{n}x}"


def _ip(rng: random.Random) -> str:
    return f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"


def _uuid(rng: random.Random) -> str:
    h = _hex(rng, 32)
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:]}"


# (level, service or None for any, message builder): 20 templates, variable ids and numbers.
TEMPLATES: list[tuple[str, str | None, Callable[[random.Random], str]]] = [
    ("ERROR", "chat-api", lambda r: (
        f"OpenAIConnectionError: request to api.openai.com timed out after "
        f"{r.uniform(5, 30):.1f}s (request_id=req_{_hex(r, 12)}, attempt={r.randint(1, 3)})")),
    ("ERROR", "chat-api", lambda r: (
        f"JSONDecodeError: Expecting value: line 1 column {r.randint(1, 80)} "
        f"(char {r.randint(100, 999)}) while parsing output of tool {r.choice(TOOLS)} "
        f"for trace {_hex(r, 8)}")),
    ("ERROR", "chat-api", lambda r: (
        f"redis.exceptions.ConnectionError: Error 111 connecting to redis-cache:6379. "
        f"Connection refused. (pool={r.randint(1, 8)})")),
    ("WARNING", "vllm-llama3-70b", lambda r: (
        f"Sequence group {r.randint(1, 20_000_000)} is preempted by PreemptionMode.RECOMPUTE "
        f"because there is not enough KV cache space. "
        f"total_num_cumulative_preemption={r.randint(1, 500)}")),
    ("ERROR", "gateway", lambda r: (
        f"RateLimitError: Rate limit reached for {r.choice(MODELS)} in organization "
        f"org-{_hex(r, 12)} on tokens per min: Limit {r.randint(1, 9) * 10000}, Used "
        f"{r.randint(1000, 99999)}, Requested {r.randint(100, 9999)}. Please try again in "
        f"{r.randint(50, 900)}ms.")),
    ("ERROR", "embedder", lambda r: (
        f"httpx.ReadTimeout: read timeout after {r.randint(1000, 30000)}ms calling "
        f"http://{_ip(r)}:8080/v1/embeddings")),
    ("ERROR", "rag-service", lambda r: (
        f"vector search failed for collection products: upstream {_ip(r)}:6333 returned 503 "
        f"(trace={_uuid(r)})")),
    ("ERROR", "chat-api", lambda r: (
        f"ContextWindowExceededError: prompt has {r.randint(8193, 20000)} tokens, model "
        f"llama-3-70b allows 8192 (request {_hex(r, 16)})")),
    ("WARNING", "chat-api", lambda r: (
        f"judge: response {_hex(r, 8)} scored hallucination={r.uniform(0.8, 1):.2f} "
        f"(claim: free iPhone for order #{r.randint(10000, 99999)})")),
    ("CRITICAL", "vllm-llama3-70b", lambda r: (
        f"CUDA out of memory. Tried to allocate {r.uniform(0.1, 4):.2f} GiB (GPU "
        f"{r.randint(0, 7)}; 79.15 GiB total capacity; {r.uniform(70, 79):.2f} GiB already "
        f"allocated)")),
    ("WARNING", "gateway", lambda r: (
        f"slow request: POST /v1/chat/completions took {r.randint(2000, 9000)}ms "
        f"(budget 2000ms) trace_id={_hex(r, 16)}")),
    ("WARNING", "chat-api", lambda r: (
        f"retrying tool call {r.choice(TOOLS)} after upstream error (attempt "
        f"{r.randint(1, 4)} of 5)")),
    ("WARNING", "rag-service", lambda r: (
        f"cache miss ratio {r.uniform(0.5, 0.9):.2f} above threshold 0.50 for namespace "
        f"semantic-cache")),
    ("ERROR", "rag-service", lambda r: (
        f"sqlalchemy.exc.OperationalError: (psycopg.OperationalError) connection to server at "
        f"\"{_ip(r)}\", port 5432 failed: timeout expired after {r.randint(1, 30)}s")),
    ("WARNING", "guardrails", lambda r: (
        f"guardrail blocked response {_uuid(r)}: "
        f"category={r.choice(['pii', 'toxicity', 'jailbreak'])} score={r.random():.3f}")),
    ("ERROR", "chat-api", lambda r: (
        f"KeyError: 'tool_calls' in response from model gpt-3.5-turbo "
        f"(request_id=req_{_hex(r, 12)})")),
    ("WARNING", None, lambda r: (
        f"deprecated parameter max_tokens used by client sdk-python version "
        f"1.{r.randint(0, 60)}.{r.randint(0, 9)}")),
    ("WARNING", "gateway", lambda r: (
        f"token bucket for user u-{r.randint(1000, 9999)} exhausted: {r.randint(100, 999)} "
        f"requests in {r.randint(10, 60)}s")),
    ("ERROR", None, lambda r: (
        f"kubernetes.client.exceptions.ApiException: (409) Reason: Conflict for deployment "
        f"vllm-llama3-70b-{_hex(r, 10)} at resourceVersion {r.randint(10**6, 10**7)}")),
    ("ERROR", "chat-api", lambda r: (
        f"stream interrupted after {r.randint(1, 400)} chunks: peer closed connection without "
        f"sending complete message body (received {r.randint(1000, 90000)} bytes, expected "
        f"{r.randint(90000, 200000)})")),
]
ERROR_TEMPLATES = [t for t in TEMPLATES if t[0] != "WARNING"]
WARNING_TEMPLATES = [t for t in TEMPLATES if t[0] == "WARNING"]


def _iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def completion(rng: random.Random, t: datetime) -> dict[str, Any]:
    prompt, compl = rng.randint(100, 900), rng.randint(20, 300)
    return {"cost_usd": round(prompt * 1e-5 + compl * 3e-5, 6), "event_type": "llm_completion",
            "finish_reason": "stop", "latency_ms": rng.randint(300, 2500), "level": "INFO",
            "message": "completion ok", "model": rng.choice(MODELS),
            "service": "chat-api", "timestamp": _iso(t),
            "token_usage": {"completion": compl, "prompt": prompt, "total": prompt + compl},
            "trace_id": _hex(rng, 16), "ttft_ms": rng.randint(100, 400),
            "user_id": f"u-{rng.randint(1000, 1040)}"}


def app_log(rng: random.Random, t: datetime) -> dict[str, Any]:
    # 3 in 4 app_log lines are errors; templates are weighted so a few dominate, as in incidents
    pool = ERROR_TEMPLATES if rng.random() < 0.75 else WARNING_TEMPLATES
    level, service, build = pool[min(int(rng.expovariate(0.5)), len(pool) - 1)]
    return {"event_type": "app_log", "level": level, "message": build(rng),
            "service": service or rng.choice(SERVICES), "timestamp": _iso(t),
            "trace_id": _hex(rng, 16),
            "user_id": f"u-{rng.randint(1000, 1040)}" if rng.random() < 0.5 else None}


def generate(path: Path, lines: int, error_share: float, seed: int = 7) -> int:
    """Writes `lines` lines in time order over SPAN; returns the file size in bytes."""
    rng = random.Random(seed)
    step = SPAN / lines
    dumps = orjson.dumps
    with path.open("wb") as fh:
        batch: list[bytes] = []
        for i in range(lines):
            t = T0 + step * i
            event = app_log(rng, t) if rng.random() < error_share else completion(rng, t)
            batch.append(dumps(event) + b"\n")
            if len(batch) >= 10_000:
                fh.writelines(batch)
                batch.clear()
        fh.writelines(batch)
    return path.stat().st_size


def parse_only(path: Path) -> float:
    loads = orjson.loads
    started = time.perf_counter()
    with path.open("rb") as fh:
        for raw in fh:
            loads(raw)
    return time.perf_counter() - started


def summarize(path: Path, top: int = 10) -> tuple[float, dict[str, Any]]:
    tool = Patterns(JsonlSource([str(path)]))
    args = {"start": T0.isoformat(), "end": (T0 + SPAN + timedelta(seconds=1)).isoformat(),
            "top": top}
    started = time.perf_counter()
    result = tool.run(args)
    elapsed = time.perf_counter() - started
    if result.status != "ok":
        raise SystemExit(f"logs.patterns failed: {result.status} {result.error}")
    return elapsed, result.data


def run_mix(name: str, lines: int, error_share: float, repeat: int, workdir: Path) -> bool:
    path = workdir / f"{name}.jsonl"
    started = time.perf_counter()
    size = generate(path, lines, error_share)
    print(f"\n== {name}: {lines:,} lines, error/warning share {error_share:.2f}, "
          f"{size / 1e6:,.0f} MB (generated in {time.perf_counter() - started:.1f} s)")
    parse_s, mine_s = [], []
    data: dict[str, Any] = {}
    for _ in range(repeat):
        parse_s.append(parse_only(path))
        seconds, data = summarize(path)
        mine_s.append(seconds)
    path.unlink()
    a, b = lines / min(parse_s), lines / min(mine_s)
    ratio = b / a
    rate_ok, ratio_ok = b >= TARGET_RATE, ratio >= TARGET_RATIO
    print(f"  (a) parse-only (orjson.loads per line)  {a:>12,.0f} lines/s   "
          f"runs {', '.join(f'{s:.2f}' for s in parse_s)} s")
    print(f"  (b) logs.patterns over JsonlSource      {b:>12,.0f} lines/s   "
          f"runs {', '.join(f'{s:.2f}' for s in mine_s)} s")
    print(f"  (b) >= {TARGET_RATE:,} lines/s: {'PASS' if rate_ok else 'MISS'}")
    print(f"  (b)/(a) = {ratio:.1%} (target >= {TARGET_RATIO:.0%}): "
          f"{'PASS' if ratio_ok else 'MISS'}")
    totals, distinct = data["totals"], data["distinct"]
    print(f"  lines mined: {totals['error']:,} error, {totals['warning']:,} warning; patterns: "
          f"{distinct['error']} error, {distinct['warning']} warning; "
          f"stats: {data['stats']}")
    print("  top 3:")
    for p in data["patterns"][:3]:
        print(f"    {p['level']:7s} {p['count']:>9,} {p['share']:7.2%}  {p['template'][:90]}")
    return rate_ok and ratio_ok


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--lines", type=int, default=1_000_000, help="lines per file (1,000,000)")
    p.add_argument("--error-shares", type=lambda v: [float(x) for x in v.split(",")],
                   default=[0.1, 0.3],
                   help="shares of ERROR/WARNING lines, one run each (0.1 typical, 0.3 an "
                        "incident-heavy file; default 0.1,0.3)")
    p.add_argument("--repeat", type=int, default=3, help="timed runs of each, best kept (3)")
    p.add_argument("--no-worst-case", action="store_true",
                   help="skip the all-errors run (error share 1.0)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    print(f"logmine: python {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
          f"best of {args.repeat} runs")
    with tempfile.TemporaryDirectory(prefix="logmine-") as tmp:
        results = {share: run_mix(f"mix {share:.2f}", args.lines, share, args.repeat, Path(tmp))
                   for share in args.error_shares}
        if not args.no_worst_case:
            run_mix("worst case", args.lines, 1.0, args.repeat, Path(tmp))
    print()
    for share, ok in results.items():
        verdict = "meets both targets" if ok else "MISSES a target"
        print(f"error/warning share {share:.2f}: {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
