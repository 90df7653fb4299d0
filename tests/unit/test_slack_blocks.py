"""Slack Block Kit builders: structure, escaping of untrusted text, Slack's limits, round trip."""

from __future__ import annotations

import copy
import json
import re
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode

import pytest
from slack_bolt import Ack, App, BoltRequest
from slack_bolt.authorization import AuthorizeResult
from slack_sdk.models.blocks import Block
from slack_sdk.signature import SignatureVerifier

from agents.postmortem import AUTO_MARKER, SECTIONS
from agents.postmortem.model import TITLE_PREFIX
from api.slack.blocks import (
    APPROVE_ACTION,
    REJECT_ACTION,
    action_target,
    approval_card,
    decided_card,
    ephemeral_refusal,
    escalation_message,
    escape,
    execution_message,
    finding_message,
    fit_blocks,
    incident_message,
    postmortem_message,
    truncate,
)

WIRE = Path("/work/shared/reference/wire")
NOW = datetime(2026, 11, 27, 10, 10, tzinfo=UTC)
EVIL = "<!channel> <http://evil.example|click> @here & <@U0BOSS> @Everyone <!subteam^S1>"
ZWSP = "\u200b"
BROADCAST = re.compile(r"@(here|channel|everyone)\b", re.IGNORECASE)


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def make_action(**changes: Any) -> dict[str, Any]:
    """An action as api.routes.actions.action_view() returns it."""
    action: dict[str, Any] = {
        "id": "inc7:kv-cache:scale:1",
        "incident_id": 7,
        "tool": "kube.scale_deployment",
        "effect": "write",
        "args": {"namespace": "llm-serving", "name": "vllm-llama3-70b", "replicas": 6},
        "status": "pending_approval",
        "preview": {"summary": "Scale llm-serving/vllm-llama3-70b from 4 to 6 replicas (+2 GPUs)",
                    "diff": "-  replicas: 4\n+  replicas: 6",
                    "current": {"replicas": 4, "gpus": 4},
                    "proposed": {"replicas": 6, "gpus": 6}},
        "policy": {"outcome": "require_approval", "rule": "scale-within-limits",
                   "reason": "scaling changes GPU spend", "required_approvals": 2,
                   "approver_role": "approver", "separation_of_duties": True,
                   "expiry_minutes": 30, "escalate_after_minutes": 10},
        "required_approvals": 2,
        "approver_role": "approver",
        "requested_by": "runbook:kv-cache-saturation",
        "approvals": [],
        "expires_at": iso(NOW + timedelta(minutes=22)),
        "inverse": {"tool": "kube.scale_deployment",
                    "args": {"namespace": "llm-serving", "name": "vllm-llama3-70b",
                             "replicas": 4}},
        "result": None,
        "error": None,
        "created_at": iso(NOW - timedelta(minutes=8)),
        "executed_at": None,
    }
    action.update(changes)
    return action


def vote(by: str, decision: str = "approve", via: str = "slack", minute: int = 3,
         reason: str | None = None) -> dict[str, Any]:
    return {"by": by, "decision": decision, "via": via,
            "at": iso(datetime(2026, 11, 27, 10, minute, tzinfo=UTC)), "reason": reason}


INCIDENT: dict[str, Any] = {
    "id": 7, "title": "KVCacheSaturation on vllm-llama3-70b", "severity": "critical",
    "status": "open", "source": "alertmanager", "services": ["vllm-llama3-70b", "chat-api"],
    "labels": {"team": "inference"}, "investigation": "waiting_approval",
    "created_at": "2026-11-27T10:02:00.000000Z", "updated_at": "2026-11-27T10:05:00.000000Z",
    "resolved_at": None, "alert_count": 3,
}

PATTERNS: dict[str, Any] = {
    "specialist": "log_summarizer", "kind": "log_patterns",
    "summary": "1,234 error lines in 2 distinct patterns: 62.5 % upstream timeout.",
    "data": {"status": "ok", "patterns": [
        {"template": "upstream timeout after <*> ms model=<*>", "share": 0.625, "count": 1234,
         "level": "error", "first_seen": "2026-11-27T10:01:00Z",
         "last_seen": "2026-11-27T10:09:00Z", "services": ["chat-api"],
         "exemplar": "upstream timeout after 30000 ms model=llama3-70b"},
        {"template": "retrying request <*>", "share": 0.375, "count": 740, "level": "error",
         "first_seen": "2026-11-27T10:02:00Z", "last_seen": "2026-11-27T10:08:00Z",
         "services": ["chat-api"]},
    ], "totals": {"error": 1974}},
}

