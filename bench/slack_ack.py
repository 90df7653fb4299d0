"""Slack interaction ack benchmark: how fast `metaops serve` answers a signed button click.

    .venv/bin/python bench/slack_ack.py [--clicks 200] [--concurrency 10] [--warmup 10] [--json]
    .venv/bin/python bench/slack_ack.py --across-tick       # also click across a scheduler tick
    .venv/bin/python bench/slack_ack.py --sweep-seconds 3600  # diagnosis: no tick in the run

Target (see /work/shared/design.md, "Performance targets"): a Slack interaction is
acknowledged with p99 < 100 ms (Slack's own limit is 3 s). The ack is the HTTP answer to
`POST /slack/events`: the server checks Slack's signature, acks, and records the decision in the
background, so the figure here is send -> HTTP response, as Slack would see it.

What it does:

1. Serves the wire-level fake of Slack's Web API (tests/fake_slack.py) and starts
   `python -m api.cli serve` on a fresh SQLite database in a temp dir (METAOPS_ENV=test), with
   Slack enabled against the fake and the provider-outage scenario's logs.
2. Sends the provider-outage alert, maps Slack users with `metaops principal add` (two
   approvers, two viewers; a few more users stay unmapped) and waits for the approval card in
   the fake's channel, as tests/e2e/test_slack.py does.
3. Warms up with refused clicks (the first request also makes Bolt call auth.test), then sends
   --clicks signed `block_actions` clicks on the card one after the other over one keep-alive
   connection ("sequential"), then --clicks more with --concurrency in flight ("burst"). Each
   click is distinct (its own user/action_ts): approvers' approve clicks (the first one decides,
   the later ones find it already decided), viewers' clicks (refused: role) and unmapped users'
   clicks (refused: not mapped). With --across-tick, --clicks more are sent open loop at
   --pace per second (each on its schedule, whatever became of the others, as people click)
   around the next tick of the server's scheduler.
4. Checks that the clicks were worked on, not only acknowledged (waiting up to 180 s for the
   background work): exactly one approval is recorded for the action (by the first approver
   who clicked, via Slack), and one `slack.refused` audit event per refused click.

Reading the figures: the server's scheduler ticks every METAOPS_SWEEP_SECONDS (15 s) and reads
its job store on the event loop thread; a tick that meets an open write transaction blocks the
whole server for SQLite's 30 s busy timeout, retried at once, again and again under load. The
"ticks" column counts the ticks inside each timed window; the two default variants usually end
before the first tick, so only --across-tick reliably shows what a tick does to the acks. The
report quotes the server's "database is locked" warnings when there were any.

The target is reported (PASS/MISS), not asserted. Exit status: 0 = ran, every click answered
200 and the recorded outcome is right (whatever the p99); 1 = non-200 answers or a wrong
outcome; 2 = harness failure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import httpx

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python bench/slack_ack.py`: the tests package is at the root
    sys.path.insert(0, str(ROOT))

from tests.fake_slack import (  # noqa: E402
    BOT_TOKEN,
    CHANNEL_ID,
    ONCALL_USER_ID,
    SIGNING_SECRET,
    FakeSlack,
    serve_slack,
    sign,
)
from tests.support import (  # noqa: E402
    ADMIN_TOKEN,
    SCENARIOS,
    WEBHOOK_TOKEN,
    ServerProcess,
)

SCENARIO = SCENARIOS / "provider-outage"
PATH = "/slack/events"
FORM = "application/x-www-form-urlencoded"
TARGET_P99_MS = 100.0
EXIT_OK, EXIT_WRONG, EXIT_HARNESS = 0, 1, 2
APPROVE, REJECT = "metaops_approve", "metaops_reject"

# (Slack user id, name in the fake, principal name or None if unmapped, role)
APPROVERS = [(ONCALL_USER_ID, "priya.oncall", "priya", "approver"),
             ("U05SECOND01", "sasha.second", "sasha", "approver")]
VIEWERS = [("U03VIEWER01", "vic.viewer", "vic", "viewer"),
           ("U06VIEWER02", "val.viewer", "val", "viewer")]
UNMAPPED = [(f"U09STRANGE{i}", f"stranger.{i}", None, "") for i in range(4)]


class HarnessError(RuntimeError):
    """The benchmark itself could not run as intended (not a product result)."""


# --------------------------------------------------------------------------------------------
# The clicks.


@dataclass(frozen=True)
class Click:
    kind: str  # approver | viewer | unmapped
    user_id: str
    action: str  # APPROVE | REJECT
    body: bytes


@dataclass
class Sample:
    click: Click
    status: int  # HTTP status, or -1 for a transport error / timeout
    latency: float  # seconds, send -> response
    sent_at: float  # time.monotonic() when sent


@dataclass
class Variant:
    name: str
    in_flight: int  # 0: open loop (sent on a schedule, whatever the answers)
    samples: list[Sample] = field(default_factory=list)
    wall: float = 0.0
    error_kinds: Counter[str] = field(default_factory=Counter)
    ticks: int | None = None  # scheduler ticks inside the timed window (None: unknown)

    def window(self) -> tuple[float, float]:
        """(first send, last answer) on the monotonic clock."""
        return (min(s.sent_at for s in self.samples),
                max(s.sent_at + s.latency for s in self.samples))

    @property
    def ok(self) -> list[Sample]:
        return [s for s in self.samples if s.status == 200]

    @property
    def errors(self) -> int:
        return len(self.samples) - len(self.ok)

    def pct_ms(self, q: float) -> float:
        """Nearest-rank percentile of the 200-answered clicks."""
        lat = sorted(s.latency for s in self.ok)
        if not lat:
            return float("nan")
        k = min(len(lat) - 1, max(0, math.ceil(q / 100 * len(lat)) - 1))
        return lat[k] * 1000.0

    def max_ms(self) -> float:
        return max((s.latency for s in self.ok), default=float("nan")) * 1000.0

    def over(self, seconds: float) -> int:
        """Clicks not answered within `seconds` (answered late, or not at all)."""
        return sum(1 for s in self.samples if s.status != 200 or s.latency > seconds)


class ClickFactory:
    """Distinct clicks on the card, built from the card as it was posted (later clicks are on
    the same message, as a person with a stale Slack window would send them)."""

    def __init__(self, slack: FakeSlack, card_ts: str) -> None:
        self.slack = slack
        self.card_ts = card_ts
        self.n = 0
        self.epoch = int(time.time())
        # click_body reads the button (value, block_id, text) from the message as stored now,
        # while it still has its buttons.
        self.templates = {(user, action): slack.click_body(user, action, channel=CHANNEL_ID,
                                                           ts=card_ts)
                          for user, *_ in APPROVERS + VIEWERS + UNMAPPED
                          for action in (APPROVE, REJECT)}

    def make(self, kind: str, user_id: str, action: str) -> Click:
        """A click with its own action_ts (the server dedupes on user + action_ts: a retry of
        one click counts once, two clicks count twice)."""
        self.n += 1
        raw = self.templates[(user_id, action)]
        payload = json.loads(unquote(raw.decode().removeprefix("payload=")))
        payload["actions"][0]["action_ts"] = f"{self.epoch}.{self.n:06d}"
        body = "payload=" + quote(json.dumps(payload, separators=(",", ":")), safe="")
        return Click(kind, user_id, action, body.encode())

    def refused(self, rng: random.Random, count: int) -> list[Click]:
        out = []
        for _ in range(count):
            kind = rng.choice(("viewer", "unmapped"))
            user = rng.choice(VIEWERS if kind == "viewer" else UNMAPPED)[0]
            out.append(self.make(kind, user, rng.choice((APPROVE, REJECT))))
        return out

    def mix(self, rng: random.Random, count: int) -> list[Click]:
        """About 30 % approvers (approve only: an approver's reject would decide too),
        35 % viewers, 35 % unmapped users, shuffled."""
        out = []
        for _ in range(count):
            r = rng.random()
            if r < 0.30:
                out.append(self.make("approver", rng.choice(APPROVERS)[0], APPROVE))
            else:
                out.extend(self.refused(rng, 1))
        return out


def _headers(click: Click) -> dict[str, str]:
    return {"Content-Type": FORM, **sign(click.body, SIGNING_SECRET)}


def run_sequential(client: httpx.Client, clicks: list[Click], name: str) -> Variant:
    variant = Variant(name, 1)
    t_start = time.perf_counter()
    for click in clicks:
        headers = _headers(click)  # signed now, outside the timed window
        sent_at = time.monotonic()
        t0 = time.perf_counter()
        try:
            status = client.post(PATH, content=click.body, headers=headers).status_code
        except httpx.HTTPError as exc:
            variant.error_kinds[exc.__class__.__name__] += 1
            status = -1
        latency = time.perf_counter() - t0
        if status not in (200, -1):
            variant.error_kinds[f"HTTP {status}"] += 1
        variant.samples.append(Sample(click, status, latency, sent_at))
    variant.wall = time.perf_counter() - t_start
    return variant


async def _burst(url: str, clicks: list[Click], in_flight: int, request_timeout: float,
                 variant: Variant) -> None:
    limits = httpx.Limits(max_connections=in_flight, max_keepalive_connections=in_flight)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=request_timeout,
                                 trust_env=False) as client:
        # Open the connections first, so the burst does not time TCP connects.
        await asyncio.gather(*(client.get("/readyz") for _ in range(in_flight)))
        queue = list(reversed(clicks))
        results: list[Sample] = []

        async def worker() -> None:
            while queue:
                click = queue.pop()
                headers = _headers(click)
                sent_at = time.monotonic()
                t0 = time.perf_counter()
                try:
                    status = (await client.post(PATH, content=click.body,
                                                headers=headers)).status_code
                except httpx.HTTPError as exc:
                    variant.error_kinds[exc.__class__.__name__] += 1
                    status = -1
                latency = time.perf_counter() - t0
                if status not in (200, -1):
                    variant.error_kinds[f"HTTP {status}"] += 1
                results.append(Sample(click, status, latency, sent_at))

        t_start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(in_flight)))
        variant.wall = time.perf_counter() - t_start
        variant.samples.extend(results)


def run_burst(url: str, clicks: list[Click], in_flight: int, timeout: float,
              name: str) -> Variant:
    variant = Variant(name, in_flight)
    asyncio.run(_burst(url, clicks, in_flight, timeout, variant))
    return variant


async def _paced(url: str, clicks: list[Click], pace: float, start_at: float,
                 request_timeout: float, variant: Variant) -> None:
    """Open loop: click i is sent at start_at + i / pace whatever became of the others (as
    Slack delivers clicks: a stalled server does not slow the people clicking)."""
    limits = httpx.Limits(max_connections=len(clicks), max_keepalive_connections=20)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=request_timeout,
                                 trust_env=False) as client:
        await asyncio.gather(*(client.get("/readyz") for _ in range(10)))

        async def one(i: int, click: Click) -> Sample:
            await asyncio.sleep(max(0.0, start_at + i / pace - time.monotonic()))
            headers = _headers(click)
            sent_at = time.monotonic()
            t0 = time.perf_counter()
            try:
                status = (await client.post(PATH, content=click.body,
                                            headers=headers)).status_code
            except httpx.HTTPError as exc:
                variant.error_kinds[exc.__class__.__name__] += 1
                status = -1
            latency = time.perf_counter() - t0
            if status not in (200, -1):
                variant.error_kinds[f"HTTP {status}"] += 1
            return Sample(click, status, latency, sent_at)

        variant.samples.extend(await asyncio.gather(*(one(i, c) for i, c in enumerate(clicks))))
        first, last = variant.window()
        variant.wall = last - first


@dataclass
class Ticks:
    """The server's scheduler ticks (its interval job store reads), on our monotonic clock:
    every `interval` seconds after the scheduler started, as its server log says."""

    start: float | None
    interval: float

    @classmethod
    def from_log(cls, text: str, interval: float) -> Ticks:
        for line in text.splitlines():
            if "apscheduler.scheduler Scheduler started" in line:
                stamp = line[:23]  # "2026-11-28 03:37:09,359", local time
                epoch = (time.mktime(time.strptime(stamp[:19], "%Y-%m-%d %H:%M:%S"))
                         + int(stamp[20:23]) / 1000)
                return cls(epoch - (time.time() - time.monotonic()), interval)
        return cls(None, interval)

    def within(self, start: float, end: float) -> int | None:
        if self.start is None:
            return None
        first = max(1, math.ceil((start - self.start) / self.interval))
        last = math.floor((end - self.start) / self.interval)
        return max(0, last - first + 1)

    def next_after(self, t: float) -> float | None:
        if self.start is None:
            return None
        return self.start + max(1, math.floor((t - self.start) / self.interval) + 1) * \
            self.interval


# --------------------------------------------------------------------------------------------
# Setting up the target: an incident with an approval card in the fake Slack.


def _cli(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "api.cli", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _card(slack: FakeSlack) -> dict[str, Any] | None:
    """The approval card: a reply in the incident's thread with an `approval:` actions block."""
    for top in slack.history(CHANNEL_ID):
        for msg in slack.thread(CHANNEL_ID, top["ts"]):
            for block in msg.get("blocks") or []:
                if (block.get("type") == "actions"
                        and str(block.get("block_id", "")).startswith("approval:")):
                    return msg
    return None


def _wait(predicate: Any, what: str, server: ServerProcess, within: float) -> Any:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if server.proc is not None and server.proc.poll() is not None:
            raise HarnessError(f"server exited while waiting for {what}:\n"
                               f"{server.logs()[-3000:]}")
        time.sleep(0.05)
    raise HarnessError(f"timed out after {within:.0f}s waiting for {what}:\n"
                       f"{server.logs()[-3000:]}")


def set_up(server: ServerProcess, slack: FakeSlack, within: float) -> tuple[dict[str, Any], str]:
    """Send the alert, map the users meanwhile, wait for the card; (card message, action id)."""
    alert = (SCENARIO / "alerts.json").read_bytes()
    sent = httpx.post(f"{server.url}/webhooks/alertmanager", content=alert, timeout=30,
                      headers={"Authorization": f"Bearer {WEBHOOK_TOKEN}",
                               "Content-Type": "application/json"}, trust_env=False)
    if sent.status_code // 100 != 2:
        raise HarnessError(f"alert not accepted: {sent.status_code} {sent.text[:300]}")
    # In parallel (each CLI process spends seconds importing, then writes one short transaction).
    procs = [(name, _cli(["principal", "add", "--name", str(name), "--slack-user", user,
                          "--role", role], server.env()))
             for user, _, name, role in APPROVERS + VIEWERS]
    for name, proc in procs:
        _, err = proc.communicate(timeout=120)
        if proc.returncode != 0:
            raise HarnessError(f"principal add {name} failed: {err.strip()[-500:]}")
    card = _wait(lambda: _card(slack), "the approval card in the fake Slack channel", server,
                 within)
    values = {e.get("value") for b in card.get("blocks") or [] if b.get("type") == "actions"
              for e in b.get("elements") or [] if e.get("action_id") == APPROVE}
    if len(values) != 1:
        raise HarnessError(f"the card should hold one approve button, has {values}")
    return card, str(values.pop())


# --------------------------------------------------------------------------------------------
# The outcome: clicks acknowledged must also have been worked on, and decided once.


@dataclass
class Outcome:
    action_id: str
    status: str = ""
    required_approvals: int = 0
    approvals: list[tuple[str, str, str]] = field(default_factory=list)  # (by, decision, via)
    approve_events: int = 0
    refused_min: int = 0  # viewer/unmapped clicks answered 200: each must be audited
    refused_max: int = 0  # ... plus those not answered (which may or may not have arrived)
    refused_audited: int = 0
    first_approver: str | None = None
    settle_s: float = float("nan")  # last click -> every refusal audited
    longest_wait_s: float = 0.0  # the longest the admin API took to answer, meanwhile
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


class _Admin:
    """GETs on the admin API that wait out a stalled server (retrying until a deadline) and
    remember the longest wait for an answer."""

    def __init__(self, url: str, deadline: float) -> None:
        self.client = httpx.Client(base_url=url, timeout=20.0, trust_env=False,
                                   headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
        self.deadline = deadline
        self.longest_wait = 0.0

    def get(self, path: str, **params: Any) -> Any:
        t0 = time.monotonic()
        while True:
            try:
                answer = self.client.get(path, params=params)
                answer.raise_for_status()
                self.longest_wait = max(self.longest_wait, time.monotonic() - t0)
                return answer.json()
            except httpx.TransportError as exc:
                if time.monotonic() > self.deadline:
                    raise HarnessError(f"the server did not answer GET {path} for "
                                       f"{time.monotonic() - t0:.0f} s ({exc!r})") from exc
                print(f"server not answering GET {path} after {time.monotonic() - t0:.0f} s; "
                      "waiting", file=sys.stderr)

    def audit(self, **params: Any) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        cursor: int | None = None
        while True:
            data = self.get("/api/v1/audit", **params, limit=1000,
                            **({"cursor": cursor} if cursor else {}))
            events.extend(data["events"])
            cursor = data.get("next_cursor")
            if not cursor:
                return events


def check_outcome(server: ServerProcess, action_id: str, sent: list[Sample],
                  within: float) -> Outcome:
    out = Outcome(action_id)
    names = {u: n for u, _, n, _ in APPROVERS}
    refused = [s for s in sent if s.click.kind != "approver"]
    out.refused_min = sum(1 for s in refused if s.status == 200)
    out.refused_max = len(refused)
    approver_clicks = [s for s in sent if s.click.kind == "approver"]
    first = approver_clicks[0] if approver_clicks else None
    out.first_approver = names.get(first.click.user_id) if first else None
    t0 = time.monotonic()
    admin = _Admin(server.url, t0 + within)
    try:
        # The refusals are written after the ack, in the background: wait for all of them.
        while True:
            out.refused_audited = len(admin.audit(type="slack.refused"))
            if out.refused_audited >= out.refused_min:
                out.settle_s = time.monotonic() - t0
                break
            if time.monotonic() - t0 > within:
                break
            time.sleep(0.2)
        actions = admin.get("/api/v1/actions")["actions"]
        action = next((a for a in actions if a["id"] == action_id), None)
        if action is None:
            out.problems.append(f"action {action_id} not found in GET /api/v1/actions")
            return out
        out.status = action["status"]
        out.required_approvals = int(action.get("required_approvals") or 0)
        out.approvals = [(v.get("by"), v.get("decision"), v.get("via"))
                         for v in action.get("approvals") or []]
        out.approve_events = sum(1 for e in admin.audit(type="approval.approve")
                                 if e.get("action_id") == action_id)
    except HarnessError as exc:
        out.problems.append(str(exc))
        return out
    finally:
        admin.client.close()
        out.longest_wait_s = admin.longest_wait
    if not out.refused_min <= out.refused_audited <= out.refused_max:
        out.problems.append(f"{out.refused_audited} slack.refused audit events for "
                            f"{out.refused_min} refused clicks answered 200"
                            + (f" (+{out.refused_max - out.refused_min} not answered)"
                               if out.refused_max > out.refused_min else "")
                            + f" (checked {time.monotonic() - t0:.0f} s after the last "
                              "click)")
    if first is None:
        out.problems.append("no approver clicked")
    # The first approver's click decides; if it was not answered, it may not have arrived.
    # Either way there is exactly one approval, an approver's, via Slack.
    possible = {names[s.click.user_id] for s in approver_clicks[:1]} if first and \
        first.status == 200 else set(names.values())
    if len(out.approvals) != 1 or out.approvals[0][1:] != ("approve", "slack") or \
            out.approvals[0][0] not in possible:
        out.problems.append(f"approvals {out.approvals}, expected exactly one, by "
                            f"{' or '.join(sorted(possible))} via slack")
    if out.approve_events != 1:
        out.problems.append(f"{out.approve_events} approval.approve audit events for the "
                            "action, expected 1")
    if out.status in ("pending_approval", "rejected", "expired"):
        out.problems.append(f"action status {out.status} after an approver's click")
    return out


# --------------------------------------------------------------------------------------------
# The report.


@dataclass
class ServerLog:
    errors: int  # ERROR lines
    locked: list[str]  # "database is locked" warnings (their first line)

    @classmethod
    def read(cls, text: str) -> ServerLog:
        """Each "database is locked" reported, as the log record that reported it (a warning
        line, or the ERROR line heading a traceback that ends in it)."""
        lines = text.splitlines()
        locked: list[str] = []
        header: str | None = None
        for line in lines:
            if line[:2].isdigit() and (" WARNING " in line or " ERROR " in line):
                header = line
            if "database is locked" in line and header is not None and header not in locked:
                locked.append(header)
        return cls(sum(1 for line in lines if " ERROR " in line or line.startswith("ERROR:")),
                   [line[:200] for line in locked])


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def print_report(args: argparse.Namespace, variants: list[Variant], warm: Variant,
                 outcome: Outcome, setup_s: float, ready_at: float,
                 log: ServerLog) -> dict[str, Any]:
    first = warm.samples[0].latency * 1000 if warm.samples else float("nan")
    sweep_every = float(args.sweep_seconds or _default("sweep_seconds"))
    sweep = f"{sweep_every:g} s" + (" (--sweep-seconds)" if args.sweep_seconds else "")
    print()
    print(f"Slack interaction ack: signed block_actions clicks, POST {PATH} -> HTTP answer "
          "(metaops serve, SQLite, fake Slack Web API)")
    print(f"  set-up (server start, alert, principals, approval card): {setup_s:.1f} s; "
          f"scheduler sweep interval: {sweep}")
    print(f"  warm-up: {len(warm.samples)} refused clicks, {warm.errors} errors, the first "
          f"(Bolt's auth.test) answered in {first:.1f} ms, the slowest in "
          f"{max(s.latency for s in warm.samples) * 1000:.1f} ms")
    header = (f"{'variant':<22} {'clicks':>6} {'errors':>6} {'>3s':>4} {'clicks/s':>8} "
              f"{'p50':>7} {'p95':>7} {'p99':>7} {'max':>8}  (ms) {'ticks':>5}  mix")
    print(header)
    print("-" * len(header))
    figures: dict[str, Any] = {}
    for v in variants:
        kinds = Counter(s.click.kind for s in v.samples)
        rate = len(v.samples) / v.wall if v.wall > 0 else 0.0
        print(f"{v.name:<22} {len(v.samples):>6} {v.errors:>6} {v.over(3.0):>4} {rate:>8.0f} "
              f"{v.pct_ms(50):>7.1f} {v.pct_ms(95):>7.1f} {v.pct_ms(99):>7.1f} "
              f"{v.max_ms():>8.1f}       {'?' if v.ticks is None else v.ticks:>5}  "
              f"approver {kinds['approver']}, viewer "
              f"{kinds['viewer']}, unmapped {kinds['unmapped']}")
        figures[v.name.split()[0]] = {
            "clicks": len(v.samples), "errors": v.errors, "over_3s": v.over(3.0),
            "in_flight": v.in_flight, "clicks_per_s": round(rate, 1),
            "p50_ms": round(v.pct_ms(50), 2), "p95_ms": round(v.pct_ms(95), 2),
            "p99_ms": round(v.pct_ms(99), 2), "max_ms": round(v.max_ms(), 2),
            "scheduler_ticks": v.ticks, "p99_pass": v.pct_ms(99) < TARGET_P99_MS}
    print("  >3s: clicks not acknowledged within Slack's 3 s (Slack shows the user an error "
          "and retries); ticks: scheduler ticks inside the variant's timed window")
    if all(v.ticks == 0 for v in variants):
        print(f"  no tick of the server's scheduler (every {sweep_every:g} s) fell inside a timed "
              "window; a tick can stall the whole server: --across-tick aims clicks at one")
    for v in [warm, *variants]:
        if v.error_kinds:
            print(f"  {v.name} errors: {dict(v.error_kinds)}")
    slow = sorted((s for v in [warm, *variants] for s in v.samples
                   if s.status != 200 or s.latency > 1.0), key=lambda s: s.sent_at)
    if slow:
        print(f"  {len(slow)} clicks took over 1 s; sent at (s after the server was ready): "
              + ", ".join(f"{s.sent_at - ready_at:.1f}" for s in slow[:8])
              + (" ..." if len(slow) > 8 else ""))
    if log.locked:
        print(f"  server log: {len(log.locked)} records of 'database is locked':")
        for line in log.locked[:4]:
            print(f"    {line[:150]}")
        print("  (each is a stall of the whole server: APScheduler's SQLAlchemyJobStore works "
              "on the event loop thread over the sync engine, BEGIN IMMEDIATE with SQLite's "
              "busy_timeout of 30 s; when its tick meets an open aiosqlite write transaction, "
              "which needs that loop to finish, nothing is served until the timeout fires)")
    print()
    for v in variants:
        p99 = v.pct_ms(99)
        print(f"target p99 < {TARGET_P99_MS:.0f} ms  {v.name:<22} p99 = {p99:8.1f} ms  "
              f"{_verdict(p99 < TARGET_P99_MS and v.errors == 0)}")
    print()
    print("outcome (after the run, from the API):")
    approvals = [f"{by} via {via}" for by, _, via in outcome.approvals]
    print(f"  action {outcome.action_id}: status {outcome.status or '?'}, required approvals "
          f"{outcome.required_approvals}, approvals {approvals}, approval.approve events "
          f"{outcome.approve_events}; first approver to click: {outcome.first_approver} "
          "(later approver clicks find it decided)")
    settle = ("" if math.isnan(outcome.settle_s)
              else f", all recorded {outcome.settle_s:.1f} s after the last click")
    print(f"  slack.refused audit events {outcome.refused_audited} for {outcome.refused_min} "
          f"viewer/unmapped clicks answered 200{settle}")
    if outcome.longest_wait_s > 1.0:
        print(f"  meanwhile the server once took {outcome.longest_wait_s:.1f} s to answer a GET "
              "(admin API)")
    if log.errors:
        print(f"  server log: {log.errors} ERROR lines (--keep keeps it)")
    print(f"  {'OK: decided exactly once, every refusal recorded' if outcome.ok else 'FAILED'}")
    for problem in outcome.problems:
        print(f"  - {problem}")
    return {"clicks": args.clicks, "warmup": len(warm.samples), "warmup_errors": warm.errors,
            "cold_first_ack_ms": round(first, 2), "setup_s": round(setup_s, 1),
            "outcome_ok": outcome.ok, "action_status": outcome.status,
            "approvals": len(outcome.approvals), "refused_audited": outcome.refused_audited,
            "outcome_longest_wait_s": round(outcome.longest_wait_s, 1),
            "server_log_errors": log.errors, "database_locked_warnings": len(log.locked),
            "sweep_seconds": args.sweep_seconds, **figures}


# --------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clicks", type=int, default=200, help="timed clicks per variant (200)")
    p.add_argument("--concurrency", type=int, default=10,
                   help="clicks in flight in the burst variant (10)")
    p.add_argument("--warmup", type=int, default=10, help="untimed refused clicks first (10)")
    p.add_argument("--timeout", type=float, default=60.0,
                   help="per-request timeout, s (60: long enough to measure a stall, not "
                        "count it as an error)")
    p.add_argument("--setup-timeout", type=float, default=90.0,
                   help="bound on waiting for the approval card, s (90)")
    p.add_argument("--sweep-seconds", type=float, default=None,
                   help="diagnosis: METAOPS_SWEEP_SECONDS for the server (default: its own)")
    p.add_argument("--across-tick", action="store_true",
                   help="also send --clicks clicks open loop at --pace/s across the next tick "
                        "of the server's scheduler (waits for it: up to the sweep interval)")
    p.add_argument("--pace", type=float, default=50.0,
                   help="clicks per second for --across-tick (50)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--keep", action="store_true", help="keep the temp dir (server log, SQLite)")
    p.add_argument("--json", action="store_true", help="also print the figures as one JSON line")
    args = p.parse_args(argv)
    if args.clicks < 1 or args.concurrency < 1 or args.warmup < 1 or args.pace <= 0:
        p.error("--clicks, --concurrency and --warmup must be >= 1, --pace > 0")
    return args


def run_across_tick(server: ServerProcess, clicks: list[Click], args: argparse.Namespace,
                    interval: float) -> Variant | None:
    """--clicks clicks at --pace per second, open loop, the next scheduler tick a third of the
    way in."""
    window = len(clicks) / args.pace
    ticks = Ticks.from_log(server.logs(), interval)
    tick = ticks.next_after(time.monotonic() + window / 3 + 0.5)
    if tick is None or tick - time.monotonic() > 60:
        print("--across-tick: no scheduler tick within the next minute (see the server log); "
              "skipped", file=sys.stderr)
        return None
    start_at = tick - window / 3
    print(f"--across-tick: waiting {start_at - time.monotonic():.1f} s for the next scheduler "
          "tick", file=sys.stderr)
    variant = Variant(f"across tick ({args.pace:g}/s)", 0)
    asyncio.run(_paced(server.url, clicks, args.pace, start_at, args.timeout, variant))
    return variant


def _default(name: str) -> Any:
    from core.settings import Settings

    return Settings.model_fields[name].default


def run(args: argparse.Namespace) -> int:
    rng = random.Random(args.seed)
    tmp = Path(tempfile.mkdtemp(prefix="metaops-bench-slack-"))
    server: ServerProcess | None = None
    extra = {"METAOPS_SWEEP_SECONDS": str(args.sweep_seconds)} if args.sweep_seconds else {}
    try:
        with serve_slack() as slack:
            for user, name, *_ in APPROVERS[1:] + VIEWERS + UNMAPPED:
                slack.add_user(user, name)
            t0 = time.monotonic()
            server = ServerProcess(
                database_url=f"sqlite+aiosqlite:///{tmp / 'metaops.db'}", data_dir=tmp / "data",
                extra_env={
                    "METAOPS_LOGS_PATH": json.dumps([str(SCENARIO / "logs.jsonl")]),
                    "METAOPS_SLACK_BOT_TOKEN": BOT_TOKEN,
                    "METAOPS_SLACK_SIGNING_SECRET": SIGNING_SECRET,
                    "METAOPS_SLACK_CHANNEL": CHANNEL_ID,
                    "METAOPS_SLACK_API_URL": slack.api_url,
                    "METAOPS_SLACK_RETRY_MAX_SECONDS": "1",
                    # ServerProcess polls the work queue as fast as tests want; run as deployed.
                    "METAOPS_WORKER_POLL_SECONDS": str(_default("worker_poll_seconds")),
                    "METAOPS_WORKER_LEASE_SECONDS": str(_default("worker_lease_seconds")),
                    "PYTHONUNBUFFERED": "1",
                    **extra,
                })
            try:
                server.start(timeout=60)
            except RuntimeError as exc:
                raise HarnessError(str(exc)) from exc
            ready_at = time.monotonic()
            print(f"metaops server pid {server.proc.pid if server.proc else '?'} on "
                  f"{server.url} (ready after {ready_at - t0:.1f} s); fake Slack on "
                  f"{slack.url}", file=sys.stderr)
            card, action_id = set_up(server, slack, args.setup_timeout)
            setup_s = time.monotonic() - t0
            print(f"approval card for action {action_id} after {setup_s:.1f} s", file=sys.stderr)

            factory = ClickFactory(slack, card["ts"])
            warm_clicks = factory.refused(rng, args.warmup)
            seq_clicks = factory.mix(rng, args.clicks)
            burst_clicks = factory.mix(rng, args.clicks)
            if not any(c.kind == "approver" for c in seq_clicks):  # tiny --clicks
                seq_clicks[0] = factory.make("approver", APPROVERS[0][0], APPROVE)

            with httpx.Client(base_url=server.url, timeout=args.timeout,
                              trust_env=False) as client:
                warm = run_sequential(client, warm_clicks, "warm-up")
                sequential = run_sequential(client, seq_clicks, "sequential (1 conn)")
            burst = run_burst(server.url, burst_clicks, args.concurrency, args.timeout,
                              f"burst ({args.concurrency} in flight)")
            variants = [sequential, burst]
            interval = float(args.sweep_seconds or _default("sweep_seconds"))
            if args.across_tick:
                paced = run_across_tick(server, factory.mix(rng, args.clicks), args, interval)
                if paced is not None:
                    variants.append(paced)
            print(f"clicks done {time.monotonic() - t0:.1f} s after start; checking the "
                  "outcome", file=sys.stderr)
            sent = warm.samples + [s for v in variants for s in v.samples]
            outcome = check_outcome(server, action_id, sent, within=180.0)
            server.stop()
            text = server.logs()
            log = ServerLog.read(text)
            ticks = Ticks.from_log(text, interval)
            for v in variants:
                v.ticks = ticks.within(*v.window())
    finally:
        if server is not None:
            server.stop()
        if args.keep:
            print(f"kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    out = print_report(args, variants, warm, outcome, setup_s, ready_at, log)
    if args.json:
        print(json.dumps(out, sort_keys=True))
    errors = sum(v.errors for v in [warm, *variants])
    return EXIT_OK if errors == 0 and outcome.ok else EXIT_WRONG


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return run(args)
    except KeyboardInterrupt:
        return 130
    except HarnessError as exc:
        print(f"harness failure: {exc}", file=sys.stderr)
        return EXIT_HARNESS
    except Exception:
        import traceback

        traceback.print_exc()
        print("harness failure (see the traceback above)", file=sys.stderr)
        return EXIT_HARNESS


if __name__ == "__main__":
    sys.exit(main())
