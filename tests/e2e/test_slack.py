"""Slack end to end: `metaops serve` with the real slack_bolt/slack_sdk against a wire-level
fake of Slack's Web API, receiving requests signed as Slack signs them."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from tests.fake_slack import (
    BOT_TOKEN,
    BOT_USER_ID,
    CHANNEL_ID,
    DM_CHANNEL_ID,
    ONCALL_USER_ID,
    SIGNING_SECRET,
    FakeSlack,
    app_mention_event,
    event_body,
    serve_slack,
    sign,
    url_verification_body,
)
from tests.integration.test_cli import cli
from tests.support import ADMIN_TOKEN, SCENARIOS, WEBHOOK_TOKEN, ServerProcess, wait_until

pytestmark = pytest.mark.slow

VIEWER_ID, STRANGER_ID, SECOND_ID = "U03VIEWER01", "U04STRANGER", "U05SECOND01"
STORAGE_CHANNEL = "C06STORAGE1"
FORM = "application/x-www-form-urlencoded"
JSON = "application/json"


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with serve_slack() as fake:
        fake.add_user(VIEWER_ID, "vic.viewer")
        fake.add_user(STRANGER_ID, "sam.stranger")
        fake.add_user(SECOND_ID, "sasha.second")
        yield fake


def _server(server_factory: Any, slack: FakeSlack, **env: str) -> ServerProcess:
    folder = SCENARIOS / "provider-outage"
    server: ServerProcess = server_factory(
        METAOPS_LOGS_PATH=json.dumps([str(folder / "logs.jsonl")]),
        METAOPS_SLACK_BOT_TOKEN=BOT_TOKEN, METAOPS_SLACK_SIGNING_SECRET=SIGNING_SECRET,
        METAOPS_SLACK_CHANNEL=CHANNEL_ID, METAOPS_SLACK_API_URL=slack.api_url,
        METAOPS_SLACK_RETRY_MAX_SECONDS="1", **env)
    server.start()
    people = ((ONCALL_USER_ID, "priya", "approver"), (VIEWER_ID, "vic", "viewer"),
              (SECOND_ID, "sasha", "approver"), (BOT_USER_ID, "ops-bot", "admin"))
    with ThreadPoolExecutor(len(people)) as pool:  # each CLI run is a new interpreter
        runs = list(pool.map(lambda p: cli(["principal", "add", "--name", p[1], "--slack-user",
                                             p[0], "--role", p[2]], **server.env()), people))
    assert all(r.returncode == 0 for r in runs), [r.stderr for r in runs]
    return server


def _send_alert(server: ServerProcess) -> None:
    sent = cli(["alert", "send", str(SCENARIOS / "provider-outage" / "alerts.json")],
               METAOPS_TOKEN=WEBHOOK_TOKEN, METAOPS_URL=server.url)
    assert sent.returncode == 0, sent.stderr


def _post(server: ServerProcess, body: bytes, ctype: str,
          headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.post(f"{server.url}/slack/events", content=body,
                      headers={"Content-Type": ctype, **(headers or {})}, timeout=10)


def _signed(server: ServerProcess, body: bytes, ctype: str, **extra: str) -> httpx.Response:
    return _post(server, body, ctype, {**sign(body, SIGNING_SECRET), **extra})


def _card(slack: FakeSlack, thread: list[dict[str, Any]]) -> dict[str, Any] | None:
    for msg in thread:
        for block in msg.get("blocks") or []:
            if str(block.get("block_id", "")).startswith("approval:") and block.get(
                    "type") == "actions":
                return msg
    return None


def _thread(slack: FakeSlack) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    top = slack.history(CHANNEL_ID)
    assert len(top) == 1, top
    return top[0], slack.thread(CHANNEL_ID, top[0]["ts"])[1:]


def _action(admin: httpx.Client) -> dict[str, Any]:
    actions: list[dict[str, Any]] = admin.get("/api/v1/actions").json()["actions"]
    assert len(actions) == 1
    return actions[0]


def _ephemeral_for(slack: FakeSlack, user: str, words: str) -> bool:
    return any(e["user"] == user and words in e["text"] for e in slack.ephemerals)


def test_alert_to_thread_to_approval_in_slack(server_factory: Any, slack: FakeSlack) -> None:
    server = _server(server_factory, slack)
    _send_alert(server)

    def carded() -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
        if not slack.history(CHANNEL_ID):
            return None
        top, replies = _thread(slack)
        return (top, replies) if _card(slack, replies) and len(replies) >= 2 else None

    top, replies = wait_until(carded, "an incident thread with an approval card", server)
    assert "Upstream LLM provider" in top["text"] or "incident #1" in top["text"]
    assert any("log_summarizer" in r["text"] for r in replies), replies  # the finding
    card = _card(slack, replies)
    assert card is not None
    with server.client(ADMIN_TOKEN) as admin:
        action = _action(admin)
        assert action["status"] == "pending_approval"
        # Saving the Request URL in Slack's app settings: the signed challenge is echoed.
        secret_word = "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"
        echoed = _signed(server, url_verification_body(secret_word), JSON)
        assert echoed.status_code == 200 and secret_word in echoed.text
        click = slack.click_body(ONCALL_USER_ID, "metaops_approve", channel=CHANNEL_ID,
                                 ts=card["ts"])
        # Unsigned, wrongly signed, or replayed from more than 5 minutes ago: 401, no effect.
        assert _post(server, click, FORM).status_code == 401
        bad = sign(click, "not-the-secret")
        assert _post(server, click, FORM, bad).status_code == 401
        old = sign(click, SIGNING_SECRET, int(time.time()) - 301)
        assert _post(server, click, FORM, old).status_code == 401
        # An unmapped user's click and a viewer's click: refused to them alone, audited.
        for user, words in ((STRANGER_ID, "not mapped"), (VIEWER_ID, "approver role"),
                            (BOT_USER_ID, "bot's own identity")):
            body = slack.click_body(user, "metaops_approve", channel=CHANNEL_ID, ts=card["ts"])
            assert _signed(server, body, FORM).status_code == 200
            wait_until(lambda u=user, w=words: _ephemeral_for(slack, u, w),
                       f"a refusal for {user}", server)
        refused = admin.get("/api/v1/audit", params={"type": "slack.refused"}).json()["events"]
        assert {e["outcome"] for e in refused} == {"unmapped", "forbidden"}
        assert len(refused) == 3
        assert _action(admin)["status"] == "pending_approval"
        assert _action(admin)["approvals"] == []

        # The approver's click, delivered three times (Slack retries): one decision.
        for retry in ("", "1", "2"):
            extra = {"X-Slack-Retry-Num": retry, "X-Slack-Retry-Reason": "http_timeout"}
            answer = _signed(server, click, FORM, **(extra if retry else {}))
            assert answer.status_code == 200
        done = wait_until(lambda: (a := _action(admin))["status"] == "succeeded" and a,
                          "the approved action to run", server)
        assert [(v["by"], v["via"]) for v in done["approvals"]] == [("priya", "slack")]
        events = [e for e in admin.get("/api/v1/audit", params={
            "incident_id": 1, "limit": 1000}).json()["events"] if e["action_id"] == done["id"]]
        kinds = [e["type"] for e in events]
        assert kinds.count("approval.approve") == 1 and kinds.count("action.succeeded") == 1
        vote = next(e for e in events if e["type"] == "approval.approve")
        assert vote["actor"] == {"kind": "human", "id": "priya", "via": "slack"}
        assert admin.get("/api/v1/audit/verify").json()["ok"] is True

    def updated() -> dict[str, Any] | None:
        msg = slack.message(CHANNEL_ID, card["ts"])
        gone = not any(b.get("type") == "actions" for b in msg.get("blocks") or [])
        shown = json.dumps(msg["blocks"])
        return msg if gone and "priya" in shown and "Succeeded" in shown else None

    wait_until(updated, "the card updated in place: no buttons, outcome shown", server)
    assert len(slack.versions(CHANNEL_ID, card["ts"])) >= 2
    assert len(slack.history(CHANNEL_ID)) == 1  # updated in place: no second card
    wait_until(lambda: any("gitops.set_model_alias" in r["text"] and r["ts"] != card["ts"]
                           for r in _thread(slack)[1]), "the execution in the thread", server)
    # Resolving redraws the top message (status) and the post-mortem draft joins the thread.
    with server.client(ADMIN_TOKEN) as admin:
        assert admin.post("/api/v1/incidents/1/resolve").status_code == 200
    wait_until(lambda: "resolved" in slack.message(CHANNEL_ID, top["ts"])["text"],
               "the top message showing the resolved status", server)
    assert len(slack.versions(CHANNEL_ID, top["ts"])) >= 2
    wait_until(lambda: any("Post-mortem" in r["text"] for r in _thread(slack)[1]),
               "the post-mortem in the thread", server)
    # A double click (two distinct clicks, same person) after the fact changes nothing.
    again = slack.click_body(ONCALL_USER_ID, "metaops_approve", channel=CHANNEL_ID,
                             ts=card["ts"]) if _card(slack, [slack.message(
                                 CHANNEL_ID, card["ts"])]) else None
    assert again is None  # the buttons are gone


# On PostgreSQL: chat in test_chat, receipts in the full loop above, the outbox in
# test_slack_outbox.
@pytest.mark.sqlite_pass
def test_chat_in_slack_answers_by_role(server_factory: Any, slack: FakeSlack) -> None:
    server = _server(server_factory, slack)
    _send_alert(server)
    top = wait_until(lambda: slack.history(CHANNEL_ID), "the incident's top message", server)[0]
    with server.client(ADMIN_TOKEN) as admin:
        wait_until(lambda: admin.get("/api/v1/incidents/1").json()["findings"],
                   "the finding", server)
        api_view = admin.get("/api/v1/incidents/1").json()
    # A mention in the incident's thread: the reply goes in the thread, with the API's facts.
    mention = slack.mention_body(ONCALL_USER_ID, "incident 1", channel=CHANNEL_ID,
                                 thread_ts=top["ts"])
    assert _signed(server, mention, JSON).status_code == 200
    reply = wait_until(lambda: [m for m in slack.thread(CHANNEL_ID, top["ts"])
                                if (m.get("bot_id") and "Findings" in m.get("text", ""))
                                or (m.get("bot_id") and api_view["title"] in m.get("text", "")
                                and m["ts"] != top["ts"])], "the reply in the thread", server)
    assert api_view["title"] in reply[-1]["text"]
    # The same event delivered again (a retry) is answered once.
    assert _signed(server, mention, JSON, **{"X-Slack-Retry-Num": "1"}).status_code == 200
    # /metaops help: a viewer sees reads only; an approver also sees decisions and proposals.
    for user, has_approve in ((VIEWER_ID, False), (ONCALL_USER_ID, True)):
        body = slack.slash_command_body(user, "/metaops", "help", channel=CHANNEL_ID)
        answer = _signed(server, body, FORM)
        assert answer.status_code == 200
        hook = wait_until(lambda u=user: [h for h in slack.hooks
                                          if "Commands for the" in h.payload.get("text", "")
                                          and (u == VIEWER_ID) == ("viewer" in
                                                                   h.payload["text"])],
                          f"help for {user}", server)[-1]
        assert ("approve ACTION_ID" in hook.payload["text"]) is has_approve
        assert "logs SERVICE" in hook.payload["text"]
    # A proposal asked for in the incident's thread belongs to the incident, with the asker
    # as its requester; it waits for approval.
    ask = slack.mention_body(ONCALL_USER_ID, "flag refund-tool off", channel=CHANNEL_ID,
                             thread_ts=top["ts"])
    assert _signed(server, ask, JSON).status_code == 200
    with server.client(ADMIN_TOKEN) as admin:
        proposed = wait_until(lambda: [a for a in admin.get("/api/v1/actions").json()["actions"]
                                       if a["tool"] == "gitops.set_flag"], "the proposal", server)
    assert proposed[0]["incident_id"] == 1 and proposed[0]["requested_by"] == "priya"
    assert proposed[0]["status"] == "pending_approval"
    # A DM from an unmapped user: refused, nothing else.
    dm = event_body({"type": "message", "channel_type": "im", "channel": DM_CHANNEL_ID,
                     "user": STRANGER_ID, "text": "status", "ts": "1700000999.000100"})
    assert _signed(server, dm, JSON).status_code == 200
    wait_until(lambda: _ephemeral_for(slack, STRANGER_ID, "not mapped"), "DM refusal", server)
    replies = [m for m in slack.thread(CHANNEL_ID, top["ts"]) if m.get("bot_id")]
    mentions_answered = [m for m in replies if api_view["title"] in m.get("text", "")
                         and m["ts"] != top["ts"] and not _card(slack, [m])]
    assert len(mentions_answered) == 1
    _ = app_mention_event  # the builder behind mention_body


@pytest.mark.sqlite_pass
def test_slack_down_never_blocks_ingest_or_rest_approvals(server_factory: Any,
                                                            slack: FakeSlack) -> None:
    slack.add_channel(STORAGE_CHANNEL, "storage-oncall")
    routes = [{"match": {"team": "storage", "severity": "warning"}, "channel": STORAGE_CHANNEL}]
    server = _server(server_factory, slack, METAOPS_SLACK_ROUTES=json.dumps(routes))
    _send_alert(server)
    card = wait_until(lambda: slack.history(CHANNEL_ID) and _card(slack, _thread(slack)[1]),
                      "the approval card", server)
    slack.outage(True)  # every Web API call answers HTTP 500
    with server.client(ADMIN_TOKEN) as admin:
        action = _action(admin)
        approved = admin.post(f"/api/v1/actions/{action['id']}/approve")
        assert approved.status_code == 200, approved.text
        wait_until(lambda: _action(admin)["status"] == "succeeded", "REST approval runs", server)
        # Ingest keeps working too: a second alert group opens a second incident.
        slack.refuse_connections()
        other = {"version": "4", "groupKey": "{}:{alertname=\"DiskFull\"}", "status": "firing",
                 "receiver": "metaops", "groupLabels": {"alertname": "DiskFull"},
                 "commonLabels": {}, "commonAnnotations": {}, "externalURL": "http://am",
                 "alerts": [{"status": "firing", "labels": {"alertname": "DiskFull",
                                                            "severity": "warning",
                                                            "team": "storage"},
                             "annotations": {"summary": "disk full"},
                             "startsAt": "2026-11-28T10:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
                             "fingerprint": "d15cf011"}]}
        posted = httpx.post(f"{server.url}/webhooks/alertmanager", json=other, timeout=10,
                            headers={"Authorization": f"Bearer {WEBHOOK_TOKEN}"})
        assert posted.status_code == 202, posted.text
        assert len(admin.get("/api/v1/incidents").json()["incidents"]) == 2
    assert len(slack.history(CHANNEL_ID)) == 1  # nothing got through during the outage
    slack.heal()
    slack.rate_limit(1, retry_after=1)  # and a 429 on the way back: honoured, then delivered

    def recovered() -> bool:
        msg = slack.message(CHANNEL_ID, card["ts"])
        no_buttons = not any(b.get("type") == "actions" for b in msg.get("blocks") or [])
        return no_buttons and len(slack.history(STORAGE_CHANNEL)) == 1

    wait_until(recovered, "delivery after recovery: card updated, second incident posted",
               server)
    # The storage team's incident went to its own channel (a route on team and severity).
    assert "disk full" in slack.history(STORAGE_CHANNEL)[0]["text"].lower()
    assert len(slack.history(CHANNEL_ID)) == 1
    limited = [c for c in slack.calls if c.status == 429]
    assert len(limited) == 1
    after = [c for c in slack.calls if c.status == 200 and c.method.startswith("chat.")]
    assert after, "nothing delivered after the 429"
