"""CLI: token creation against the database, and clear errors from the client commands."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support import ROOT, SCENARIOS, WEBHOOK_TOKEN, free_port, raw_execute

pytestmark = pytest.mark.slow


def cli(args: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("METAOPS_")}
    base.update(env)
    return subprocess.run([sys.executable, "-m", "api.cli", *args], cwd=ROOT, env=base,
                          capture_output=True, text=True, timeout=60, check=False)


def test_token_create_prints_once_and_stores_only_a_hash(db_url: str, tmp_path: Path) -> None:
    env = {"METAOPS_DATABASE_URL": db_url, "METAOPS_DATA_DIR": str(tmp_path)}
    done = cli(["token", "create", "--name", "alice", "--role", "approver"], **env)
    assert done.returncode == 0, done.stderr
    token = done.stdout.strip()
    assert token.startswith("mo_") and len(token) > 40
    rows = raw_execute(db_url, "SELECT name, role, token_hash, prefix FROM api_tokens")
    assert [(r[0], r[1]) for r in rows] == [("alice", "approver")]
    assert token not in str(rows) and len(rows[0][2]) == 64
    again = cli(["token", "create", "--name", "alice", "--role", "viewer"], **env)
    assert again.returncode == 1 and "already exists" in again.stderr
    bad = cli(["token", "create", "--name", "bob", "--role", "superuser"], **env)
    assert bad.returncode == 1 and "role must be one of" in bad.stderr
    assert "Traceback" not in bad.stderr + again.stderr
    audit = raw_execute(db_url, "SELECT type, target FROM audit_events")
    assert audit == [("token.created", "api-token/alice")]


def test_client_commands_fail_clearly(server_factory: Any) -> None:
    alerts = str(SCENARIOS / "provider-outage" / "alerts.json")
    down = cli(["alert", "send", alerts], METAOPS_URL=f"http://127.0.0.1:{free_port()}",
               METAOPS_TOKEN=WEBHOOK_TOKEN)
    assert down.returncode == 2 and "cannot reach metaops" in down.stderr
    server = server_factory()
    server.start()
    no_token = cli(["incidents", "list"], METAOPS_URL=server.url)
    assert no_token.returncode == 3 and "METAOPS_TOKEN is not set" in no_token.stderr
    wrong = cli(["incidents", "list"], METAOPS_URL=server.url, METAOPS_TOKEN="mo_wrong")
    assert wrong.returncode == 3 and "invalid or revoked token" in wrong.stderr
    viewer_needed = cli(["alert", "send", alerts, "--source", "nagios"], METAOPS_URL=server.url,
                        METAOPS_TOKEN=WEBHOOK_TOKEN)
    assert viewer_needed.returncode == 1 and "unknown webhook source" in viewer_needed.stderr
    sent = cli(["alert", "send", alerts], METAOPS_URL=server.url, METAOPS_TOKEN=WEBHOOK_TOKEN)
    assert sent.returncode == 0 and "accepted: incidents 1" in sent.stdout
    webhook_cannot_read = cli(["incidents", "show", "1"], METAOPS_URL=server.url,
                              METAOPS_TOKEN=WEBHOOK_TOKEN)
    assert webhook_cannot_read.returncode == 3
    for done in (down, no_token, wrong, viewer_needed, webhook_cannot_read):
        assert "Traceback" not in done.stderr


# On PostgreSQL the Slack full loop (tests/e2e/test_slack.py) maps principals with this CLI.
@pytest.mark.sqlite_pass
def test_principal_mapping_for_slack(db_url: str, tmp_path: Path) -> None:
    env = {"METAOPS_DATABASE_URL": db_url, "METAOPS_DATA_DIR": str(tmp_path)}
    added = cli(["principal", "add", "--name", "priya", "--slack-user", "U02ONCALL01",
                 "--role", "approver"], **env)
    assert added.returncode == 0, added.stderr
    assert "U02ONCALL01 acts as priya (approver)" in added.stdout
    again = cli(["principal", "add", "--name", "p2", "--slack-user", "U02ONCALL01",
                 "--role", "viewer"], **env)
    assert again.returncode == 1 and "already mapped" in again.stderr
    bad_id = cli(["principal", "add", "--name", "x", "--slack-user", "priya", "--role",
                  "viewer"], **env)
    assert bad_id.returncode == 1 and "Slack user id looks like" in bad_id.stderr
    bad_role = cli(["principal", "add", "--name", "x", "--slack-user", "U0BADROLE", "--role",
                    "webhook"], **env)
    assert bad_role.returncode == 1 and "role must be one of" in bad_role.stderr
    listed = cli(["principal", "list"], **env)
    assert listed.stdout.split() == ["U02ONCALL01", "priya", "approver"]
    assert cli(["principal", "remove", "--slack-user", "U02ONCALL01"], **env).returncode == 0
    gone = cli(["principal", "remove", "--slack-user", "U02ONCALL01"], **env)
    assert gone.returncode == 1 and "is not mapped" in gone.stderr
    assert "Traceback" not in again.stderr + bad_id.stderr + bad_role.stderr + gone.stderr
    events = raw_execute(db_url, "SELECT type, target, actor_via FROM audit_events")
    assert events == [("principal.mapped", "slack-user/U02ONCALL01", "cli"),
                      ("principal.unmapped", "slack-user/U02ONCALL01", "cli")]
