"""Crash recovery: SIGKILL the server with work unfinished; a restart completes it exactly once.

Acceptance: "SIGKILL of the server right after 20 alerts were accepted (202) -> after restart all
20 are stored and their work items complete; none is processed twice."

Everything is observed from outside the process: HTTP for what clients see, raw SQL for what is
durably in the database at the moment of the kill and after recovery.
"""

from __future__ import annotations

import asyncio
import copy
import json
import socket
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from tests.support import (
    ADMIN_TOKEN,
    BACKEND,
    SCENARIOS,
    WEBHOOK_TOKEN,
    ServerProcess,
    load_json,
    raw_execute,
)

pytestmark = pytest.mark.slow

# The graph pauses for approval (provider-outage proposes a failover) or finishes.
SETTLED = {"waiting_approval", "done"}

N_ALERTS = 20
RECOVERY_TIMEOUT = 30.0
BLOCK_MESSAGE = "test: finishing blocked"
ServerFactory = Callable[..., ServerProcess]


# --- helpers -------------------------------------------------------------------------------


def _alert(i: int) -> dict[str, Any]:
    """The provider-outage delivery, made into its own group and fingerprint (one incident)."""
    body = copy.deepcopy(load_json(SCENARIOS / "provider-outage" / "alerts.json"))
    service = f"chat-api-{i:02d}"
    body["groupKey"] = f'{{}}:{{alertname="LLMProviderErrorRateHigh", service="{service}"}}'
    body["groupLabels"]["service"] = service
    body["commonLabels"]["service"] = service
    alert = body["alerts"][0]
    alert["fingerprint"] = f"{0x8D2B326380FA0000 + i:016x}"
    alert["labels"]["service"] = service
    alert["labels"]["shard"] = str(i)
    return body


async def _post_all(url: str, bodies: list[dict[str, Any]]) -> list[httpx.Response]:
    headers = {"Authorization": f"Bearer {WEBHOOK_TOKEN}"}
    limits = httpx.Limits(max_connections=len(bodies))
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30.0,
                                 limits=limits) as client:
        return list(await asyncio.gather(
            *[client.post("/webhooks/alertmanager", json=b) for b in bodies]))


def _payload(value: Any) -> dict[str, Any]:
    """JSON column as read raw: text on SQLite, already decoded on PostgreSQL."""
    return json.loads(value) if isinstance(value, str) else dict(value)


def _ts(value: Any) -> datetime | None:
    """Timestamp column as read raw: naive UTC text on SQLite, aware datetime on PostgreSQL."""
    if value is None:
        return None
    parsed = datetime.fromisoformat(value) if isinstance(value, str) else value
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _items(db_url: str) -> dict[int, dict[str, Any]]:
    rows = raw_execute(db_url, "SELECT id, incident_id, status, claimed_by, attempts, "
                               "lease_until, finished_at FROM work_items ORDER BY id")
    keys = ("id", "incident_id", "status", "claimed_by", "attempts", "lease_until",
            "finished_at")
    return {r[0]: dict(zip(keys, r, strict=True)) for r in rows}


def _ready_events(db_url: str) -> list[tuple[int, dict[str, Any]]]:
    rows = raw_execute(db_url, "SELECT incident_id, payload FROM audit_events "
                               "WHERE type = 'investigation.started' ORDER BY seq")
    return [(int(r[0]), _payload(r[1])) for r in rows]


def _count(db_url: str, table: str) -> int:
    return int(raw_execute(db_url, f"SELECT count(*) FROM {table}")[0][0])  # noqa: S608


def _node_of(server: ServerProcess) -> str:
    """The prefix of every claim token a server's worker pool writes (host:pid:)."""
    assert server.proc is not None
    return f"{socket.gethostname()}:{server.proc.pid}:"


def _wait_all_done(db_url: str, expected: int, server: ServerProcess) -> dict[int, dict[str, Any]]:
    deadline = time.monotonic() + RECOVERY_TIMEOUT
    while True:
        items = _items(db_url)
        statuses = [i["status"] for i in items.values()]
        settled = {r[0] for r in raw_execute(db_url, "SELECT investigation FROM incidents")}
        if len(items) == expected and statuses.count("done") == expected and settled <= SETTLED:
            return items
        assert "failed" not in statuses, (items, server.logs()[-3000:])
        assert time.monotonic() < deadline, (
            f"work not recovered within {RECOVERY_TIMEOUT}s: {items}\n{server.logs()[-3000:]}")
        time.sleep(0.1)


