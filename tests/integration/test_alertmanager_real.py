"""End to end with the real Prometheus Alertmanager: its webhook deliveries, re-sends and resolve.

Alertmanager runs as a child process on loopback (clustering off) with tiny group/repeat timings,
routing everything to metaops' /webhooks/alertmanager with the webhook token as Bearer.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support import ADMIN_TOKEN, WEBHOOK_TOKEN, ServerProcess, free_port

pytestmark = pytest.mark.slow

AM_BINARY = os.environ.get("METAOPS_TEST_ALERTMANAGER", "/usr/bin/prometheus-alertmanager")
WAIT_SECONDS = 30.0
LABELS = {"alertname": "TTFTP99High", "service": "chat-api", "severity": "page"}
SUMMARY = "TTFT p99 above 2s on chat-api"


def _iso(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _tail(path: Path | None, limit: int = 4000) -> str:
    if path is None or not path.exists():
        return "<no log>"
    return path.read_text(errors="replace")[-limit:]


@dataclass
class AlertmanagerProcess:
    """A real Alertmanager child process; its stdout/stderr go to `log_path`."""

    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def logs(self) -> str:
        return _tail(self.log_path)

    def push(self, alerts: list[dict[str, Any]]) -> None:
        r = httpx.post(f"{self.url}/api/v2/alerts", json=alerts, timeout=10.0, trust_env=False)
        assert r.status_code == 200, f"{r.status_code} {r.text}\n{self.logs()}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def _am_config(webhook_url: str, token: str) -> dict[str, Any]:
    # JSON is valid YAML, so no YAML library is needed. repeat_interval >= group_interval.
    return {
        "route": {
            "receiver": "metaops",
            "group_by": ["alertname", "service"],
            "group_wait": "0s",
            "group_interval": "1s",
            "repeat_interval": "2s",
        },
        "receivers": [{
            "name": "metaops",
            "webhook_configs": [{
                "url": webhook_url,
                "send_resolved": True,
                "http_config": {"authorization": {"type": "Bearer", "credentials": token}},
            }],
        }],
    }


@pytest.fixture
def alertmanager_factory(
    tmp_path: Path,
) -> Iterator[Callable[[str, str], AlertmanagerProcess]]:
    """Starts real Alertmanagers sending to the given webhook URL; stops them afterwards."""
    if not (os.path.isfile(AM_BINARY) and os.access(AM_BINARY, os.X_OK)):
        found = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
        pytest.fail(
            f"Alertmanager binary {AM_BINARY} not found (PATH has: {found}); install the Debian "
            "package prometheus-alertmanager (scripts/ensure-services.sh does) or set "
            "METAOPS_TEST_ALERTMANAGER", pytrace=False,
        )
    started: list[AlertmanagerProcess] = []

    def start(webhook_url: str, token: str) -> AlertmanagerProcess:
        n = len(started)
        workdir = tmp_path / f"alertmanager{n}"
        (workdir / "data").mkdir(parents=True)
        config = workdir / "alertmanager.yml"
        config.write_text(json.dumps(_am_config(webhook_url, token), indent=2), encoding="utf-8")
        log_path = workdir / "alertmanager.log"
        port = free_port()
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                [AM_BINARY, f"--config.file={config}", f"--storage.path={workdir / 'data'}",
                 f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address=",
                 "--log.level=debug"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )
        am = AlertmanagerProcess(proc, port, log_path)
        started.append(am)
        deadline = time.monotonic() + 15.0
        while True:
            if proc.poll() is not None:
                pytest.fail(f"alertmanager exited with {proc.returncode}:\n{am.logs()}")
            try:
                if httpx.get(f"{am.url}/-/ready", timeout=1.0, trust_env=False).status_code == 200:
                    return am
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"alertmanager not ready after 15s:\n{am.logs()}")
            time.sleep(0.1)

    yield start
    for am in started:
        am.stop()


def _accepted(server: ServerProcess) -> int:
    """metaops_webhook_requests_total{source="alertmanager",status="202"}."""
    text = httpx.get(f"{server.url}/metrics", timeout=5.0, trust_env=False).text
    for family in text_string_to_metric_families(text):
        if family.name != "metaops_webhook_requests":
            continue
        for sample in family.samples:
            if (sample.name.endswith("_total") and sample.labels.get("source") == "alertmanager"
                    and sample.labels.get("status") == "202"):
                return int(sample.value)
    return 0


def _wait_for(
    what: str, check: Callable[[], Any], diag: Callable[[], str], timeout: float = WAIT_SECONDS
) -> Any:
    """Polls `check` until it returns something truthy; fails with both processes' logs."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}\n{diag()}")
        time.sleep(0.2)


