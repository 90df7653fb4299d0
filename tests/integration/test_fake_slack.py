"""The fake Slack Web API driven by the real slack_sdk clients (sync and async) and slack_bolt,
and the signing helpers and body builders checked against the reference wire fixtures."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.error import URLError
from urllib.parse import parse_qs

import aiohttp
import pytest
from slack_bolt import App, BoltRequest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler
from slack_sdk.signature import Clock, SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient

from tests.fake_slack import (
    APP_ID,
    BOT_ID,
    BOT_TOKEN,
    BOT_USER_ID,
    CHANNEL_ID,
    DM_CHANNEL_ID,
    ONCALL_USER_ID,
    SIGNING_SECRET,
    TEAM_ID,
    FakeSlack,
    block_actions_body,
    event_body,
    serve_slack,
    sign,
    slash_command_body,
    url_verification_body,
)

WIRE = Path("/work/shared/reference/wire")


def wire(name: str) -> Any:
    return json.loads((WIRE / name).read_text(encoding="utf-8"))


ALERT_REQUEST = wire("slack_chat_postMessage_request.json")
UPDATE_REQUEST = wire("slack_chat_update_request.json")


class FrozenClock(Clock):
    def __init__(self, now: float) -> None:
        self.at = now

    def now(self) -> float:
        return self.at


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    with serve_slack() as served:
        yield served


def sync_client(fake: FakeSlack, token: str | None = BOT_TOKEN, **kwargs: Any) -> WebClient:
    return WebClient(token=token, base_url=fake.api_url, **kwargs)


def async_client(fake: FakeSlack, token: str | None = BOT_TOKEN,
                 **kwargs: Any) -> AsyncWebClient:
    return AsyncWebClient(token=token, base_url=fake.api_url, **kwargs)


# -- Web API: the happy paths -------------------------------------------------------------------

def test_auth_test_answers_who_the_bot_is_and_the_call_is_recorded(fake: FakeSlack) -> None:
    resp = sync_client(fake).auth_test()

    assert resp.status_code == 200
    assert resp["user_id"] == BOT_USER_ID and resp["bot_id"] == BOT_ID
    assert resp["team_id"] == TEAM_ID and resp["url"] == "https://llm-platform.slack.com/"
    [call] = fake.calls_to("auth.test")
    assert call.ok and call.http_method == "POST"
    assert call.headers["authorization"] == f"Bearer {BOT_TOKEN}"
    assert fake.api_url == f"http://127.0.0.1:{fake.port}/api/"


async def test_auth_test_with_the_async_client(fake: FakeSlack) -> None:
    resp = await async_client(fake).auth_test()

    assert resp["ok"] is True and resp["user_id"] == BOT_USER_ID
    assert fake.calls_to("auth.test")[0].headers["authorization"] == f"Bearer {BOT_TOKEN}"


def test_post_message_then_replies_in_its_thread(fake: FakeSlack) -> None:
    client = sync_client(fake)

    card = client.chat_postMessage(**ALERT_REQUEST)
    first = client.chat_postMessage(channel=CHANNEL_ID, text="looking", thread_ts=card["ts"])
    second = client.chat_postMessage(channel=CHANNEL_ID, text="found it", thread_ts=card["ts"])

    assert card["channel"] == CHANNEL_ID
    assert card["message"]["blocks"] == ALERT_REQUEST["blocks"]
    assert card["message"]["bot_id"] == BOT_ID and card["message"]["ts"] == card["ts"]
    assert first["message"]["thread_ts"] == card["ts"]
    stamps = [card["ts"], first["ts"], second["ts"]]
    assert len(set(stamps)) == 3 and stamps == sorted(stamps)
    assert all(len(ts.split(".")[1]) == 6 and ts.startswith("17") for ts in stamps)
    thread = fake.thread(CHANNEL_ID, card["ts"])
    assert [m["text"] for m in thread] == [ALERT_REQUEST["text"], "looking", "found it"]
    assert thread[0]["reply_count"] == 2 and thread[0]["latest_reply"] == second["ts"]
    assert [m["ts"] for m in fake.history(CHANNEL_ID)] == [card["ts"]]
    # The request as sent: JSON, blocks and metadata as objects.
    call = fake.calls_to("chat.postMessage")[0]
    assert call.headers["content-type"].startswith("application/json")
    assert call.params["blocks"] == ALERT_REQUEST["blocks"]
    assert call.params["metadata"]["event_type"] == "ops_agent_alert"
    assert fake.message(CHANNEL_ID, card["ts"])["metadata"] == ALERT_REQUEST["metadata"]


def test_conversations_replies_returns_the_thread_to_both_clients(fake: FakeSlack) -> None:
    client = sync_client(fake)
    card = client.chat_postMessage(channel=CHANNEL_ID, text="alert")
    client.chat_postMessage(channel=CHANNEL_ID, text="reply", thread_ts=card["ts"])

    replies = client.conversations_replies(channel=CHANNEL_ID, ts=card["ts"])

    assert [m["text"] for m in replies["messages"]] == ["alert", "reply"]
    with pytest.raises(SlackApiError) as err:
        client.conversations_replies(channel=CHANNEL_ID, ts="1.000000")
    assert err.value.response["error"] == "thread_not_found"


async def test_async_client_posts_in_a_thread_and_reads_it_back_with_get(fake: FakeSlack) -> None:
    client = async_client(fake)
    parent = fake.add_message(CHANNEL_ID, "<@U07OPSBOT01> is chat-api down?")

    reply = await client.chat_postMessage(channel=CHANNEL_ID, text="checking", thread_ts=parent)
    replies = await client.conversations_replies(channel=CHANNEL_ID, ts=parent)

    assert reply["message"]["parent_user_id"] == ONCALL_USER_ID
    assert [m["text"] for m in replies["messages"]] == ["<@U07OPSBOT01> is chat-api down?",
                                                        "checking"]
    assert fake.calls_to("conversations.replies")[0].http_method == "GET"


def test_chat_update_replaces_the_message_in_place(fake: FakeSlack) -> None:
    client = sync_client(fake)
    card = client.chat_postMessage(**ALERT_REQUEST)
    client.chat_postMessage(channel=CHANNEL_ID, text="reply", thread_ts=card["ts"])

    request: dict[str, Any] = {**UPDATE_REQUEST, "ts": card["ts"]}
    updated = client.chat_update(**request)

    assert updated["ts"] == card["ts"] and updated["text"] == UPDATE_REQUEST["text"]
    assert updated["message"]["blocks"] == UPDATE_REQUEST["blocks"]
    current = fake.message(CHANNEL_ID, card["ts"])
    assert current["text"] == UPDATE_REQUEST["text"]
    assert current["blocks"] == UPDATE_REQUEST["blocks"]
    assert current["edited"]["user"] == BOT_USER_ID
    assert [m["text"] for m in fake.thread(CHANNEL_ID, card["ts"])] == [UPDATE_REQUEST["text"],
                                                                        "reply"]
    assert [v["text"] for v in fake.versions(CHANNEL_ID, card["ts"])] == [
        ALERT_REQUEST["text"], UPDATE_REQUEST["text"]]
    # Omitted blocks are kept; an empty list removes them.
    client.chat_update(channel=CHANNEL_ID, ts=card["ts"], text="text only")
    assert fake.message(CHANNEL_ID, card["ts"])["blocks"] == UPDATE_REQUEST["blocks"]
    client.chat_update(channel=CHANNEL_ID, ts=card["ts"], text="no blocks", blocks=[])
    assert "blocks" not in fake.message(CHANNEL_ID, card["ts"])


def test_chat_update_errors_like_slack(fake: FakeSlack) -> None:
    client = sync_client(fake)
    human = fake.add_message(CHANNEL_ID, "a human wrote this")
    cases: list[tuple[dict[str, Any], str]] = [
        ({"channel": CHANNEL_ID, "ts": "1700009999.000100"}, "message_not_found"),
        ({"channel": "#llm-incidents", "ts": human}, "channel_not_found"),
        ({"channel": CHANNEL_ID, "ts": human}, "cant_update_message")]
    for where, error in cases:
        with pytest.raises(SlackApiError) as err:
            client.chat_update(**where, text="edited")
        assert err.value.response.status_code == 200
        assert err.value.response["error"] == error
    assert fake.message(CHANNEL_ID, human)["text"] == "a human wrote this"


async def test_async_chat_update(fake: FakeSlack) -> None:
    client = async_client(fake)
    card = await client.chat_postMessage(channel=CHANNEL_ID, text="firing")

    await client.chat_update(channel=CHANNEL_ID, ts=card["ts"], text="resolved")

    assert fake.message(CHANNEL_ID, card["ts"])["text"] == "resolved"
    with pytest.raises(SlackApiError) as err:
        await client.chat_update(channel=CHANNEL_ID, ts="1700009999.000100", text="x")
    assert err.value.response["error"] == "message_not_found"


def test_channels_resolve_by_name_and_user_and_refuse_unknown_ones(fake: FakeSlack) -> None:
    client = sync_client(fake)
    fake.add_channel("C09NOTJOIN1", "random", is_member=False)

    by_name = client.chat_postMessage(channel="#llm-incidents", text="by name")
    to_user = client.chat_postMessage(channel=ONCALL_USER_ID, text="a DM")

    assert by_name["channel"] == CHANNEL_ID
    assert to_user["channel"] == DM_CHANNEL_ID
    assert [m["text"] for m in fake.history(DM_CHANNEL_ID)] == ["a DM"]
    for channel, error in (("C0NOSUCH001", "channel_not_found"), ("C09NOTJOIN1", "not_in_channel")):
        with pytest.raises(SlackApiError) as err:
            client.chat_postMessage(channel=channel, text="x")
        assert err.value.response["error"] == error
    with pytest.raises(SlackApiError) as err, pytest.warns(UserWarning, match="`text`"):
        client.chat_postMessage(channel=CHANNEL_ID, text="")
    assert err.value.response["error"] == "no_text"


def test_post_ephemeral_is_seen_by_one_user_and_not_in_the_channel(fake: FakeSlack) -> None:
    client = sync_client(fake)

    resp = client.chat_postEphemeral(channel=CHANNEL_ID, user=ONCALL_USER_ID,
                                     text="only you can see this")

    assert resp["ok"] is True and resp["message_ts"]
    assert fake.ephemerals == [{"channel": CHANNEL_ID, "user": ONCALL_USER_ID,
                                "ts": resp["message_ts"], "text": "only you can see this"}]
    assert fake.history(CHANNEL_ID) == []
    with pytest.raises(SlackApiError) as err:
        client.chat_postEphemeral(channel=CHANNEL_ID, user="U0NOBODY001", text="x")
    assert err.value.response["error"] == "user_not_in_channel"


async def test_async_post_ephemeral(fake: FakeSlack) -> None:
    resp = await async_client(fake).chat_postEphemeral(channel=CHANNEL_ID, user=ONCALL_USER_ID,
                                                       text="psst")

    assert fake.ephemerals[0]["ts"] == resp["message_ts"]
    assert fake.ephemerals[0]["text"] == "psst"


def test_users_info_known_and_unknown(fake: FakeSlack) -> None:
    client = sync_client(fake)
    fake.add_user("U03SRE00001", "sam.sre", real_name="Sam Okafor", is_admin=True)

    priya = client.users_info(user=ONCALL_USER_ID)["user"]
    sam = client.users_info(user="U03SRE00001")["user"]
    bot = client.users_info(user=BOT_USER_ID)["user"]

    assert priya["name"] == "priya.oncall" and priya["profile"]["real_name"] == "Priya Raman"
    assert sam["is_admin"] is True and sam["team_id"] == TEAM_ID
    assert bot["is_bot"] is True and bot["profile"]["bot_id"] == BOT_ID
    with pytest.raises(SlackApiError) as err:
        client.users_info(user="U0NOBODY001")
    assert err.value.response["error"] == "user_not_found"


async def test_async_users_info_sends_get(fake: FakeSlack) -> None:
    resp = await async_client(fake).users_info(user=ONCALL_USER_ID)

    assert resp["user"]["id"] == ONCALL_USER_ID
    [call] = fake.calls_to("users.info")
    assert call.http_method == "GET" and call.params == {"user": ONCALL_USER_ID}


def test_form_encoded_calls_parse_blocks_and_accept_a_token_field(fake: FakeSlack) -> None:
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "*hi*"}}]

    resp = sync_client(fake).api_call(
        "chat.postMessage", params={"channel": CHANNEL_ID, "text": "hi",
                                    "blocks": json.dumps(blocks)})
    by_field = sync_client(fake, token=None).api_call("auth.test", params={"token": BOT_TOKEN})

    assert resp["message"]["blocks"] == blocks
    call = fake.calls_to("chat.postMessage")[0]
    assert call.headers["content-type"] == "application/x-www-form-urlencoded"
    assert call.params["blocks"] == blocks
    assert by_field["user_id"] == BOT_USER_ID


# -- authentication -----------------------------------------------------------------------------

def test_wrong_or_missing_token(fake: FakeSlack) -> None:
    with pytest.raises(SlackApiError) as err:
        sync_client(fake, token="xoxb-not-the-right-one").chat_postMessage(channel=CHANNEL_ID,
                                                                           text="x")
    assert err.value.response.status_code == 200
    assert err.value.response.data == {"ok": False, "error": "invalid_auth"}
    with pytest.raises(SlackApiError) as err:
        sync_client(fake, token=None).auth_test()
    assert err.value.response["error"] == "not_authed"
    assert fake.history(CHANNEL_ID) == []


async def test_wrong_token_with_the_async_client(fake: FakeSlack) -> None:
    with pytest.raises(SlackApiError) as err:
        await async_client(fake, token="xoxb-revoked").auth_test()
    assert err.value.response["error"] == "invalid_auth"


# -- failure modes ------------------------------------------------------------------------------

def test_rate_limited_call_raises_with_retry_after(fake: FakeSlack) -> None:
    fake.rate_limit(1, retry_after=7)
    client = sync_client(fake)

    with pytest.raises(SlackApiError) as err:
        client.chat_postMessage(channel=CHANNEL_ID, text="alert")

    assert err.value.response.status_code == 429
    assert err.value.response.headers["Retry-After"] == "7"
    assert err.value.response["error"] == "ratelimited"
    assert client.chat_postMessage(channel=CHANNEL_ID, text="alert")["ok"] is True
    assert [c.status for c in fake.calls_to("chat.postMessage")] == [429, 200]


def test_rate_limit_retry_handler_waits_and_succeeds(fake: FakeSlack) -> None:
    fake.rate_limit(1, retry_after=0, method="chat.postMessage")
    client = sync_client(fake, retry_handlers=[RateLimitErrorRetryHandler(max_retry_count=1)])

    client.auth_test()  # another method: not limited
    resp = client.chat_postMessage(channel=CHANNEL_ID, text="alert")

    assert resp["ok"] is True
    assert [c.status for c in fake.calls_to("chat.postMessage")] == [429, 200]
    assert [m["text"] for m in fake.history(CHANNEL_ID)] == ["alert"]


async def test_async_rate_limit_raises_then_retries(fake: FakeSlack) -> None:
    fake.rate_limit(1, retry_after=3)
    with pytest.raises(SlackApiError) as err:
        await async_client(fake).chat_postMessage(channel=CHANNEL_ID, text="x")
    assert err.value.response.status_code == 429
    assert err.value.response.headers["retry-after"] == "3"

    fake.rate_limit(1, retry_after=0)
    client = async_client(fake, retry_handlers=[AsyncRateLimitErrorRetryHandler(1)])
    resp = await client.chat_postMessage(channel=CHANNEL_ID, text="y")
    assert resp["ok"] is True
    assert [c.status for c in fake.calls_to("chat.postMessage")] == [429, 429, 200]


def test_outage_answers_500_until_it_ends(fake: FakeSlack) -> None:
    client = sync_client(fake)
    fake.outage(True)

    with pytest.raises(SlackApiError) as err:
        client.chat_postMessage(channel=CHANNEL_ID, text="x")

    assert err.value.response.status_code == 500
    assert err.value.response["ok"] is False and err.value.response["error"] == "internal_error"
    fake.outage(False)
    assert client.chat_postMessage(channel=CHANNEL_ID, text="x")["ok"] is True
    assert [m["text"] for m in fake.history(CHANNEL_ID)] == ["x"]


async def test_async_outage(fake: FakeSlack) -> None:
    fake.outage(True, status=503, error="service_unavailable")
    with pytest.raises(SlackApiError) as err:
        await async_client(fake).auth_test()
    assert err.value.response.status_code == 503
    assert err.value.response["error"] == "service_unavailable"


def test_refused_connections_then_recovery_on_the_same_port(fake: FakeSlack) -> None:
    port, api_url = fake.port, fake.api_url
    client = sync_client(fake, retry_handlers=[])
    assert client.auth_test()["ok"] is True

    fake.refuse_connections()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    with pytest.raises(URLError) as err:
        client.auth_test()
    assert isinstance(err.value.reason, ConnectionRefusedError)

    fake.accept_connections()
    assert fake.port == port and fake.api_url == api_url
    assert client.auth_test()["ok"] is True
    assert [c.ok for c in fake.calls_to("auth.test")] == [True, True]


async def test_async_refused_connections_then_recovery(fake: FakeSlack) -> None:
    client = async_client(fake, retry_handlers=[])
    fake.refuse_connections()
    with pytest.raises(aiohttp.ClientConnectorError):
        await client.auth_test()
    fake.accept_connections()
    assert (await client.auth_test())["ok"] is True


def test_fail_injects_one_web_api_error(fake: FakeSlack) -> None:
    client = sync_client(fake)
    fake.fail("chat.postMessage", "channel_not_found")

    with pytest.raises(SlackApiError) as err:
        client.chat_postMessage(channel=CHANNEL_ID, text="x")

    assert err.value.response.status_code == 200
    assert err.value.response.data == wire("slack_api_error_response.json")
    assert client.chat_postMessage(channel=CHANNEL_ID, text="x")["ok"] is True
    fake.fail("chat.update", "edit_window_closed", times=None)
    for _ in range(2):
        with pytest.raises(SlackApiError):
            client.chat_update(channel=CHANNEL_ID, ts=fake.history(CHANNEL_ID)[0]["ts"],
                               text="y")
    fake.heal()
    client.chat_update(channel=CHANNEL_ID, ts=fake.history(CHANNEL_ID)[0]["ts"], text="y")
    assert fake.history(CHANNEL_ID)[0]["text"] == "y"


# -- signing and builders -----------------------------------------------------------------------

@pytest.mark.parametrize("name", ["slack_signed_request_fixture.json",
                                  "slack_signed_block_actions_fixture.json"])
def test_sign_reproduces_the_reference_signatures(name: str) -> None:
    fixture = wire(name)
    body = fixture["raw_body"].encode()
    ts = int(fixture["headers"]["X-Slack-Request-Timestamp"])

    headers = sign(body, fixture["signing_secret"], ts)

    assert headers == {k: v for k, v in fixture["headers"].items() if k.startswith("X-Slack")}
    frozen = SignatureVerifier(fixture["signing_secret"], clock=FrozenClock(ts + 10))
    assert frozen.is_valid_request(body, headers)
    assert not frozen.is_valid_request(body + b" ", headers)
    assert not SignatureVerifier("not-the-secret", clock=FrozenClock(ts)).is_valid_request(
        body, headers)


def test_signature_verifier_accepts_fresh_and_rejects_old_or_wrong_secret() -> None:
    body = event_body(wire("slack_event_app_mention.json")["event"])
    verifier = SignatureVerifier(SIGNING_SECRET)

    assert verifier.is_valid_request(body, sign(body, SIGNING_SECRET))
    assert not verifier.is_valid_request(body, sign(body, "wrong-secret"))
    assert not verifier.is_valid_request(body, sign(body, SIGNING_SECRET,
                                                    int(time.time()) - 301))


def test_builders_reproduce_the_reference_bodies() -> None:
    mention = wire("slack_event_app_mention.json")
    im = wire("slack_event_message_im.json")
    actions = wire("slack_block_actions.json")
    slash = wire("slack_slash_command.json")
    action = actions["actions"][0]

    assert event_body(mention["event"], event_id=mention["event_id"]) == (
        wire("slack_signed_request_fixture.json")["raw_body"].encode())
    assert json.loads(event_body(im["event"], event_id=im["event_id"])) == im
    assert block_actions_body(
        actions["user"]["id"], action["action_id"], action["value"],
        channel=actions["channel"]["id"], message_ts=actions["container"]["message_ts"],
        response_url=actions["response_url"], message=actions["message"],
        trigger_id=actions["trigger_id"], action_ts=action["action_ts"],
    ) == (WIRE / "slack_block_actions.form.txt").read_bytes().strip()
    assert slash_command_body(
        slash["user_id"], slash["command"], slash["text"], channel=slash["channel_id"],
        response_url=slash["response_url"], trigger_id=slash["trigger_id"],
    ) == (WIRE / "slack_slash_command.form.txt").read_bytes().strip()
    assert json.loads(url_verification_body("abc")) == {
        "token": mention["token"], "challenge": "abc", "type": "url_verification"}


def test_builders_without_a_source_message_still_give_a_well_formed_click() -> None:
    body = block_actions_body(ONCALL_USER_ID, "ack_alert", "ack:1", channel=CHANNEL_ID,
                              message_ts="1700000000.000100")
    ephemeral = block_actions_body(ONCALL_USER_ID, "ack_alert", None, channel=CHANNEL_ID,
                                   message_ts="1700000000.000200", is_ephemeral=True)

    payload = json.loads(parse_qs(body.decode())["payload"][0])
    assert payload["actions"][0]["value"] == "ack:1"
    assert payload["message"]["blocks"][0]["elements"][0]["action_id"] == "ack_alert"
    assert payload["user"]["username"] == "priya.oncall" and payload["api_app_id"] == APP_ID
    eph = json.loads(parse_qs(ephemeral.decode())["payload"][0])
    assert "message" not in eph and "value" not in eph["actions"][0]
    assert eph["container"]["is_ephemeral"] is True


# -- a real Bolt app against the fake ------------------------------------------------------------

def bolt_request(body: bytes, content_type: str, secret: str = SIGNING_SECRET) -> BoltRequest:
    headers: dict[str, str | Sequence[str]] = {
        "content-type": [content_type],
        **{k.lower(): [v] for k, v in sign(body, secret).items()}}
    return BoltRequest(body=body.decode(), headers=headers)


def test_bolt_app_handles_a_click_with_chat_update_and_response_url(fake: FakeSlack) -> None:
    client = sync_client(fake)
    app = App(client=client, signing_secret=SIGNING_SECRET, process_before_response=True)
    card = client.chat_postMessage(**ALERT_REQUEST)
    clicks: list[dict[str, Any]] = []

    @app.action("scale_deployment")
    def on_scale(ack: Any, body: dict[str, Any], action: dict[str, Any], client: WebClient,
                 respond: Any) -> None:
        ack()
        clicks.append(json.loads(action["value"]))
        client.chat_update(channel=body["channel"]["id"], ts=body["message"]["ts"],
                           text=f"scaled by <@{body['user']['id']}>", blocks=[])
        respond(text="scaling now", response_type="ephemeral")

    raw = fake.click_body(ONCALL_USER_ID, "scale_deployment", channel=CHANNEL_ID, ts=card["ts"])
    form = "application/x-www-form-urlencoded"
    assert app.dispatch(bolt_request(raw, form, secret="wrong")).status == 401
    assert clicks == []

    resp = app.dispatch(bolt_request(raw, form))

    assert resp.status == 200
    assert clicks == [{"ns": "llm-serving", "deploy": "vllm-llama3-70b", "replicas": 6}]
    current = fake.message(CHANNEL_ID, card["ts"])
    assert current["text"] == f"scaled by <@{ONCALL_USER_ID}>" and "blocks" not in current
    [hook] = fake.hooks
    assert hook.payload["text"] == "scaling now"
    assert fake.ephemerals[-1]["user"] == ONCALL_USER_ID
    assert fake.ephemerals[-1]["text"] == "scaling now"


def test_bolt_app_answers_a_mention_in_its_thread_and_a_slash_command(fake: FakeSlack) -> None:
    app = App(client=sync_client(fake), signing_secret=SIGNING_SECRET,
              process_before_response=True)
    card = sync_client(fake).chat_postMessage(channel=CHANNEL_ID, text="alert card")

    @app.event("app_mention")
    def on_mention(event: dict[str, Any], say: Any) -> None:
        say(text="looking into it", thread_ts=event.get("thread_ts") or event["ts"])

    @app.command("/ops")
    def on_ops(ack: Any, command: dict[str, Any], respond: Any) -> None:
        ack()
        respond(text=f"running {command['text']}", response_type="in_channel")

    mention = fake.mention_body(ONCALL_USER_ID, "why 5xx?", thread_ts=card["ts"])
    assert app.dispatch(bolt_request(mention, "application/json")).status == 200
    slash = fake.slash_command_body(ONCALL_USER_ID, "/ops", "status")
    assert app.dispatch(bolt_request(slash, "application/x-www-form-urlencoded")).status == 200

    assert [m["text"] for m in fake.thread(CHANNEL_ID, card["ts"])] == [
        "alert card", f"<@{BOT_USER_ID}> why 5xx?", "looking into it"]
    assert [m["text"] for m in fake.history(CHANNEL_ID)] == ["alert card", "running status"]
