"""hallucination-storm to a published post-mortem: draft, validator, edits, late events."""

from __future__ import annotations

import json
import re
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.support import (
    ADMIN_TOKEN,
    REDIS_TEST_URL,
    SCENARIOS,
    WEBHOOK_TOKEN,
    ServerProcess,
    load_json,
    wait_until,
)

pytestmark = pytest.mark.slow
SCENARIO = SCENARIOS / "hallucination-storm"
FORBIDDEN = load_json(SCENARIOS / "provider-outage" / "expected.json")["must_not_appear_anywhere"]
SECTIONS = ["Summary", "Impact", "Detection", "Timeline", "Actions taken",
            "Root cause and contributing factors", "What went well", "What went wrong",
            "Where we got lucky", "Action items", "Links"]
DURATIONS = ["Time to detect", "Time to acknowledge", "Time to approve", "Time to mitigate"]
HUMAN_WELL = ("The runbook had the whole plan ready for review, and the semantic cache could be "
              "emptied without touching sessions.")


def _git(server: ServerProcess, *args: str) -> str:
    return subprocess.run(["git", "-C", str(server.data_dir / "gitops"), *args], check=True,
                          capture_output=True, text=True, timeout=30).stdout


def _section(markdown: str, title: str) -> str:
    return markdown.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


def _resolved_body() -> dict[str, Any]:
    body = load_json(SCENARIO / "alerts.json")
    body["status"] = "resolved"
    for alert in body["alerts"]:
        alert["status"] = "resolved"
        alert["endsAt"] = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    return dict(body)


def _cited(markdown: str) -> set[int]:
    return {int(n) for n in re.findall(r"\[ev:(\d+)\]", markdown)}


# PostgreSQL runs the revisions, notes and re-resolution in test_human_resolve_note_and_cli.
@pytest.mark.sqlite_pass
def test_postmortem_from_alert_to_published_file(server_factory: Any, tmp_path: Path) -> None:
    cache = redis.Redis.from_url(REDIS_TEST_URL)
    cache.flushdb()
    cache.mset({f"semcache:q{i}": "answer" for i in range(5)})
    server: ServerProcess = server_factory(METAOPS_REDIS_URL=REDIS_TEST_URL,
                                           METAOPS_LOGS_PATH=json.dumps(
                                               [str(SCENARIO / "logs.jsonl")]))
    server.start()
    with server.client(WEBHOOK_TOKEN) as hook:
        assert hook.post("/webhooks/alertmanager",
                         json=load_json(SCENARIO / "alerts.json")).status_code == 202
    with server.client(ADMIN_TOKEN) as admin:
        alice = admin.post("/api/v1/tokens", json={"name": "alice", "role": "approver"})
        assert alice.status_code in (200, 201), alice.text
        token = alice.json()["token"]

        def pending() -> list[dict[str, Any]]:
            got = admin.get("/api/v1/actions", params={"status": "pending_approval"}).json()
            return got["actions"] if len(got["actions"]) == 3 else []

        actions = wait_until(pending, "three proposals", server)
        incident_id = actions[0]["incident_id"]
        with server.client(token) as approver:
            for action in actions:
                assert approver.post(f"/api/v1/actions/{action['id']}/approve").status_code \
                    == 200
        wait_until(lambda: all(admin.get(f"/api/v1/actions/{a['id']}").json()["status"]
                               == "succeeded" for a in actions), "the three changes", server)
        assert admin.get(f"/api/v1/incidents/{incident_id}/postmortem").status_code == 404
        with server.client(WEBHOOK_TOKEN) as hook:
            assert hook.post("/webhooks/alertmanager", json=_resolved_body()).status_code == 202

        def drafted() -> dict[str, Any] | None:
            got = admin.get(f"/api/v1/incidents/{incident_id}/postmortem")
            return got.json() if got.status_code == 200 else None

        first = wait_until(drafted, "the draft", server, within=15)
        markdown = first["markdown"]
        assert first["problems"] == [], (first["problems"], markdown)
        assert first["author"] == "metaops"
        titles = re.findall(r"^## (.+)$", markdown, flags=re.M)
        assert titles == SECTIONS
        for name in DURATIONS:
            assert name in markdown, name
        assert "alice" in _section(markdown, "Actions taken")
        seqs = {e["seq"] for e in admin.get(
            f"/api/v1/incidents/{incident_id}/timeline").json()["events"]}
        assert _cited(markdown) and _cited(markdown) <= seqs
        for needle in FORBIDDEN:
            assert needle not in markdown

        # Edits that break the rules are refused, naming the line.
        lines = markdown.split("\n")
        well = lines.index("## What went well")
        for bad, expect in (
                ("Refunds were wrong for 47 minutes.", "citation"),
                ("The rollback ran at once [ev:99999].", "99999"),
                ("The on-call engineer caused the outage [ev:1].", "")):
            edited = "\n".join([*lines[:well + 1], bad, *lines[well + 1:]])
            got = admin.put(f"/api/v1/incidents/{incident_id}/postmortem",
                            json={"markdown": edited})
            assert got.status_code == 422, got.text
            problems = got.json()["error"]["details"]["problems"]
            assert any(p["line"] == well + 2 and expect in p["message"] for p in problems), (
                well, problems)
        # A human rewrites "What went well": a new revision, by alice.
        body = _section(markdown, "What went well")
        edited = markdown.replace(f"## What went well\n{body}",
                                  f"## What went well\n{HUMAN_WELL}\n")
        with server.client(token) as approver:
            got = approver.put(f"/api/v1/incidents/{incident_id}/postmortem",
                               json={"markdown": edited})
        assert got.status_code == 200, got.text
        assert got.json()["revision"] == first["revision"] + 1
        assert got.json()["author"] == "alice"

        # A late event (the resolved alert sent again) re-resolves the timeline and keeps
        # the human's section.
        with server.client(WEBHOOK_TOKEN) as hook:
            assert hook.post("/webhooks/alertmanager", json=_resolved_body()).status_code == 202

        def regenerated() -> dict[str, Any] | None:
            got = drafted()
            return got if got and got["revision"] > first["revision"] + 1 else None

        last = wait_until(regenerated, "the re-resolved draft", server, within=15)
        assert last["problems"] == []
        assert HUMAN_WELL in _section(last["markdown"], "What went well")
        assert "human" in _section(last["markdown"], "What went well")
        received = [e for e in admin.get(f"/api/v1/incidents/{incident_id}/timeline").json()[
            "events"] if e["type"] == "alert.received"]
        assert f"[ev:{received[-1]['seq']}]" in _section(last["markdown"], "Timeline")

        def published() -> dict[str, Any] | None:
            got = drafted()
            ok = got and got["published"] and got["published"]["status"] == "succeeded"
            return got if ok and got["revision"] == last["revision"] else None

        done = wait_until(published, "the published revision", server, within=15)
        path = done["published"]["path"]
        assert path.startswith("postmortems/") and path.endswith(f"-{incident_id}.md")
        assert admin.get("/api/v1/audit/verify").json()["ok"] is True
    assert _git(server, "show", f"HEAD:{path}") == last["markdown"]
    log = _git(server, "log", "-1", "--format=%B", "--", path)
    assert f"Metaops-Action-Id: {done['published']['action_id']}" in log


