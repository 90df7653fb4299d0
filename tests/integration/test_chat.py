"""POST /api/v1/chat in-process: help by role, the same facts as REST, gated proposals, refusals."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest

from core.settings import Settings
from tests.conftest import Harness, in_process
from tests.support import SCENARIOS, load_json

T = TypeVar("T")
OUTAGE = SCENARIOS / "provider-outage"
FORBIDDEN = load_json(OUTAGE / "expected.json")["must_not_appear_anywhere"]
# The scenario's last log line is just before 11:00; shifted, it ends a minute before now.
SCENARIO_END = datetime(2026, 11, 27, 11, 0, tzinfo=UTC)
WRITE_WORDS = ("approve", "reject", "rollback", "flag", "alias", "block", "scale")


def _shift(stamp: str, delta: timedelta) -> str:
    moment = datetime.fromisoformat(stamp.replace("Z", "+00:00")) + delta
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _delta() -> timedelta:
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    return now - timedelta(minutes=1) - SCENARIO_END


@pytest.fixture
def delta() -> timedelta:
    return _delta()


@pytest.fixture
async def outage(settings: Settings, tmp_path: Path,
                 delta: timedelta) -> AsyncIterator[Harness]:
    """The app reading the provider-outage logs moved to the last 91 minutes, so the chat's
    windows (which end now) reach them."""
    logs = shifted_outage_logs(tmp_path, delta)
    async with in_process(settings.model_copy(update={"logs_path": [str(logs)]})) as h:
        yield h


def shifted_outage_logs(tmp_path: Path, delta: timedelta) -> Path:
    """The provider-outage logs moved by `delta`, in a file of their own."""
    logs = tmp_path / "logs.jsonl"
    with logs.open("w", encoding="utf-8") as out:
        for line in (OUTAGE / "logs.jsonl").read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            record["timestamp"] = _shift(record["timestamp"], delta)
            out.write(json.dumps(record) + "\n")
    return logs


async def _eventually(probe: Callable[[], Awaitable[T | None]], what: str,
                      within: float = 20.0) -> T:
    deadline = asyncio.get_running_loop().time() + within
    while True:
        value = await probe()
        if value:
            return value
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def _token(h: Harness, name: str, role: str) -> str:
    r = await h.client.post("/api/v1/tokens", json={"name": name, "role": role},
                            headers=h.auth())
    assert r.status_code == 201, r.text
    return str(r.json()["token"])


async def _chat(h: Harness, text: str, token: str, **body: Any) -> dict[str, Any]:
    r = await h.client.post("/api/v1/chat", json={"text": text, **body}, headers=h.auth(token))
    assert r.status_code == 200, r.text
    reply: dict[str, Any] = r.json()
    assert set(reply) == {"command", "ok", "text", "data", "action_id"}
    return reply


def _git(h: Harness, *args: str) -> str:
    return subprocess.run(["git", "-C", str(h.settings.data_dir / "gitops"), *args],
                          check=True, capture_output=True, text=True).stdout


def _flags(h: Harness) -> dict[str, Any]:
    path = h.settings.data_dir / "gitops" / "flags" / "flags.json"
    flags: dict[str, Any] = json.loads(path.read_text())["flags"]
    return flags


async def _actions(h: Harness) -> list[dict[str, Any]]:
    return list((await h.get("/api/v1/actions")).json()["actions"])


async def test_help_lists_only_what_the_role_may_run(harness: Harness) -> None:
    viewer = await _token(harness, "vic", "viewer")
    approver = await _token(harness, "alice", "approver")
    seen = await _chat(harness, "help", viewer)
    assert seen["ok"] and seen["command"] == "help"
    assert "Commands for the viewer role" in seen["text"]
    for read in ("`status`", "`incidents`", "`incident N`", "`logs SERVICE [WINDOW]`",
                 "`cost [WINDOW]`", "`actions`", "`postmortem N`"):
        assert read in seen["text"]
    for word in WRITE_WORDS:
        assert f"`{word} " not in seen["text"], word
    full = await _chat(harness, "help", approver)
    for word in WRITE_WORDS:
        assert f"`{word} " in full["text"], word
    one = await _chat(harness, "help flag", approver)
    assert one["ok"] and one["text"].startswith("`flag NAME on|off`")
    refused = await _chat(harness, "help approve", viewer)
    assert not refused["ok"] and "needs the approver role" in refused["text"]
    assert "`approve " not in refused["text"]


async def test_provider_outage_incident_logs_and_cost(outage: Harness, delta: timedelta) -> None:
    alerts = load_json(OUTAGE / "alerts.json")
    for alert in alerts["alerts"]:
        alert["startsAt"] = _shift(alert["startsAt"], delta)
    assert (await outage.post_webhook("alertmanager", alerts)).status_code == 202
    viewer = await _token(outage, "vic", "viewer")

    async def settled() -> dict[str, Any] | None:
        r = await outage.get("/api/v1/incidents/1")
        detail: dict[str, Any] = r.json()
        done = r.status_code == 200 and detail["investigation"] == "waiting_approval"
        return detail if done and detail["findings"] and detail["actions"] else None

    await _eventually(settled, "the investigation to wait for approval")
    reply = await _chat(outage, "incident #1", viewer)
    rest = (await outage.get("/api/v1/incidents/1")).json()
    assert reply["ok"] and reply["command"] == "incident 1"
    assert reply["data"] == rest
    assert reply["text"].startswith(f"*Incident #1: {rest['title']}*")
    (finding,) = rest["findings"]
    assert f"• log_summarizer: {finding['summary']}" in reply["text"]
    assert "2,000 error lines in 3 distinct patterns" in reply["text"]
    (action,) = rest["actions"]
    assert f"`{action['id']}` gitops.set_model_alias — pending_approval" in reply["text"]

    logs = await _chat(outage, "logs chat-api 2h", viewer)
    assert logs["ok"] and logs["command"] == "logs chat-api 2h"
    errors = [p for p in logs["data"]["patterns"] if p["level"] == "error"]
    wanted = load_json(OUTAGE / "expected.json")["top_patterns"]
    assert [(p["count"], p["share"]) for p in errors] == [
        (w["count"], w["share"]) for w in wanted]
    for got, want in zip(errors, wanted, strict=True):
        assert want["contains"] in got["template"]
    assert "• 80 % (1,600) [error] OpenAIConnectionError" in logs["text"]
    assert "2,000 error lines in 3 patterns" in logs["text"]
    # The personal data sits in warning lines: reported, but only ever redacted.
    assert any("[REDACTED" in p["exemplar"] for p in logs["data"]["patterns"])
    other = await _chat(outage, "logs search-api 2h", viewer)
    assert other["ok"] and other["data"]["status"] == "no_data"
    assert "no error or warning lines" in other["text"]

    cost = await _chat(outage, "cost 24h", viewer)
    rows = [json.loads(line) for line in (OUTAGE / "logs.jsonl").read_text().splitlines()]
    completions = [r for r in rows if r.get("event_type") == "llm_completion"]
    totals = cost["data"]["totals"]
    assert cost["ok"] and totals["requests"] == len(completions) == 1800
    assert totals["cost_usd"] == pytest.approx(sum(r["cost_usd"] for r in completions))
    assert cost["data"]["burn_rate_usd_per_hour"] == pytest.approx(totals["cost_usd"] / 24)
    top = cost["data"]["top_users"][0]
    assert f"Top users: {top['user_id']} ${top['cost_usd']:,.2f}" in cost["text"]
    assert "over 1,800 requests" in cost["text"]
    everything = json.dumps([reply, logs, cost])
    for needle in FORBIDDEN:
        assert needle not in everything

    # A proposal made in the incident's context joins it, and runs once approved by another.
    alice = await _token(outage, "alice", "approver")
    bob = await _token(outage, "bob", "approver")
    block = await _chat(outage, "block u-4711", alice, incident_id=1)
    assert block["ok"] and block["action_id"].startswith("incident-1:chat:")
    assert block["data"]["incident_id"] == 1 and block["data"]["status"] == "pending_approval"
    ids = [a["id"] for a in (await outage.get("/api/v1/incidents/1")).json()["actions"]]
    assert ids == [action["id"], block["action_id"]]
    assert (await _chat(outage, f"approve {block['action_id']}", bob))["ok"]

    async def blocked() -> bool:
        got = (await outage.get(f"/api/v1/actions/{block['action_id']}")).json()
        return bool(got["status"] == "succeeded")

    await _eventually(blocked, "the incident's chat proposal to execute")
    still = (await outage.get(f"/api/v1/actions/{action['id']}")).json()
    assert still["status"] == "pending_approval"  # the runbook's own proposal is untouched

    early = await _chat(outage, "postmortem 1", viewer)
    assert not early["ok"] and "has no post-mortem yet" in early["text"]
    r = await outage.client.post("/api/v1/incidents/1/resolve", headers=outage.auth())
    assert r.status_code == 200, r.text

    async def drafted() -> dict[str, Any] | None:
        r = await outage.get("/api/v1/incidents/1/postmortem")
        found = r.json() if r.status_code == 200 else {}
        # Settled once its publication ran: the dict no longer changes.
        done = (found.get("published") or {}).get("status") == "succeeded"
        return dict(found) if done else None

    draft = await _eventually(drafted, "the post-mortem draft and its publication")
    written = await _chat(outage, "postmortem 1", viewer)
    assert written["ok"] and written["data"] == draft
    first = next(line for line in draft["markdown"].splitlines() if line.strip())
    assert written["text"].startswith(
        f"*Post-mortem of incident #1*, revision {draft['revision']} by ")
    assert written["text"].splitlines()[1] == first.replace("&", "&amp;").replace(
        "<", "&lt;").replace(">", "&gt;")


async def test_a_viewer_cannot_decide_or_propose(harness: Harness) -> None:
    viewer = await _token(harness, "vic", "viewer")
    head = _git(harness, "rev-parse", "HEAD")
    approve = await _chat(harness, "approve incident-1:chat:abc", viewer)
    assert not approve["ok"] and approve["command"] == "approve incident-1:chat:abc"
    assert approve["text"].startswith("`approve` needs the approver role or higher; you have "
                                      "the viewer role.")
    assert "Commands for the viewer role" in approve["text"]
    flag = await _chat(harness, "flag refund-tool on", viewer)
    assert not flag["ok"] and "`flag` needs the approver role" in flag["text"]
    assert flag["action_id"] is None
    assert await _actions(harness) == []
    assert _git(harness, "rev-parse", "HEAD") == head
    events = (await harness.get("/api/v1/audit", params={"type": "approval.refused"})).json()
    assert events["events"] == []


async def test_a_chat_proposal_needs_someone_else_and_runs_once(harness: Harness) -> None:
    alice = await _token(harness, "alice", "approver")
    bob = await _token(harness, "bob", "approver")
    head = _git(harness, "rev-parse", "HEAD")
    assert _flags(harness)["refund-tool"]["defaultVariant"] == "on"

    proposed = await _chat(harness, "flag refund-tool off", alice)
    action_id = proposed["action_id"]
    assert proposed["ok"] and proposed["command"] == "flag refund-tool off"
    assert action_id.startswith("chat-") and proposed["data"]["id"] == action_id
    assert proposed["data"]["status"] == "pending_approval"
    assert proposed["data"]["requested_by"] == "alice"
    assert proposed["data"]["args"] == {"flag": "refund-tool", "variant": "off"}
    assert proposed["text"].startswith("Proposed gitops.set_flag on flag refund-tool: ")
    assert f"action `{action_id}` is pending_approval (policy: " in proposed["text"]
    # Proposed, not done: the repository is untouched.
    assert _git(harness, "rev-parse", "HEAD") == head
    assert _flags(harness)["refund-tool"]["defaultVariant"] == "on"
    listed = await _chat(harness, "actions", alice)
    assert [a["id"] for a in listed["data"]["actions"]] == [action_id]
    assert f"`{action_id}` gitops.set_flag on flag refund-tool" in listed["text"]

    own = await _chat(harness, f"approve {action_id}", alice)
    assert not own["ok"] and "separation of duties" in own["text"]
    again = (await harness.get(f"/api/v1/actions/{action_id}")).json()
    assert again["status"] == "pending_approval" and again["approvals"] == []

    approved = await _chat(harness, f"approve {action_id}", bob)
    assert approved["ok"], approved
    assert approved["data"] == {"id": action_id, "status": "approved", "approvals": 1,
                                "required": 1}
    assert approved["text"] == f"Approved `{action_id}` (1 of 1); it executes now."

    async def done() -> dict[str, Any] | None:
        got: dict[str, Any] = (await harness.get(f"/api/v1/actions/{action_id}")).json()
        return got if got["status"] == "succeeded" else None

    await _eventually(done, "the approved chat proposal to execute")
    assert _flags(harness)["refund-tool"]["defaultVariant"] == "off"
    twice = await _chat(harness, f"approve {action_id}", bob)
    assert twice["ok"] and twice["text"].startswith(f"You had already approved `{action_id}`")
    assert _git(harness, "rev-list", "--count", f"{head.strip()}..HEAD").strip() == "1"
    runs = (await harness.get("/api/v1/audit", params={"type": "action.executing"})).json()
    assert [e["action_id"] for e in runs["events"]] == [action_id]
    proposals = (await harness.get("/api/v1/audit", params={"type": "action.proposed"})).json()
    (event,) = proposals["events"]
    assert event["actor"] == {"kind": "human", "id": "alice", "via": "api"}


async def test_rollback_without_a_commit_proposes_the_previous_version(harness: Harness) -> None:
    alice = await _token(harness, "alice", "approver")
    path = "prompts/shoppal-system.md"
    versions = _git(harness, "log", "--format=%H", "--", path).split()
    assert len(versions) >= 2
    head = _git(harness, "rev-parse", "HEAD")
    reply = await _chat(harness, "rollback prompt shoppal-system", alice)
    assert reply["ok"], reply
    assert reply["data"]["args"] == {"path": path, "to_commit": versions[1]}
    assert reply["data"]["status"] == "pending_approval"
    assert reply["data"]["requested_by"] == "alice"
    assert "content of v2" in reply["data"]["preview"]["summary"]
    assert _git(harness, "rev-parse", "HEAD") == head

    # A prompt with a single version has nothing to go back to.
    repo = harness.settings.data_dir / "gitops"
    (repo / "prompts" / "fresh.md").write_text("brand new prompt\n")
    _git(harness, "add", "prompts/fresh.md")
    _git(harness, "commit", "-qm", "fresh prompt", "--author", "Dev <dev@example.com>")
    none = await _chat(harness, "rollback prompt fresh", alice)
    assert not none["ok"] and none["action_id"] is None
    assert none["text"] == ("Invalid: prompts/fresh.md has no version before v1; name one with "
                            "`rollback prompt NAME to COMMIT`")
    assert len(await _actions(harness)) == 1


async def test_refusals_are_replies_not_errors(harness: Harness) -> None:
    alice = await _token(harness, "alice", "approver")
    unknown = await _chat(harness, "frobnicate the widgets", alice)
    assert unknown["command"] is None and not unknown["ok"]
    assert unknown["text"].startswith("unknown command 'frobnicate'")
    assert "Commands for the approver role" in unknown["text"]
    typo = await _chat(harness, "incidnets", alice)
    assert "did you mean `incidents`?" in typo["text"]
    missing = await _chat(harness, "incident 99", alice)
    assert not missing["ok"] and missing["text"] == "Not found: no incident 99"
    scale = await _chat(harness, "scale llm-serving/vllm-llama3-70b 4", alice)
    assert not scale["ok"] and "Kubernetes is not configured" in scale["text"]
    logs = await _chat(harness, "logs chat-api", alice)
    assert not logs["ok"] and "no log source is configured" in logs["text"]
    denied = await _chat(harness, "alias chat-default openai/gpt-3.5-turbo", alice)
    assert not denied["ok"] and denied["text"].startswith(
        "Policy denied gitops.set_model_alias on alias chat-default: limit allowed_alias_targets")
    assert denied["data"]["status"] == "rejected"
    orphan = await _chat(harness, "flag refund-tool off", alice, incident_id=99)
    assert not orphan["ok"] and orphan["text"] == "Not found: no incident 99"
    nobody = await _chat(harness, "approve chat-0000", alice)
    assert not nobody["ok"] and nobody["text"] == "Not found: no action chat-0000"
    assert [a["status"] for a in await _actions(harness)] == ["rejected"]


BAD_BODIES = [
    ({}, "text"),
    ({"text": ""}, "text"),
    ({"text": "x" * 2001}, "text"),
    ({"text": 5}, "text"),
    ({"text": ["status"]}, "text"),
    ({"text": "status", "incident_id": "one"}, "incident_id"),
    ({"text": "status", "incident_id": 0}, "incident_id"),
    ({"text": "status", "extra": 1}, "extra"),
]


async def test_bad_bodies_are_422_naming_the_field(harness: Harness) -> None:
    for body, field in BAD_BODIES:
        r = await harness.client.post("/api/v1/chat", json=body, headers=harness.auth())
        assert r.status_code == 422, (body, r.text)
        error = r.json()["error"]
        assert error["code"] == "validation_error"
        assert field in [f["field"] for f in error["details"]["fields"]], (body, error)
    r = await harness.client.post("/api/v1/chat", content=b"{not json",
                                  headers={**harness.auth(), "content-type": "application/json"})
    assert r.status_code == 422 and r.json()["error"]["code"] == "validation_error"


async def test_chat_needs_a_token(harness: Harness) -> None:
    r = await harness.client.post("/api/v1/chat", json={"text": "status"})
    assert r.status_code == 401
    status = await _chat(harness, "status", await _token(harness, "vic", "viewer"))
    assert status["ok"] and status["data"] == {"open_incidents": 0, "pending_actions": 0,
                                               "kill_switch": False}