def _assert_audit_chain_ok(server: ServerProcess) -> None:
    with server.client(ADMIN_TOKEN) as c:
        report = c.get("/api/v1/audit/verify").json()
    assert report["ok"] is True, report
    assert report["first_bad_seq"] is None
    assert report["count"] == report["head_seq"] > 0


def _block_finishing(db_url: str) -> None:
    """Fault injection behind the app's back: a claimed item can be neither completed nor
    released, so the worker that claimed it stays mid-item (its effects roll back each try)."""
    if BACKEND == "sqlite":
        raw_execute(db_url, f"""
            CREATE TRIGGER test_block_finish BEFORE UPDATE OF status ON work_items
            FOR EACH ROW WHEN OLD.status = 'running' AND NEW.status IN ('done', 'pending')
            BEGIN SELECT RAISE(ABORT, '{BLOCK_MESSAGE}'); END""")
        return
    raw_execute(db_url, f"""
        CREATE FUNCTION test_block_finish() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION '{BLOCK_MESSAGE}'; END $$""")
    raw_execute(db_url, """
        CREATE TRIGGER test_block_finish BEFORE UPDATE ON work_items FOR EACH ROW
        WHEN (OLD.status = 'running' AND NEW.status IN ('done', 'pending'))
        EXECUTE FUNCTION test_block_finish()""")


def _unblock_finishing(db_url: str) -> None:
    if BACKEND == "sqlite":
        raw_execute(db_url, "DROP TRIGGER test_block_finish")
        return
    raw_execute(db_url, "DROP TRIGGER test_block_finish ON work_items")
    raw_execute(db_url, "DROP FUNCTION test_block_finish()")


# --- tests ---------------------------------------------------------------------------------


def test_sigkill_right_after_20_accepted_alerts_recovers_every_item_exactly_once(
    server_factory: ServerFactory, db_url: str
) -> None:
    # One worker, so the 20 investigations queue up behind each other while the 202s go out.
    first = server_factory(METAOPS_WORKER_CONCURRENCY="1", METAOPS_WORKER_POLL_SECONDS="5")
    first.start()
    bodies = [_alert(i) for i in range(N_ALERTS)]
    responses = asyncio.run(_post_all(first.url, bodies))
    first.kill()  # SIGKILL straight after the last 202: no shutdown hooks, no draining

    assert [r.status_code for r in responses] == [202] * N_ALERTS, [r.text for r in responses]
    accepted = [r.json()["incident_ids"] for r in responses]
    assert all(len(ids) == 1 for ids in accepted), accepted
    accepted_ids = {ids[0] for ids in accepted}
    assert len(accepted_ids) == N_ALERTS

    # What survived the kill: every accepted alert is durable (202 only after commit) ...
    at_kill = _items(db_url)
    assert _count(db_url, "alerts") == N_ALERTS
    assert _count(db_url, "incidents") == N_ALERTS
    assert len(at_kill) == N_ALERTS
    assert {i["incident_id"] for i in at_kill.values()} == accepted_ids
    # ... and the kill really interrupted the work, or this test would prove nothing.
    done_at_kill = {k: v for k, v in at_kill.items() if v["status"] == "done"}
    unfinished = N_ALERTS - len(done_at_kill)
    assert unfinished > 0, f"all work finished before the kill; nothing to recover: {at_kill}"
    assert {v["status"] for v in at_kill.values()} <= {"pending", "running", "done"}, at_kill
    # Effects commit with the done flip and only with it.
    ready_at_kill = _ready_events(db_url)
    assert sorted(e[1]["work_item"] for e in ready_at_kill) == sorted(done_at_kill)

    second = server_factory()
    second.start()
    items = _wait_all_done(db_url, N_ALERTS, second)

    assert _count(db_url, "alerts") == N_ALERTS
    assert _count(db_url, "incidents") == N_ALERTS
    assert len(items) == N_ALERTS
    investigation = dict(raw_execute(db_url, "SELECT id, investigation FROM incidents"))
    assert set(investigation) == set(accepted_ids)
    assert set(investigation.values()) <= SETTLED
    # Items finished before the kill were not run again; the rest were run by the new process.
    for item_id, before in done_at_kill.items():
        assert items[item_id] == before, (item_id, before, items[item_id])
    recovered = [i for k, i in items.items() if k not in done_at_kill]
    assert len(recovered) == unfinished
    assert all(i["claimed_by"].startswith(_node_of(second)) for i in recovered), recovered

    # None processed twice: exactly one investigation.started per incident, from its own item.
    events = _ready_events(db_url)
    assert len(events) == N_ALERTS, events
    assert {incident for incident, _ in events} == accepted_ids
    by_incident = {v["incident_id"]: v for v in items.values()}
    for incident_id, payload in events:
        item = by_incident[incident_id]
        assert payload == {"work_item": item["id"], "attempt": item["attempts"]}
    _assert_audit_chain_ok(second)

    with second.client(ADMIN_TOKEN) as c:
        listed = c.get("/api/v1/incidents", params={"limit": 100}).json()["incidents"]
    assert {i["id"] for i in listed} == accepted_ids
    assert {i["investigation"] for i in listed} <= SETTLED
    assert all(i["alert_count"] == 1 and i["status"] == "open" for i in listed)
    assert sorted(s for i in listed for s in i["services"]) == sorted(
        f"chat-api-{i:02d}" for i in range(N_ALERTS))