# Alertmanager's behaviour, not the database's: ingest runs on PostgreSQL in test_ingest.
@pytest.mark.sqlite_pass
def test_real_alertmanager_resends_update_one_alert_and_resolve_closes_the_incident(
    server_factory: Callable[..., ServerProcess],
    alertmanager_factory: Callable[[str, str], AlertmanagerProcess],
) -> None:
    server = server_factory()
    server.start()
    am = alertmanager_factory(f"{server.url}/webhooks/alertmanager", WEBHOOK_TOKEN)

    def diag() -> str:
        return (f"--- alertmanager log ---\n{am.logs()}\n"
                f"--- metaops log ---\n{server.logs()[-4000:]}")

    # Prometheus-like: an explicit startsAt, no endsAt (Alertmanager applies resolve_timeout).
    starts_at = datetime.now(UTC) - timedelta(minutes=1)
    alert = {"labels": LABELS, "annotations": {"summary": SUMMARY}, "startsAt": _iso(starts_at)}
    am.push([alert])

    # The first notification and at least one repeat_interval re-send of the same group.
    _wait_for("2 accepted deliveries from alertmanager", lambda: _accepted(server) >= 2, diag)

    with server.client(ADMIN_TOKEN) as api:
        incidents = api.get("/api/v1/incidents").json()["incidents"]
        assert len(incidents) == 1, f"{incidents}\n{diag()}"
        incident_id = incidents[0]["id"]
        assert incidents[0]["alert_count"] == 1, f"{incidents}\n{diag()}"
        assert incidents[0]["source"] == "alertmanager"
        detail = api.get(f"/api/v1/incidents/{incident_id}").json()
        assert detail["status"] == "open", f"{detail}\n{diag()}"
        assert len(detail["alerts"]) == 1, f"{detail['alerts']}\n{diag()}"
        (row,) = detail["alerts"]
        assert row["labels"] == LABELS, f"{row}\n{diag()}"
        assert row["annotations"]["summary"] == SUMMARY
        assert row["status"] == "firing" and row["name"] == "TTFTP99High"
        assert row["service"] == "chat-api" and row["severity"] == "page"
        assert row["ends_at"] is None, row  # Go zero time 0001-01-01 means "no end"
        assert row["times_seen"] >= 2, f"re-send did not update the alert: {row}\n{diag()}"
        fingerprint = row["fingerprint"]
        assert len(fingerprint) == 16, row

        events = api.get("/api/v1/audit", params={"type": "alert.received"}).json()["events"]
        by_webhook = [e for e in events
                      if e["actor"]["id"] == "bootstrap-webhook" and e["actor"]["via"] == "webhook"]
        assert len(by_webhook) >= 2, f"{events}\n{diag()}"

        # Resolve: the same alert again (same startsAt) with an endsAt in the past.
        before_resolve = _accepted(server)
        ends_at = datetime.now(UTC) - timedelta(seconds=1)
        am.push([{**alert, "endsAt": _iso(ends_at)}])

        def resolved() -> dict[str, Any] | None:
            body: dict[str, Any] = api.get(f"/api/v1/incidents/{incident_id}").json()
            return body if body["status"] == "resolved" else None

        detail = _wait_for(f"incident {incident_id} resolved", resolved, diag)
        assert _accepted(server) > before_resolve
        assert len(detail["alerts"]) == 1, f"{detail['alerts']}\n{diag()}"
        (row,) = detail["alerts"]
        assert row["fingerprint"] == fingerprint and row["status"] == "resolved", row
        assert row["ends_at"] is not None, row
        assert detail["resolved_at"] is not None, detail
        incidents = api.get("/api/v1/incidents").json()["incidents"]
        assert [i["id"] for i in incidents] == [incident_id], f"{incidents}\n{diag()}"
        assert incidents[0]["alert_count"] == 1