COSTS: dict[str, Any] = {
    "specialist": "cost_investigator", "kind": "cost_report",
    "summary": "Burn rate $412.50/h in the 15 min before the alert.",
    "data": {"status": "ok", "burn_rate_usd_per_hour": 412.5,
             "baseline_burn_rate_usd_per_hour": 38.0, "burn_rate_ratio": 10.9,
             "budget_usd_per_hour": 100.0, "cost_per_query_p50": 0.0021,
             "cost_per_query_p99": 0.4,
             "top_users": [{"user_id": "u-loop", "cost_usd": 371.25, "tokens": 48_000_000,
                            "requests": 9120},
                           {"user_id": "u-2", "cost_usd": 12.0, "tokens": 90_000,
                            "requests": 300}],
             "runaway_users": [{"user_id": "u-loop",
                                "reasons": ["152 requests/min for 60 min",
                                            "prompts 14.2x the median of other users"]}]},
}

ESCALATED: dict[str, Any] = {
    "seq": 88, "id": "0b4f", "ts": "2026-11-27T10:40:00.000000Z", "type": "incident.escalated",
    "actor": {"kind": "agent", "id": "verifier", "via": "system"},
    "target": "runbook:kv-cache-saturation/scale", "incident_id": 7,
    "action_id": "inc7:kv-cache:scale:1", "outcome": "escalated",
    "payload": {"to": "ml-platform-oncall", "message": "KV cache still saturated after scaling",
                "reason": "kv_cache_usage 0.97 > 0.9 five minutes after the change",
                "rollback_unavailable": False},
}

OVERDUE: dict[str, Any] = {
    "seq": 61, "ts": "2026-11-27T10:20:00.000000Z", "type": "action.escalated",
    "target": "kube.scale_deployment", "incident_id": 7, "action_id": "inc7:kv-cache:scale:1",
    "payload": {"waiting_minutes": 12, "approvals_needed": 2, "approver_role": "approver"},
}


def postmortem_markdown(summary: list[str]) -> str:
    """A draft in the writer's layout (title, auto markers, the fixed sections)."""
    parts = [f"{TITLE_PREFIX}KVCacheSaturation on vllm-llama3-70b", "",
             "<!-- auto: written from the audit trail -->", ""]
    for name in SECTIONS:
        body = summary if name == "Summary" else [f"Text of {name} [ev:9]."]
        parts += [f"## {name}", AUTO_MARKER, *body, ""]
    return "\n".join(parts)


SUMMARY = ["What fired: KVCacheSaturation on vllm-llama3-70b (severity critical) [ev:1].",
           "The incident opened at 10:02:00 on 2026-11-27 [ev:2].", "",
           "What was changed:", "- kube.scale_deployment succeeded [ev:14]"]


# --- helpers over the output --------------------------------------------------------------


