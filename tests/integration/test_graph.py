"""The supervisor graph in-process: proposals per scenario, stale targets, kill switch, reject."""

from __future__ import annotations

import asyncio
import subprocess
from typing import Any

from tests.conftest import Harness
from tests.support import SCENARIOS, load_json


async def _pending(h: Harness, count: int, within: float = 20.0) -> list[dict[str, Any]]:
    deadline = asyncio.get_running_loop().time() + within
    while True:
        got = (await h.get("/api/v1/actions", params={"status": "pending_approval"})).json()
        if len(got["actions"]) == count:
            return list(got["actions"])
        assert asyncio.get_running_loop().time() < deadline, got
        await asyncio.sleep(0.05)


async def _status(h: Harness, action_id: str, want: str, within: float = 20.0) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + within
    while True:
        got: dict[str, Any] = (await h.get(f"/api/v1/actions/{action_id}")).json()
        if got["status"] == want:
            return got
        assert asyncio.get_running_loop().time() < deadline, got
        await asyncio.sleep(0.05)


def _git(h: Harness, *args: str) -> str:
    return subprocess.run(["git", "-C", str(h.settings.data_dir / "gitops"), *args],
                          check=True, capture_output=True, text=True).stdout


async def test_provider_outage_proposes_the_expected_failover(harness: Harness) -> None:
    r = await harness.post_webhook("alertmanager",
                                   load_json(SCENARIOS / "provider-outage" / "alerts.json"))
    assert r.status_code == 202
    (action,) = await _pending(harness, 1)
    expected = load_json(SCENARIOS / "provider-outage" / "expected.json")["proposals"][0]
    assert (action["tool"], action["args"]) == (expected["tool"], expected["args"])
    assert "azure/gpt-4-turbo" in action["preview"]["diff"]
    assert action["policy"]["outcome"] == "require_approval"
    assert action["inverse"]["args"]["target"] == "openai/gpt-4-turbo"


async def test_commit_after_the_proposal_makes_the_action_stale(harness: Harness) -> None:
    alerts = load_json(SCENARIOS / "hallucination-storm" / "alerts.json")
    assert (await harness.post_webhook("alertmanager", alerts)).status_code == 202
    actions = {a["tool"]: a for a in await _pending(harness, 2)}
    rollback = actions["gitops.rollback_prompt"]
    repo = harness.settings.data_dir / "gitops"
    (repo / "prompts" / "shoppal-system.md").write_text("hand edit by a human\n")
    _git(harness, "commit", "-qam", "hotfix by hand", "--author", "Dev <dev@example.com>")
    r = await harness.client.post(f"/api/v1/actions/{rollback['id']}/approve",
                                  headers=harness.auth())
    assert r.status_code == 200
    stale = await _status(harness, rollback["id"], "stale")
    assert stale["error"].startswith("stale")
    assert _git(harness, "log", "-1", "--format=%s").strip() == "hotfix by hand"
    events = (await harness.get("/api/v1/audit", params={"type": "action.stale"})).json()
    assert [e["action_id"] for e in events["events"]] == [rollback["id"]]
    assert "target changed" in events["events"][0]["payload"]["reason"]


async def test_kill_switch_and_reject_through_the_api(harness: Harness) -> None:
    alerts = load_json(SCENARIOS / "hallucination-storm" / "alerts.json")
    assert (await harness.post_webhook("alertmanager", alerts)).status_code == 202
    actions = {a["tool"]: a for a in await _pending(harness, 2)}
    flag, rollback = actions["gitops.set_flag"], actions["gitops.rollback_prompt"]
    heads = _git(harness, "rev-parse", "HEAD")
    on = await harness.client.post("/api/v1/killswitch", json={"on": True},
                                   headers=harness.auth())
    assert on.json() == {"on": True}
    await harness.client.post(f"/api/v1/actions/{flag['id']}/approve", headers=harness.auth())
    await _status(harness, flag["id"], "approved")
    await asyncio.sleep(0.5)
    assert (await harness.get(f"/api/v1/actions/{flag['id']}")).json()["status"] == "approved"
    assert _git(harness, "rev-parse", "HEAD") == heads
    held = (await harness.get("/api/v1/audit", params={"type": "execution.held"})).json()
    assert held["events"], "held executions are audited"
    r = await harness.client.post(f"/api/v1/actions/{rollback['id']}/reject",
                                  json={"reason": "prompt v3 is fine"}, headers=harness.auth())
    assert r.json()["status"] == "rejected"
    late = await harness.client.post(f"/api/v1/actions/{rollback['id']}/approve",
                                     headers=harness.auth())
    assert late.status_code == 409 and late.json()["error"]["code"] == "conflict"
    await harness.client.post("/api/v1/killswitch", json={"on": False}, headers=harness.auth())
    await _status(harness, flag["id"], "succeeded")
    assert _git(harness, "rev-parse", "HEAD") != heads
    assert "Approved-By: bootstrap-admin" in _git(harness, "log", "-1", "--format=%B")
    viewer = await harness.client.post("/api/v1/tokens", json={"name": "v", "role": "viewer"},
                                       headers=harness.auth())
    vtoken = viewer.json()["token"]
    denied = await harness.client.post("/api/v1/killswitch", json={"on": True},
                                       headers=harness.auth(vtoken))
    assert denied.status_code == 403


async def test_the_sweep_expires_overdue_approvals_and_the_graph_ends(harness: Harness) -> None:
    from sqlalchemy import update

    from core.models import Action
    from core.timeutil import utcnow

    alerts = load_json(SCENARIOS / "provider-outage" / "alerts.json")
    assert (await harness.post_webhook("alertmanager", alerts)).status_code == 202
    (action,) = await _pending(harness, 1)
    db = harness.app.state.metaops.db
    async with db.write() as s:  # the clock has run past the expiry
        await s.execute(update(Action).where(Action.id == action["id"]).values(
            expires_at=utcnow()))
    await harness.runtime.sweep()
    expired = await _status(harness, action["id"], "expired")
    assert expired["executed_at"] is None
    incident = (await harness.get(f"/api/v1/incidents/{action['incident_id']}")).json()
    deadline = asyncio.get_running_loop().time() + 10
    while incident["investigation"] != "done":
        assert asyncio.get_running_loop().time() < deadline, incident
        await asyncio.sleep(0.05)
        incident = (await harness.get(f"/api/v1/incidents/{action['incident_id']}")).json()
    late = await harness.client.post(f"/api/v1/actions/{action['id']}/approve",
                                     headers=harness.auth())
    assert late.status_code == 409
