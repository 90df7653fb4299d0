"""Slack for one server process: the Bolt app (HTTP or Socket Mode), the feed and the sender."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta
from typing import Any

from fastapi import Request, Response
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.adapter.starlette.async_handler import AsyncSlackRequestHandler
from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy import delete, func, select

from api.slack import blocks, feed
from api.slack.inbound import Inbound
from api.slack.sender import Sender
from api.state import AppState
from core.models import AuditEvent, SlackReceipt
from core.timeutil import utcnow

log = logging.getLogger("metaops.slack")

FEED_SECONDS = 0.5
RECEIPTS_KEPT = timedelta(days=1)  # Slack retries for minutes, never for a day


def _bot_user(context: Any) -> str | None:
    value = getattr(context, "bot_user_id", None)
    return str(value) if value else None


class SlackService:
    """Built only when Slack is configured (Settings.slack_enabled)."""

    def __init__(self, state: AppState) -> None:
        settings = state.settings
        assert settings.slack_bot_token is not None
        self.state = state
        self.socket_mode = settings.slack_socket_mode
        self.client = AsyncWebClient(token=settings.slack_bot_token.get_secret_value(),
                                     base_url=settings.slack_api_url, timeout=10)
        secret = settings.slack_signing_secret
        self.bolt = AsyncApp(
            client=self.client,
            signing_secret=secret.get_secret_value() if secret else "",
            # Socket Mode has no inbound HTTP, so nothing to sign; HTTP mode always verifies.
            request_verification_enabled=not self.socket_mode,
            # Listeners ack, start the work as a task of ours and return, so Bolt answers at
            # once (without this, Bolt polls for the ack every 10 ms: +10 ms on every click).
            process_before_response=True,
        )
        self.sender = Sender(state.db, settings, self.client)
        self.inbound = Inbound(state, self.sender.notify)
        self.http = AsyncSlackRequestHandler(self.bolt)
        self._tasks: list[asyncio.Task[Any]] = []
        self._work: set[asyncio.Task[Any]] = set()
        self._socket: Any = None
        self._feed_wake = asyncio.Event()
        self._register()

    # -- listeners -------------------------------------------------------------------------

    def _register(self) -> None:
        app, inbound = self.bolt, self.inbound

        @app.action(blocks.APPROVE_ACTION)
        async def approve(ack: AsyncAck, body: dict[str, Any], context: Any) -> None:
            await ack()
            self._spawn(inbound.click(body, "approve", _bot_user(context)))

        @app.action(blocks.REJECT_ACTION)
        async def reject(ack: AsyncAck, body: dict[str, Any], context: Any) -> None:
            await ack()
            self._spawn(inbound.click(body, "reject", _bot_user(context)))

        @app.command("/metaops")
        async def command(ack: AsyncAck, body: dict[str, Any], context: Any) -> None:
            await ack()
            self._spawn(inbound.chat(
                key=f"command:{body.get('trigger_id') or body.get('response_url')}",
                user_id=str(body.get("user_id") or ""), text=str(body.get("text") or ""),
                channel=str(body.get("channel_id") or ""), thread_ts=None, reply_ts=None,
                ephemeral=True, bot_user_id=_bot_user(context),
                response_url=body.get("response_url")))

        @app.event("app_mention")
        async def mention(body: dict[str, Any], event: dict[str, Any], context: Any) -> None:
            thread = event.get("thread_ts")
            self._spawn(inbound.chat(
                key=f"event:{body.get('event_id')}", user_id=str(event.get("user") or ""),
                text=str(event.get("text") or ""), channel=str(event.get("channel") or ""),
                thread_ts=thread, reply_ts=thread or event.get("ts"), ephemeral=False,
                bot_user_id=_bot_user(context)))

        @app.event("message")
        async def message(body: dict[str, Any], event: dict[str, Any], context: Any) -> None:
            # Only a person's direct message; edits, bot posts (our own) and channel chatter
            # (mentions arrive as app_mention) are not commands.
            if (event.get("channel_type") != "im" or event.get("subtype")
                    or event.get("bot_id")):
                return
            self._spawn(inbound.chat(
                key=f"event:{body.get('event_id')}", user_id=str(event.get("user") or ""),
                text=str(event.get("text") or ""), channel=str(event.get("channel") or ""),
                thread_ts=event.get("thread_ts"), reply_ts=event.get("thread_ts"),
                ephemeral=False, bot_user_id=_bot_user(context)))

    def _spawn(self, work: Any) -> None:
        """Run a request's work after its ack; a decision wakes the feed (cards redraw)."""
        task = asyncio.create_task(self._run(work))
        self._work.add(task)
        task.add_done_callback(self._work.discard)

    async def _run(self, work: Any) -> None:
        try:
            await work
        except Exception:
            log.exception("Slack request failed after its ack")
        self._feed_wake.set()

    # -- HTTP mode ---------------------------------------------------------------------------

    async def handle_http(self, request: Request) -> Response:
        return await self.http.handle(request)

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        # Check the bot token at start: a revoked or mistyped token shows in the log at once.
        self._tasks.append(asyncio.create_task(self._identify(), name="slack-identify"))
        self._tasks.append(asyncio.create_task(self.sender.run(), name="slack-sender"))
        self._tasks.append(asyncio.create_task(self._follow(), name="slack-feed"))
        if self.socket_mode:
            token = self.state.settings.slack_app_token
            assert token is not None
            self._socket = AsyncSocketModeHandler(self.bolt, token.get_secret_value(),
                                                  web_client=self.client)
            await self._socket.connect_async()
            log.info("Slack Socket Mode connected")

    async def stop(self) -> None:
        if self._socket is not None:
            with contextlib.suppress(Exception):
                await self._socket.close_async()
        for task in [*self._tasks, *self._work]:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _identify(self) -> None:
        try:
            await self.client.auth_test()
        except Exception as exc:  # Slack down at start: Bolt asks again on the first request
            log.warning("Slack auth.test failed: %s", exc)

    def notify(self) -> None:
        """Something was audited: look at the trail now rather than at the next tick."""
        self._feed_wake.set()

    async def _follow(self) -> None:
        """Turn new audit events into outbox rows, then wake the sender."""
        rounds, seen = 0, -1
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._feed_wake.wait(), timeout=FEED_SECONDS)
            self._feed_wake.clear()
            try:
                # A read first: a quiet trail costs no write transaction (SQLite has one writer).
                async with self.state.db.read() as session:
                    head = int(await session.scalar(select(func.max(AuditEvent.seq))) or 0)
                if head == seen:
                    continue
                while True:
                    async with self.state.db.write() as session:
                        read = await feed.advance(session)
                    if read:
                        self.sender.notify()
                    if read < feed.BATCH:
                        break
                seen = head
                rounds += 1
                if rounds % 7200 == 1:  # about hourly
                    async with self.state.db.write() as session:
                        await session.execute(delete(SlackReceipt).where(
                            SlackReceipt.received_at < utcnow() - RECEIPTS_KEPT))
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("Slack feed round failed")