def text_objects(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        if node.get("type") in ("plain_text", "mrkdwn") and isinstance(node.get("text"), str):
            yield node
        for value in node.values():
            yield from text_objects(value)
    elif isinstance(node, list):
        for item in node:
            yield from text_objects(item)


def rendered(message: dict[str, Any]) -> list[str]:
    """Every string Slack renders: the fallback text and each text object."""
    return [message["text"], *(t["text"] for t in text_objects(message["blocks"]))]


def elements(message: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [e for b in message["blocks"] if b["type"] == "actions" for e in b["elements"]
            if e["type"] == kind]


def utf16(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def check_limits(message: dict[str, Any]) -> None:
    """Slack's Block Kit limits, checked directly and again by slack_sdk's validators."""
    assert json.loads(json.dumps(message)) == message
    blocks = message["blocks"]
    assert 1 <= len(blocks) <= 50
    assert message["text"] and utf16(message["text"]) <= 4000
    action_ids = []
    for block in blocks:
        Block.parse(block).validate_json()  # type: ignore[union-attr]
        assert len(block.get("block_id", "")) <= 255
        if block["type"] == "header":
            assert utf16(block["text"]["text"]) <= 150
        if block["type"] == "section":
            assert "text" in block or "fields" in block
            if "text" in block:
                assert 1 <= utf16(block["text"]["text"]) <= 3000
            assert len(block.get("fields", [])) <= 10
            assert all(utf16(f["text"]) <= 2000 for f in block.get("fields", []))
        if block["type"] == "context":
            assert 1 <= len(block["elements"]) <= 10
            assert all(utf16(e["text"]) <= 3000 for e in block["elements"])
        if block["type"] == "actions":
            for button in block["elements"]:
                action_ids.append(button["action_id"])
                assert utf16(button["text"]["text"]) <= 75
                assert len(button["value"]) <= 2000
                confirm = button.get("confirm")
                if confirm:
                    assert utf16(confirm["title"]["text"]) <= 100
                    assert utf16(confirm["text"]["text"]) <= 300
                    assert utf16(confirm["confirm"]["text"]) <= 30
                    assert utf16(confirm["deny"]["text"]) <= 30
    assert len(action_ids) == len(set(action_ids))  # unique within a message
    assert all(t["text"] for t in text_objects(blocks))


def check_inert(message: dict[str, Any], allowed_links: tuple[str, ...] = ()) -> None:
    """No untrusted text can mention, link or break out: no raw < or >, no bare broadcast."""
    for shown in rendered(message):
        text = shown
        for link in allowed_links:
            text = text.replace(link, "")
        assert "<" not in text and ">" not in text, text
        assert not BROADCAST.search(text), text
        # Every & starts one of the three entities Slack decodes.
        assert not re.search(r"&(?!amp;|lt;|gt;)", text), text


# --- escaping and truncation --------------------------------------------------------------


@pytest.mark.parametrize(("raw", "safe"), [
    ("<!channel>", "&lt;!channel&gt;"),
    ("<!here|here>", "&lt;!here|here&gt;"),
    ("<http://evil|click>", "&lt;http://evil|click&gt;"),
    ("@here now", f"@{ZWSP}here now"),
    ("@Channel and @everyone", f"@{ZWSP}Channel and @{ZWSP}everyone"),
    ("R&D", "R&amp;D"),
    ("&lt;", "&amp;lt;"),  # an entity in the input stays text, it does not become <
    ("mail me@here.example", f"mail me@{ZWSP}here.example"),
    ("ops@company.example", "ops@company.example"),
    ("a\x00b\u202ec\td\ne", "abc\td\ne"),
    (None, ""),
    (42, "42"),
])
def test_escape(raw: object, safe: str) -> None:
    assert escape(raw) == safe


def test_truncate_never_splits_an_entity_and_counts_utf16() -> None:
    text = escape("&" * 100)
    for limit in range(2, 40):
        cut = truncate(text, limit)
        assert utf16(cut) <= limit
        assert cut.endswith("…")
        assert re.fullmatch(r"(&amp;)*…", cut)
    assert truncate("short", 10) == "short"
    # An emoji outside the BMP is two UTF-16 units: 10 of them do not fit in 15.
    emoji = "\U0001F525" * 10
    assert utf16(truncate(emoji, 15)) <= 15
    assert truncate(emoji, 20) == emoji


# --- approval card ------------------------------------------------------------------------


def test_approval_card_structure() -> None:
    action = make_action()
    card = approval_card(action, now=NOW)
    check_limits(card)
    assert [b["type"] for b in card["blocks"]] == [
        "header", "section", "section", "section", "context", "context", "actions"]
    actions = card["blocks"][-1]
    assert actions["block_id"] == f"approval:{action['id']}"
    approve, reject = actions["elements"]
    assert (approve["action_id"], approve["value"], approve["style"]) == (
        APPROVE_ACTION, action["id"], "primary") == ("metaops_approve", action["id"], "primary")
    assert (reject["action_id"], reject["value"], reject["style"]) == (
        REJECT_ACTION, action["id"], "danger") == ("metaops_reject", action["id"], "danger")
    assert (approve["text"]["text"], reject["text"]["text"]) == ("Approve", "Reject")
    # A write (not destructive) asks no confirmation.
    assert "confirm" not in approve and "confirm" not in reject
    flat = "\n".join(rendered(card))
    assert "`kube.scale_deployment`" in flat
    assert "llm-serving/vllm-llama3-70b" in flat
    assert '`{"replicas": 4, "gpus": 4}` → `{"replicas": 6, "gpus": 6}`' in flat
    assert "```\n-  replicas: 4\n+  replicas: 6\n```" in flat
    assert "rule `scale-within-limits`: scaling changes GPU spend" in flat
    assert "*0 of 2* (role approver)" in flat
    assert "Expires in 22 min (2026-11-27 10:32 UTC)" in flat
    assert card["text"] == ("Approval needed: kube.scale_deployment on "
                            "llm-serving/vllm-llama3-70b (0 of 2 approvals)")


def test_destructive_buttons_confirm_both() -> None:
    action = make_action(effect="destructive", tool="kube.delete_jobs",
                         args={"namespace": "batch", "label_selector": "app=runaway"},
                         preview={"summary": "Delete 14 jobs matching app=runaway"})
    card = approval_card(action, now=NOW)
    check_limits(card)
    approve, reject = elements(card, "button")
    for button, verb in ((approve, "Approve"), (reject, "Reject")):
        confirm = button["confirm"]
        assert set(confirm) >= {"title", "text", "confirm", "deny"}
        assert all(confirm[k]["type"] == "plain_text" for k in ("title", "confirm", "deny"))
        assert confirm["confirm"]["text"] == verb
        assert confirm["deny"]["text"] == "Cancel"
        assert "kube.delete_jobs on batch, jobs app=runaway" in confirm["text"]["text"]
    assert approve["confirm"]["style"] == "danger"
    assert card["blocks"][0]["text"]["text"].startswith(":warning: Destructive change")
    assert "*Effect*\n:warning: *destructive*" in rendered(card)


def test_approvals_k_of_n_and_who() -> None:
    action = make_action(approvals=[vote("alice", via="slack", minute=3),
                                    vote("bob", via="api", minute=4)],
                         required_approvals=3)
    card = approval_card(action, now=NOW)
    flat = "\n".join(rendered(card))
    assert "*2 of 3* (role approver)" in flat
    assert ("*Approved so far:* *alice* via slack at 2026-11-27 10:03 UTC; "
            "*bob* via api at 2026-11-27 10:04 UTC") in flat
    assert card["text"].endswith("(2 of 3 approvals)")


def test_expiry_past_and_absent() -> None:
    past = approval_card(make_action(expires_at=iso(NOW - timedelta(minutes=5))), now=NOW)
    assert "Expired 5 min ago (2026-11-27 10:05 UTC)" in "\n".join(rendered(past))
    later = approval_card(make_action(expires_at=iso(NOW + timedelta(hours=26, minutes=3))),
                          now=NOW)
    assert "Expires in 26 h 3 min" in "\n".join(rendered(later))
    none = approval_card(make_action(expires_at=None), now=NOW)
    assert "No expiry" in "\n".join(rendered(none))


def test_summary_stands_in_for_current_and_proposed() -> None:
    card = approval_card(make_action(preview={"summary": "Flush 3 keys under semcache:"},
                                     tool="cache.flush", args={"prefix": "semcache:"}),
                         now=NOW)
    summary = card["blocks"][1]["text"]["text"]
    assert summary == "Flush 3 keys under semcache:"
    assert "Change" not in summary
    assert [b["type"] for b in card["blocks"]].count("section") == 2  # no diff section


def test_block_ids_are_stable_per_action() -> None:
    first = approval_card(make_action(), now=NOW)
    later = approval_card(make_action(approvals=[vote("alice")]), now=NOW + timedelta(minutes=5))
    ids = [b["block_id"] for b in first["blocks"]]
    assert ids == [b["block_id"] for b in later["blocks"]]
    assert all(i.startswith("approval:inc7:kv-cache:scale:1") for i in ids)
    assert len(ids) == len(set(ids))
    done = decided_card(make_action(status="succeeded", approvals=[vote("a"), vote("b")]),
                        now=NOW)
    done_ids = [b["block_id"] for b in done["blocks"]]
    # Everything but the buttons keeps its id; the outcome takes the buttons' place.
    assert done_ids == [*ids[:-1][:-1], "approval:inc7:kv-cache:scale:1:outcome",
                        "approval:inc7:kv-cache:scale:1:footer"]
    long_id = "x" * 200 + ":" + "y" * 100
    card = approval_card(make_action(id=long_id[:200]), now=NOW)
    check_limits(card)
    digest_ids = [b["block_id"] for b in decided_card(make_action(id=long_id), now=NOW)["blocks"]]
    assert all(len(i) <= 255 for i in digest_ids) and len(set(digest_ids)) == len(digest_ids)
    assert digest_ids == [b["block_id"] for b in decided_card(make_action(id=long_id),
                                                              now=NOW)["blocks"]]


def test_approval_card_needs_an_id_that_fits_a_button() -> None:
    with pytest.raises(ValueError, match="action id"):
        approval_card(make_action(id=""), now=NOW)
    with pytest.raises(ValueError, match="action id"):
        approval_card(make_action(id="a" * 2001), now=NOW)


@pytest.mark.parametrize(("changes", "outcome"), [
    ({"status": "approved", "approvals": [vote("alice"), vote("bob", via="api", minute=5)]},
     ":white_check_mark: *Approved*: approved by *alice* via slack at 2026-11-27 10:03 UTC; "
     "*bob* via api at 2026-11-27 10:05 UTC. Waiting to execute."),
    ({"status": "approved", "required_approvals": 0, "approvals": [],
      "policy": {"outcome": "allow", "rule": "read-only-ish", "reason": "safe"}},
     ":white_check_mark: *Approved*: approved by policy rule `read-only-ish`. "
     "Waiting to execute."),
    ({"status": "rejected", "approvals": [vote("alice"), vote("carol", "reject", "slack", 6,
                                                               "not during <!here> peak")]},
     ":x: *Rejected* by *carol* via slack at 2026-11-27 10:06 UTC: "
     "not during &lt;!here&gt; peak"),
    ({"status": "rejected", "approvals": [], "error": "max_replicas 8 exceeded (10)",
      "policy": {"outcome": "deny", "rule": "scale-within-limits", "reason": "limit"}},
     ":x: *Denied by policy* rule `scale-within-limits`: max_replicas 8 exceeded (10)"),
    ({"status": "succeeded", "approvals": [vote("alice"), vote("bob")],
      "executed_at": "2026-11-27T10:07:30.000000Z", "result": {"replicas": 6}},
     ":white_check_mark: *Succeeded* at 2026-11-27 10:07 UTC; approved by *alice* via slack at "
     "2026-11-27 10:03 UTC; *bob* via slack at 2026-11-27 10:03 UTC."),
    ({"status": "failed", "approvals": [vote("alice")], "error": "409 Conflict from <api>"},
     ":boom: *Failed*: 409 Conflict from &lt;api&gt;\nApproved by *alice* via slack at "
     "2026-11-27 10:03 UTC."),
    ({"status": "stale", "error": "replicas are 5, the preview saw 4"},
     ":warning: *Not executed: stale*, the target changed after the preview that was "
     "approved: replicas are 5, the preview saw 4"),
    ({"status": "expired", "approvals": [vote("alice")]},
     ":hourglass: *Expired* at 2026-11-27 10:32 UTC with 1 of 2 approvals: nothing was "
     "executed."),
    ({"status": "cancelled", "error": "incident resolved"},
     ":no_entry_sign: *Cancelled*: incident resolved"),
])
def test_decided_card_outcomes(changes: dict[str, Any], outcome: str) -> None:
    action = make_action(effect="destructive", **changes)
    card = decided_card(action, now=NOW)
    check_limits(card)
    check_inert(card)
    assert "actions" not in [b["type"] for b in card["blocks"]]
    assert elements(card, "button") == []
    assert card["blocks"][-2]["block_id"] == f"approval:{action['id']}:outcome"
    assert card["blocks"][-2]["text"]["text"] == outcome
    # approval_card() of a decided action is the decided card: no buttons to click in vain.
    assert approval_card(action, now=NOW) == card


def test_execution_message() -> None:
    done = execution_message(make_action(status="succeeded", approvals=[vote("alice")],
                                         executed_at="2026-11-27T10:07:30Z",
                                         result={"replicas": 6, "gpus": 6}))
    check_limits(done)
    flat = "\n".join(rendered(done))
    assert "`kube.scale_deployment` on llm-serving/vllm-llama3-70b" in flat
    assert "*Succeeded* at 2026-11-27 10:07 UTC" in flat
    assert 'Result `{"replicas": 6, "gpus": 6}`' in flat
    assert "Undo recorded: `kube.scale_deployment`" in flat
    assert done["text"] == "Succeeded: kube.scale_deployment on llm-serving/vllm-llama3-70b"
    failed = execution_message(make_action(status="failed", error="timeout <@U1>"))
    check_inert(failed)
    assert "*Failed*: timeout &lt;@U1&gt;" in "\n".join(rendered(failed))
    assert failed["blocks"][0]["block_id"] == "execution:inc7:kv-cache:scale:1:outcome"


# --- incidents, findings, escalations, post-mortems, refusals -----------------------------


@pytest.mark.parametrize(("severity", "icon", "dot"), [
    ("critical", ":rotating_light:", ":red_circle:"),
    ("page", ":rotating_light:", ":red_circle:"),
    ("error", ":exclamation:", ":large_orange_circle:"),
    ("warning", ":warning:", ":large_yellow_circle:"),
    ("info", ":information_source:", ":large_blue_circle:"),
    ("bogus", ":grey_question:", ":white_circle:"),
])
def test_incident_message(severity: str, icon: str, dot: str) -> None:
    message = incident_message({**INCIDENT, "severity": severity})
    check_limits(message)
    header, fields, context = message["blocks"]
    assert header["text"]["text"] == f"{icon} KVCacheSaturation on vllm-llama3-70b"
    assert [f["text"] for f in fields["fields"]] == [
        f"*Severity*\n{dot} {severity}", "*Services*\nvllm-llama3-70b, chat-api",
        "*Status*\nopen", "*Investigation*\nwaiting approval", "*Incident*\n#7",
        "*Source*\nalertmanager"]
    assert context["elements"][0]["text"] == "Opened 2026-11-27 10:02 UTC · 3 alerts"
    assert message["text"] == (f"[{severity}] KVCacheSaturation on vllm-llama3-70b "
                               "(incident #7, open)")
    assert [b["block_id"] for b in message["blocks"]] == [
        "incident:7:header", "incident:7:fields", "incident:7:opened"]


def test_resolved_incident() -> None:
    message = incident_message({**INCIDENT, "status": "resolved",
                                "resolved_at": "2026-11-27T11:00:00Z"})
    assert message["blocks"][0]["text"]["text"].startswith(":white_check_mark: ")
    assert "resolved 2026-11-27 11:00 UTC" in message["blocks"][2]["elements"][0]["text"]


def test_log_pattern_finding() -> None:
    message = finding_message(PATTERNS)
    check_limits(message)
    check_inert(message)
    flat = "\n".join(rendered(message))
    assert flat.startswith("log_summarizer: 1,234 error lines")
    assert ":mag: *log_summarizer* (log patterns)" in flat
    assert "*Top 2 of 2 patterns*" in flat
    assert "*62.5 %* · 1,234 lines · error\n`upstream timeout after &lt;*&gt; ms model=&lt;*&gt;`" \
        in flat
    assert "*37.5 %* · 740 lines · error" in flat
    assert "seen 2026-11-27 10:01 UTC to 2026-11-27 10:09 UTC in chat-api" in flat
    assert "e.g. `upstream timeout after 30000 ms model=llama3-70b`" in flat


def test_cost_finding() -> None:
    message = finding_message(COSTS)
    check_limits(message)
    flat = "\n".join(rendered(message))
    fields = [f["text"] for f in message["blocks"][1]["fields"]]
    assert fields == ["*Burn rate*\n$412.50/h", "*Baseline*\n$38.00/h", "*Budget*\n$100.00/h",
                      "*Versus baseline*\n10.9x", "*Cost per query*\np50 $0.00, p99 $0.40"]
    assert "• `u-loop` $371.25 · 48,000,000 tokens · 9,120 requests" in flat
    assert ("*Runaway users*\n:warning: `u-loop`: 152 requests/min for 60 min; "
            "prompts 14.2x the median of other users") in flat


def test_finding_errors_and_injection_notes() -> None:
    errored = finding_message({"specialist": "log_summarizer", "kind": "log_patterns",
                               "summary": "Could not read the logs", "data": {
                                   "status": "error", "patterns": [],
                                   "error": "loki 502 <html>"}})
    assert errored["blocks"][-1]["elements"][0]["text"] == ":x: loki 502 &lt;html&gt;"
    flagged = finding_message({**PATTERNS, "data": {**PATTERNS["data"],
                                                    "injection": {"suspected": True}}})
    assert "Suspected prompt injection" in flagged["blocks"][-1]["elements"][0]["text"]
    bare = finding_message({"specialist": "x", "summary": "y", "data": "not a dict"})
    check_limits(bare)
    assert bare["text"] == "x: y"


def test_escalations() -> None:
    message = escalation_message(ESCALATED)
    check_limits(message)
    header, body, context = message["blocks"]
    assert header["text"]["text"] == ":sos: Escalated to ml-platform-oncall (incident #7)"
    assert body["text"]["text"] == (
        "*Escalated to ml-platform-oncall*\nKV cache still saturated after scaling\n"
        "*Why:* kv_cache_usage 0.97 &gt; 0.9 five minutes after the change")
    assert context["elements"][0]["text"] == (
        "incident.escalated at 2026-11-27 10:40 UTC · target "
        "`runbook:kv-cache-saturation/scale` · action `inc7:kv-cache:scale:1` · audit event 88")
    assert message["text"] == ("Escalated to ml-platform-oncall: incident #7: KV cache still "
                               "saturated after scaling")
    overdue = escalation_message(OVERDUE)
    check_limits(overdue)
    assert overdue["blocks"][1]["text"]["text"] == (
        "Action `inc7:kv-cache:scale:1` has waited *12 min* for 2 approval(s) from role "
        "approver.")
    assert overdue["text"] == "Approval overdue: action inc7:kv-cache:scale:1 waited 12 min"
    nobody = escalation_message({"type": "incident.escalated", "payload": {}})
    check_limits(nobody)
    assert nobody["blocks"][0]["text"]["text"] == ":sos: Escalated to a human (no incident)"


def test_postmortem_message() -> None:
    url = "https://git.example/ops/postmortems/2026-11-27-kv.md?a=1&b=2"
    message = postmortem_message(7, postmortem_markdown(SUMMARY), url)
    check_limits(message)
    link = "<https://git.example/ops/postmortems/2026-11-27-kv.md?a=1&amp;b=2|Read the full " \
           "post-mortem>"
    check_inert(message, allowed_links=(link,))
    header, summary, link_block, _ = message["blocks"]
    assert header["text"]["text"] == ":memo: Post-mortem: KVCacheSaturation on vllm-llama3-70b"
    assert summary["text"]["text"] == (
        "What fired: KVCacheSaturation on vllm-llama3-70b (severity critical).\n"
        "The incident opened at 10:02:00 on 2026-11-27.\n\nWhat was changed:\n"
        "• kube.scale_deployment succeeded")
    assert link_block["text"]["text"] == link
    assert message["text"] == ("Post-mortem draft for incident #7: Post-mortem: "
                               "KVCacheSaturation on vllm-llama3-70b")


@pytest.mark.parametrize("url", [
    None, "", "javascript:alert(1)", "https://x.example/a|b", "https://x.example/<!here>",
    "https://x.example/a b", "ftp://x.example/pm.md", "https://", "https://x.example/" + "a" * 2000,
])
def test_postmortem_without_a_usable_link(url: str | None) -> None:
    message = postmortem_message(7, postmortem_markdown(SUMMARY), url)
    check_limits(message)
    check_inert(message)
    assert message["blocks"][2]["elements"][0]["text"] == \
        "Full text: `metaops postmortem show 7`"


def test_postmortem_without_summary_section_uses_first_text() -> None:
    message = postmortem_message(3, "# Title\n\n## Impact\n\nUsers saw 5xx [ev:4].\n", None)
    assert message["blocks"][1]["text"]["text"] == "Users saw 5xx."
    empty = postmortem_message(3, "", None)
    check_limits(empty)
    assert empty["blocks"][0]["text"]["text"] == ":memo: Post-mortem: incident #3"
    assert empty["blocks"][1]["text"]["text"] == "_No summary yet._"


def test_ephemeral_refusal() -> None:
    message = ephemeral_refusal("you approved already <!channel> & @here")
    assert message["response_type"] == "ephemeral"
    assert message["replace_original"] is False
    assert message["blocks"][0]["text"]["text"] == (
        f":no_entry: *Not done:* you approved already &lt;!channel&gt; &amp; @{ZWSP}here")
    check_limits({"text": message["text"], "blocks": message["blocks"]})
    check_inert(message)


@pytest.mark.parametrize(("args", "target"), [
    ({"namespace": "llm-serving", "name": "vllm", "replicas": 2}, "llm-serving/vllm"),
    ({"namespace": "batch", "label_selector": "app=x"}, "batch, jobs app=x"),
    ({"path": "prompts/chat.md", "to_commit": "abc"}, "prompts/chat.md"),
    ({"flag": "new-router", "variant": "off"}, "flag new-router"),
    ({"alias": "fast", "target": "azure/gpt-4o"}, "alias fast"),
    ({"user_id": "u-loop"}, "user u-loop"),
    ({"prefix": "semcache:"}, "keys semcache:"),
    ({"global_rpm": 100, "per_user_rpm": 10}, "global_rpm=100, per_user_rpm=10"),
    ({}, "-"),
])
def test_action_target(args: dict[str, Any], target: str) -> None:
    assert action_target(args) == target


# --- untrusted text everywhere, huge inputs ----------------------------------------------


def poisoned(value: Any) -> Any:
    """Every string in `value` (keys kept) replaced by hostile text, ids and times kept."""
    if isinstance(value, dict):
        return {k: (v if k in ("id", "status", "effect", "decision", "kind", "type", "at",
                               "expires_at", "created_at", "executed_at", "ts", "outcome")
                    else poisoned(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [poisoned(v) for v in value]
    if isinstance(value, str):
        return f"{value} {EVIL}"
    return value


BUILDERS: list[tuple[str, Callable[[], dict[str, Any]]]] = [
    ("incident", lambda: incident_message(poisoned(INCIDENT))),
    ("patterns", lambda: finding_message(poisoned(PATTERNS))),
    ("costs", lambda: finding_message(poisoned(COSTS))),
    ("approval", lambda: approval_card(poisoned(make_action(
        effect="destructive", approvals=[vote("alice")])), now=NOW)),
    ("decided", lambda: decided_card(poisoned(make_action(
        status="rejected", approvals=[vote("bob", "reject", reason="no")])), now=NOW)),
    ("failed", lambda: decided_card(poisoned(make_action(status="failed", error="x")), now=NOW)),
    ("execution", lambda: execution_message(poisoned(make_action(
        status="succeeded", result={"note": "done"})))),
    ("escalation", lambda: escalation_message(poisoned(ESCALATED))),
    ("overdue", lambda: escalation_message(poisoned(OVERDUE))),
    ("postmortem", lambda: postmortem_message(7, postmortem_markdown([f"Summary {EVIL}"]),
                                              f"https://x.example/{EVIL}")),
    ("refusal", lambda: ephemeral_refusal(EVIL)),
]


@pytest.mark.parametrize(("name", "build"), BUILDERS, ids=[n for n, _ in BUILDERS])
def test_untrusted_text_is_inert_everywhere(name: str,
                                            build: Callable[[], dict[str, Any]]) -> None:
    message = build()
    check_inert(message)
    check_limits({"text": message["text"], "blocks": message["blocks"]})
    flat = "\n".join(rendered(message))
    assert "&lt;!channel&gt;" in flat
    assert "&lt;http://evil.example|click&gt;" in flat
    assert f"@{ZWSP}here" in flat and " &amp; " in flat


def test_huge_inputs_stay_within_limits() -> None:
    long = "x" * 50_000
    many = [vote(f"user{i}-{long[:300]}") for i in range(500)]
    messages = [
        incident_message({**INCIDENT, "title": long, "services": [long] * 500,
                          "status": long, "investigation": long, "source": long}),
        finding_message({**PATTERNS, "summary": long, "data": {"patterns": [
            {"template": long, "share": 0.1, "count": 10**12, "level": long, "services": [long],
             "exemplar": long, "first_seen": long, "last_seen": long}] * 1000}}),
        finding_message({**COSTS, "summary": long, "data": {
            **COSTS["data"], "top_users": [{"user_id": long, "cost_usd": 1e300}] * 1000,
            "runaway_users": [{"user_id": long, "reasons": [long] * 100}] * 1000}}),
        approval_card(make_action(effect="destructive", tool=long, args={"content": long,
                                                                         "path": long},
                                  preview={"summary": long, "diff": long + "\n" * 1000,
                                           "current": [long], "proposed": {"k": long}},
                                  policy={"rule": long, "reason": long}, approvals=many,
                                  requested_by=long), now=NOW),
        decided_card(make_action(status="failed", error=long, approvals=many), now=NOW),
        execution_message(make_action(status="failed", error=long, result={"r": long})),
        escalation_message({**ESCALATED, "payload": {"to": long, "message": long,
                                                     "reason": long}, "target": long}),
        postmortem_message(7, postmortem_markdown([long] * 10), None),
        ephemeral_refusal(long),
    ]
    for message in messages:
        check_limits({"text": message["text"], "blocks": message["blocks"]})
        assert len(json.dumps(message)) < 200_000
    card = messages[3]
    assert card["blocks"][0]["text"]["text"].endswith("…")
    diff = card["blocks"][2]["text"]["text"]
    assert diff.startswith("*Diff*\n```\n") and diff.endswith("…\n```")
    assert len(diff) <= 3000
    assert elements(card, "button")[0]["value"] == card["blocks"][-1]["elements"][0]["value"]


def test_fit_blocks_caps_at_fifty() -> None:
    blocks = [{"type": "divider"} for _ in range(60)]
    fitted = fit_blocks(blocks)
    assert len(fitted) == 50
    assert fitted[-1]["type"] == "context"
    assert fitted[-1]["elements"][0]["text"] == "… 11 more blocks not shown"
    assert fit_blocks(blocks[:50]) == blocks[:50]


# --- the click comes back as Slack sends it -----------------------------------------------


def click(payload: dict[str, Any], block_id: str, action_id: str,
          action_ts: str) -> dict[str, Any]:
    """The block_actions `actions[0]` Slack sends for a click on a button of the message in
    `payload`: the button's fields, its block's id, the text with emoji set, no confirm."""
    block = next(b for b in payload["message"]["blocks"] if b.get("block_id") == block_id)
    button = next(e for e in block["elements"] if e["action_id"] == action_id)
    out = {"action_id": action_id, "block_id": block_id,
           "text": {**button["text"], "emoji": True}, "value": button["value"],
           "type": "button", "action_ts": action_ts}
    if "style" in button:
        out["style"] = button["style"]
    return out


def test_click_model_matches_the_real_payload() -> None:
    real = json.loads((WIRE / "slack_block_actions.json").read_text())
    sent = real["actions"][0]
    assert click(real, sent["block_id"], sent["action_id"], sent["action_ts"]) == sent
    form = (WIRE / "slack_block_actions.form.txt").read_text().strip()
    assert json.loads(parse_qs(form)["payload"][0]) == real


@pytest.mark.parametrize("action_id", [APPROVE_ACTION, REJECT_ACTION])
def test_builder_ids_round_trip_through_block_actions(action_id: str) -> None:
    action = make_action(effect="destructive")
    card = approval_card(action, now=NOW)
    payload = copy.deepcopy(json.loads((WIRE / "slack_block_actions.json").read_text()))
    payload["message"]["text"], payload["message"]["blocks"] = card["text"], card["blocks"]
    payload["actions"] = [click(payload, f"approval:{action['id']}", action_id,
                                "1749737995.448120")]
    body = urlencode({"payload": json.dumps(payload, separators=(",", ":"))})
    received = json.loads(parse_qs(body)["payload"][0])
    pressed = received["actions"][0]
    assert pressed["action_id"] == action_id
    assert pressed["value"] == action["id"]
    assert pressed["block_id"] == f"approval:{action['id']}"
    assert "confirm" not in pressed  # Slack shows the dialog; only a confirmed click arrives
    # The message to update in place is the one that carried the card.
    assert (received["container"]["channel_id"], received["container"]["message_ts"]) == (
        "C05LLMOPS01", "1749737012.345679")


def test_bolt_routes_the_builder_action_id() -> None:
    """A real slack_bolt App, signed request, listener keyed on the builder's action_id."""
    secret = "test-secret"
    app = App(signing_secret=secret, token_verification_enabled=False,
              process_before_response=True,
              authorize=lambda **_: AuthorizeResult(enterprise_id=None, team_id="T0A1B2C3D",
                                                    bot_user_id="U07OPSBOT01",
                                                    bot_token="xoxb-test"))
    seen: list[tuple[str, str]] = []

    @app.action(APPROVE_ACTION)
    def on_approve(ack: Ack, body: dict[str, Any]) -> None:
        ack()
        seen.append((body["actions"][0]["value"], body["user"]["id"]))

    action = make_action()
    card = approval_card(action, now=NOW)
    payload = json.loads((WIRE / "slack_block_actions.json").read_text())
    payload["message"]["blocks"] = card["blocks"]
    payload["actions"] = [click(payload, f"approval:{action['id']}", APPROVE_ACTION,
                                "1749737995.448120")]
    raw = urlencode({"payload": json.dumps(payload)})
    ts = str(int(time.time()))
    signature = SignatureVerifier(secret).generate_signature(timestamp=ts, body=raw)
    assert signature is not None
    response = app.dispatch(BoltRequest(body=raw, headers={
        "content-type": ["application/x-www-form-urlencoded"],
        "x-slack-request-timestamp": [ts], "x-slack-signature": [signature]}))
    assert response.status == 200
    assert seen == [(action["id"], "U02ONCALL01")]