def test_human_resolve_note_and_cli(server_factory: Any) -> None:
    from tests.integration.test_cli import cli

    scenario = SCENARIOS / "provider-outage"
    server: ServerProcess = server_factory(
        METAOPS_LOGS_PATH=json.dumps([str(scenario / "logs.jsonl")]))
    server.start()
    env = {"METAOPS_URL": server.url, "METAOPS_TOKEN": ADMIN_TOKEN}
    sent = cli(["alert", "send", str(scenario / "alerts.json")], METAOPS_URL=server.url,
               METAOPS_TOKEN=WEBHOOK_TOKEN)
    assert sent.returncode == 0, sent.stderr
    with server.client(ADMIN_TOKEN) as admin:
        incident = wait_until(lambda: admin.get("/api/v1/incidents").json()["incidents"],
                              "the incident", server)[0]
        wait_until(lambda: admin.get(f"/api/v1/incidents/{incident['id']}").json()["findings"],
                   "the log summary", server)
    note = cli(["incidents", "note", str(incident["id"]), "Provider status page confirms it"],
               **env)
    assert note.returncode == 0 and "note added as event" in note.stdout, note.stderr
    done = cli(["incidents", "resolve", str(incident["id"])], **env)
    assert done.returncode == 0 and "resolved" in done.stdout, done.stderr
    with server.client(ADMIN_TOKEN) as admin:
        def drafted() -> dict[str, Any] | None:
            got = admin.get(f"/api/v1/incidents/{incident['id']}/postmortem")
            return got.json() if got.status_code == 200 else None

        first = wait_until(drafted, "the draft", server, within=15)
    shown = cli(["postmortem", "show", str(incident["id"])], **env)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith("# Post-mortem:") and shown.stderr == ""
    assert "OpenAIConnectionError" in shown.stdout
    assert "Provider status page confirms it" in shown.stdout  # the note is on the timeline
    for needle in FORBIDDEN:
        assert needle not in shown.stdout
    # Nothing new happened: regenerating keeps the same revision.
    again = cli(["postmortem", "regenerate", str(incident["id"])], **env)
    assert again.returncode == 0 and "queued" in again.stdout
    time.sleep(2)
    with server.client(ADMIN_TOKEN) as admin:
        latest = drafted()
        assert latest is not None and latest["revision"] == first["revision"]
    missing = cli(["postmortem", "show", "999999"], **env)
    assert missing.returncode == 1 and "999999" in missing.stderr
