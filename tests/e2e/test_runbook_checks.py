"""A step's `wait` + failing `verify` survives a restart, then escalates or proposes the inverse."""

from __future__ import annotations

import json
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_cli import cli
from tests.support import (
    ADMIN_TOKEN,
    SCENARIOS,
    WEBHOOK_TOKEN,
    ServerProcess,
    load_json,
    wait_until,
)

pytestmark = pytest.mark.slow
RUNBOOK = """
name: checked-flag
description: turn the refund tool off, then check that refunds stopped failing
match: {alertname: RefundErrors}
steps:
  - id: refund_off
    tool: gitops.set_flag
    args: {flag: refund-tool, variant: "off"}
    wait: 2s
    verify:
      logs: {contains: "refund failed", levels: [ERROR], window: 30m}
      op: "<"
      threshold: 1
    on_fail: ON_FAIL
escalation: {to: ml-platform, message: refunds still failing after the flag change}
"""


def _setup(tmp_path: Path, on_fail: str) -> dict[str, str]:
    books = tmp_path / "runbooks"
    books.mkdir()
    (books / "checked-flag.yaml").write_text(RUNBOOK.replace("ON_FAIL", on_fail))
    now = datetime.now(UTC)
    logs = tmp_path / "app.jsonl"
    # The errors go on after the change: the check must fail.
    logs.write_text("".join(json.dumps({
        "timestamp": now.isoformat().replace("+00:00", "Z"), "level": "ERROR",
        "service": "chat-api", "message": f"refund failed for order {i}"}) + "\n"
        for i in range(3)))
    body = load_json(SCENARIOS / "provider-outage" / "alerts.json")
    alert = body["alerts"][0]
    alert["labels"] = {"alertname": "RefundErrors", "service": "chat-api",
                       "severity": "critical"}
    alert["fingerprint"] = "refund0000000001"
    alert["startsAt"] = now.isoformat().replace("+00:00", "Z")
    body["groupLabels"] = body["commonLabels"] = alert["labels"]
    (tmp_path / "alert.json").write_text(json.dumps(body))
    return {"METAOPS_RUNBOOKS_DIR": str(books), "METAOPS_LOGS_PATH": json.dumps([str(logs)])}


def _flag_variant(server: ServerProcess) -> str:
    text = subprocess.run(["git", "-C", str(server.data_dir / "gitops"), "show",
                           "HEAD:flags/flags.json"], check=True, capture_output=True, text=True,
                          timeout=30).stdout
    return str(json.loads(text)["flags"]["refund-tool"]["defaultVariant"])


def _approve_and_restart_during_thewait_until(server_factory: Any, tmp_path: Path,
                                         on_fail: str) -> tuple[ServerProcess, dict[str, Any]]:
    server: ServerProcess = server_factory(**_setup(tmp_path, on_fail))
    server.start()
    sent = cli(["alert", "send", str(tmp_path / "alert.json")], METAOPS_TOKEN=WEBHOOK_TOKEN,
               METAOPS_URL=server.url)
    assert sent.returncode == 0, sent.stderr
    with server.client(ADMIN_TOKEN) as admin:
        def pending() -> list[dict[str, Any]]:
            return list(admin.get("/api/v1/actions",
                                  params={"status": "pending_approval"}).json()["actions"])

        (action,) = wait_until(pending, "the flag proposal", server)
        assert admin.post(f"/api/v1/actions/{action['id']}/approve").status_code == 200
        wait_until(lambda: admin.get(f"/api/v1/actions/{action['id']}").json()["status"]
              == "succeeded", "the change", server)
    assert _flag_variant(server) == "off"
    server.kill()  # inside the 2 s wait: the check lives in the job store, not in memory
    time.sleep(2.5)
    server.start()
    return server, action


def _timeline(server: ServerProcess, incident_id: int) -> list[dict[str, Any]]:
    with server.client(ADMIN_TOKEN) as admin:
        return list(admin.get(f"/api/v1/incidents/{incident_id}").json()["timeline"])


def test_failed_check_after_a_restart_escalates(server_factory: Any, tmp_path: Path) -> None:
    server, action = _approve_and_restart_during_thewait_until(server_factory, tmp_path, "escalate")

    def escalated() -> list[dict[str, Any]]:
        events = _timeline(server, action["incident_id"])
        return events if any(e["type"] == "incident.escalated" for e in events) else []

    events = wait_until(escalated, "the escalation", server)
    (failed,) = [e for e in events if e["type"] == "verify.failed"]
    assert "= 3, want < 1" in failed["payload"]["reason"]
    (up,) = [e for e in events if e["type"] == "incident.escalated"]
    assert up["payload"]["to"] == "ml-platform"
    assert up["payload"]["message"] == "refunds still failing after the flag change"
    assert _flag_variant(server) == "off"  # escalation changes nothing by itself


def test_failed_check_proposes_the_inverse_which_restores_the_flag(server_factory: Any,
                                                                   tmp_path: Path) -> None:
    server, action = _approve_and_restart_during_thewait_until(server_factory, tmp_path, "rollback")
    rollback_id = f"{action['id']}:rollback"
    with server.client(ADMIN_TOKEN) as admin:
        def proposed() -> dict[str, Any] | None:
            got = admin.get(f"/api/v1/actions/{rollback_id}")
            return got.json() if got.status_code == 200 else None

        rollback = wait_until(proposed, "the rollback proposal", server)
        assert rollback["status"] == "pending_approval"  # the inverse needs approval too
        assert rollback["tool"] == "gitops.set_flag"
        assert rollback["args"] == {"flag": "refund-tool", "variant": "on"}
        assert _flag_variant(server) == "off"
        assert admin.post(f"/api/v1/actions/{rollback_id}/approve").status_code == 200
        wait_until(lambda: admin.get(f"/api/v1/actions/{rollback_id}").json()["status"]
              == "succeeded", "the rollback", server)
    assert _flag_variant(server) == "on"
    types = [e["type"] for e in _timeline(server, action["incident_id"])]
    assert types.count("verify.failed") == 1 and "incident.escalated" not in types