def test_sigkill_while_an_item_is_claimed_and_running_completes_it_once_after_restart(
    server_factory: ServerFactory, db_url: str
) -> None:
    # The dead process's lease: on SQLite far in the future (start-up must reclaim it anyway,
    # one process owns the file); on PostgreSQL longer than the restart, so the new process has
    # to respect it first and take over only once it expires.
    lease = "3600" if BACKEND == "sqlite" else "8"
    _block_finishing(db_url)
    first = server_factory(METAOPS_WORKER_LEASE_SECONDS=lease)
    first.start()
    with httpx.Client(base_url=first.url, timeout=30.0,
                      headers={"Authorization": f"Bearer {WEBHOOK_TOKEN}"}) as c:
        r = c.post("/webhooks/alertmanager", json=_alert(0))
    assert r.status_code == 202, r.text
    (incident_id,) = r.json()["incident_ids"]

    # Wait until the worker claimed the item, ran it, and was refused completion and release.
    deadline = time.monotonic() + 10.0
    while first.logs().count(BLOCK_MESSAGE) < 2:
        assert time.monotonic() < deadline, first.logs()[-3000:]
        time.sleep(0.05)
    first.kill()
    _unblock_finishing(db_url)

    (at_kill,) = _items(db_url).values()
    assert at_kill["incident_id"] == incident_id
    assert at_kill["status"] == "running", at_kill
    assert at_kill["claimed_by"].startswith(_node_of(first)), at_kill
    assert at_kill["attempts"] >= 1
    lease_until = _ts(at_kill["lease_until"])
    assert lease_until is not None and lease_until > datetime.now(UTC), at_kill
    # The killed attempt's effects never committed.
    assert _ready_events(db_url) == []
    assert raw_execute(db_url, "SELECT investigation FROM incidents") == [("queued",)]

    second = server_factory()
    second.start()
    if BACKEND != "sqlite":
        # Another replica may still own it: nobody takes the item before the lease runs out.
        (during,) = _items(db_url).values()
        if datetime.now(UTC) < lease_until:  # read while the lease was certainly still live
            assert during["status"] == "running", during
            assert during["claimed_by"] == at_kill["claimed_by"], during
    (done,) = _wait_all_done(db_url, 1, second).values()

    assert done["claimed_by"].startswith(_node_of(second)), done
    assert done["attempts"] == at_kill["attempts"] + 1, (at_kill, done)
    assert raw_execute(db_url, "SELECT investigation FROM incidents")[0][0] in SETTLED
    assert _ready_events(db_url) == [
        (incident_id, {"work_item": at_kill["id"], "attempt": done["attempts"]})]
    # Stays done: no late second run by a lingering claim.
    time.sleep(1.0)
    assert _items(db_url)[at_kill["id"]] == done
    assert len(_ready_events(db_url)) == 1
    _assert_audit_chain_ok(second)
    with second.client(ADMIN_TOKEN) as c:
        detail = c.get(f"/api/v1/incidents/{incident_id}").json()
    assert detail["investigation"] in SETTLED
    assert [e["type"] for e in detail["timeline"]].count("investigation.started") == 1
