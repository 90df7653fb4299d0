"""Audit trail: concurrent appends keep one chain, edits are refused, tampering is found."""

from __future__ import annotations

import asyncio
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.database import Database
from guardrails import audit
from tests.conftest import Harness
from tests.support import ROOT, SCENARIOS, load_json, raw_execute


def _cli(args: list[str], db_url: str, tmp: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("METAOPS_")}
    env.update({"METAOPS_DATABASE_URL": db_url, "METAOPS_DATA_DIR": str(tmp)})
    return subprocess.run([sys.executable, "-m", "api.cli", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60, check=False)


async def _append_many(db: Database, n: int, label: str) -> None:
    async def one(i: int) -> None:
        async with db.write() as session:
            await audit.append(session, type="test.concurrent",
                               actor=audit.Actor("agent", f"{label}-{i}", "api"),
                               payload={"i": i, "label": label})

    await asyncio.gather(*(one(i) for i in range(n)))


async def test_200_concurrent_appends_from_two_engines_leave_one_unbroken_chain(
    db: Database, db_url: str
) -> None:
    # Two engines on one database stand in for two replicas of the service.
    other = Database(db_url)
    try:
        await asyncio.gather(_append_many(db, 100, "a"), _append_many(other, 100, "b"))
    finally:
        await other.dispose()
    async with db.read() as session:
        report = await audit.verify_database(session)
        events = [e async for e in audit.iter_events(session)]
    assert report.ok, report
    assert report.count == 200
    assert [e["seq"] for e in events] == list(range(1, 201))
    assert len({e["prev_hash"] for e in events}) == 200  # no fork: every prev_hash used once
    assert sorted(e["payload"]["i"] for e in events if e["payload"]["label"] == "a") == list(
        range(100))


async def test_database_refuses_update_and_delete(db: Database, db_url: str) -> None:
    async with db.write() as session:
        await audit.append(session, type="test.one", actor=audit.SYSTEM, payload={"x": 1})
    for sql in ("UPDATE audit_events SET type = 'forged'", "DELETE FROM audit_events"):
        with pytest.raises(Exception, match="append-only"):
            raw_execute(db_url, sql)
    rows = raw_execute(db_url, "SELECT type FROM audit_events")
    assert rows == [("test.one",)]


def _drop_triggers(db_url: str) -> None:
    if db_url.startswith("sqlite"):
        raw_execute(db_url, "DROP TRIGGER audit_events_no_update")
    else:
        raw_execute(db_url, "DROP TRIGGER audit_events_no_update_delete ON audit_events")


async def test_row_altered_behind_the_triggers_back_is_named_by_cli_verify(
    db: Database, db_url: str, tmp_path: Path
) -> None:
    async with db.write() as session:
        for i in range(5):
            await audit.append(session, type="test.step", actor=audit.SYSTEM, payload={"i": i})
    ok = _cli(["audit", "verify"], db_url, tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert "OK: 5 events" in ok.stdout
    _drop_triggers(db_url)
    raw_execute(db_url, "UPDATE audit_events SET outcome = 'forged' WHERE seq = 3")
    bad = _cli(["audit", "verify"], db_url, tmp_path)
    assert bad.returncode == 4
    assert "seq 3" in bad.stderr and "hash does not match" in bad.stderr
    assert "Traceback" not in bad.stderr


async def test_export_verifies_offline_and_any_flipped_byte_is_caught(
    harness: Harness, tmp_path: Path, db_url: str
) -> None:
    body = load_json(SCENARIOS / "kv-cache-saturation" / "alerts.json")
    assert (await harness.post_webhook("alertmanager", body)).status_code == 202
    assert (await harness.post_webhook("alertmanager", body)).status_code == 202
    response = await harness.get("/api/v1/audit/export")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/x-ndjson")
    data = response.content
    export = tmp_path / "audit.ndjson"
    export.write_bytes(data)
    good = _cli(["audit", "verify", "--file", str(export)], "sqlite:////nonexistent/x.db",
                tmp_path)
    assert good.returncode == 0, good.stderr
    lines = data.decode().splitlines()
    assert len(lines) >= 3

    # Flip one bit at every byte position: the offline verifier must reject each copy.
    undetected = []
    for pos in range(len(data)):
        flipped = bytearray(data)
        flipped[pos] ^= 0x01
        with io.StringIO(bytes(flipped).decode("utf-8", "replace")) as handle:
            if audit.verify_file(handle).ok:
                undetected.append(pos)
    assert undetected == []

    tampered = tmp_path / "tampered.ndjson"
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0x01
    tampered.write_bytes(bytes(flipped))
    bad = _cli(["audit", "verify", "--file", str(tampered)], "sqlite:////nonexistent/x.db",
               tmp_path)
    assert bad.returncode == 4
    assert "BROKEN at seq" in bad.stderr
