"""`metaops slack socket`: Slack over Socket Mode, against a local WebSocket server that speaks
the envelope protocol and the fake Web API that hands out its URL (apps.connections.open)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.fake_slack import (
    APP_TOKEN,
    BOT_TOKEN,
    CHANNEL_ID,
    ONCALL_USER_ID,
    app_mention_event,
    event_body,
    serve_slack,
)
from tests.fake_slack_socket import envelope, serve_socket_mode
from tests.integration.test_cli import cli
from tests.support import ServerProcess, wait_until

# Its SQL (receipts, outbox) runs on PostgreSQL in test_slack's full loop and test_slack_outbox.
pytestmark = [pytest.mark.slow, pytest.mark.sqlite_pass]


def test_socket_mode_receives_an_event_acks_it_and_answers(server_factory: Any) -> None:
    with serve_slack() as slack, serve_socket_mode() as socket:
        slack.socket_url = socket.url
        server: ServerProcess = server_factory(
            METAOPS_SLACK_BOT_TOKEN=BOT_TOKEN, METAOPS_SLACK_APP_TOKEN=APP_TOKEN,
            METAOPS_SLACK_CHANNEL=CHANNEL_ID, METAOPS_SLACK_API_URL=slack.api_url)
        server.command = ("slack", "socket")
        server.start()
        wait_until(socket.connected, "the Socket Mode connection", server)
        opened = slack.calls_to("apps.connections.open")
        assert opened and opened[0].headers["authorization"] == f"Bearer {APP_TOKEN}"
        done = cli(["principal", "add", "--name", "priya", "--slack-user", ONCALL_USER_ID,
                    "--role", "viewer"], **server.env())
        assert done.returncode == 0, done.stderr
        # No public Request URL in Socket Mode: nothing is served at /slack/events.
        assert httpx.post(f"{server.url}/slack/events", content=b"{}").status_code == 404

        ts = slack.add_message(CHANNEL_ID, "<@U07OPSBOT01> help", user=ONCALL_USER_ID)
        event = app_mention_event(ONCALL_USER_ID, "help", channel=CHANNEL_ID, ts=ts)
        sent = envelope("events_api", json.loads(event_body(event)))
        socket.send(sent)
        wait_until(lambda: sent["envelope_id"] in socket.acks(), "the envelope's ack", server)
        reply = wait_until(lambda: [m for m in slack.thread(CHANNEL_ID, ts)
                                    if m.get("bot_id") and "Commands for the viewer" in m["text"]],
                           "the answer in the thread", server)
        assert "approve ACTION_ID" not in reply[0]["text"]
        # Slack redelivers an envelope it thinks was lost: acked again, answered once.
        again = {**envelope("events_api", sent["payload"], retry_attempt=1)}
        socket.send(again)
        wait_until(lambda: again["envelope_id"] in socket.acks(), "the retry's ack", server)
        server.stop()
        answers = [m for m in slack.thread(CHANNEL_ID, ts) if m.get("bot_id")]
        assert len(answers) == 1
