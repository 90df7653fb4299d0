"""Delivers the Slack outbox: threads, card refreshes, replies; honours 429, rides out outages."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient
from sqlalchemy import select

from api.slack import outbox, render
from api.slack.routing import channel_for
from core.database import Database
from core.models import Alert, Incident, SlackMessage
from core.settings import Settings
from core.timeutil import utcnow
from guardrails.backoff import retry_after_seconds

log = logging.getLogger("metaops.slack")

# Slack's own hiccups: worth another try. Any other `ok: false` (channel_not_found,
# invalid_blocks, not_in_channel, ...) will not get better by retrying.
_TRANSIENT = frozenset({"ratelimited", "internal_error", "fatal_error", "service_unavailable",
                        "request_timeout", "team_added_to_org"})
# How long a refresh waits for the post it edits before giving up on it.
_DEFER = timedelta(seconds=1)


class Transient(Exception):
    """Delivery failed in a way that may pass (outage, timeout, 5xx, 429)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Permanent(Exception):
    """Delivery failed for good (Slack refused the message itself)."""


class Deferred(Exception):
    """Not yet: the thread's parent (or the post a refresh edits) is not delivered yet."""


@dataclass(frozen=True, slots=True)
class Delivered:
    channel: str | None = None
    ts: str | None = None


def backoff(attempts: int, cap: float) -> float:
    """Seconds before retry number `attempts` (1, 2, 4, ... up to `cap`)."""
    return float(min(cap, 2 ** min(attempts, 16)))


class Sender:
    """One delivery loop per process; rows are claimed, so replicas share the work."""

    def __init__(self, db: Database, settings: Settings, client: AsyncWebClient) -> None:
        self.db = db
        self.settings = settings
        self.client = client
        self.wake = asyncio.Event()
        self._paused_until: datetime | None = None  # Slack is down or rate-limiting us

    def notify(self) -> None:
        self.wake.set()

    async def run(self, poll_seconds: float = 1.0) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), timeout=poll_seconds)
            self.wake.clear()
            try:
                while await self.deliver_due():
                    pass
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("Slack delivery round failed")

    async def deliver_due(self) -> int:
        """Deliver what is due; how many rows were settled (0: nothing more to do now)."""
        now = utcnow()
        if self._paused_until is not None and now < self._paused_until:
            return 0
        async with self.db.read() as session:
            rows = list(await outbox.due(session, now))
        settled = 0
        for row in rows:
            async with self.db.write() as session:
                if not await outbox.claim(session, row.id, now):
                    continue
            try:
                done = await self._deliver(row)
            except Deferred:
                await self._settle(row.id, status=outbox.PENDING, count_attempt=False,
                                   retry_at=utcnow() + _DEFER)
                continue
            except Transient as exc:
                wait = exc.retry_after if exc.retry_after is not None else backoff(
                    row.attempts + 1, self.settings.slack_retry_max_seconds)
                retry_at = utcnow() + timedelta(seconds=wait)
                # A 429 is not the message's fault: it does not count as a failed attempt.
                await self._settle(row.id, status=outbox.PENDING, error=str(exc),
                                   retry_at=retry_at, count_attempt=exc.retry_after is None)
                self._paused_until = retry_at
                log.warning("Slack delivery paused for %.0f s: %s", wait, exc)
                return settled
            except Permanent as exc:
                log.warning("Slack refused message %s: %s", row.key, exc)
                await self._settle(row.id, status=outbox.FAILED, error=str(exc))
            else:
                await self._settle(row.id, status=outbox.SENT, ts=done.ts, channel=done.channel)
                if row.op == outbox.REFRESH:
                    async with self.db.write() as session:
                        await outbox.coalesce_refreshes(session, row.kind, row.ref, row.id)
            settled += 1
        self._paused_until = None
        return settled

    async def _settle(self, row_id: int, **kwargs: Any) -> None:
        async with self.db.write() as session:
            await outbox.settle(session, row_id, **kwargs)

    # -- one row --------------------------------------------------------------------------

    async def _deliver(self, row: SlackMessage) -> Delivered:
        if row.op == outbox.RESPOND:
            await self._respond(row)
            return Delivered()
        async with self.db.read() as session:
            message = await render.render(session, row, utcnow())
            if message is None:
                raise Permanent(f"{row.kind} {row.ref} no longer exists")
            if row.op == outbox.REFRESH:
                targets = [(t.channel, t.ts) for t in await outbox.sent_posts(
                    session, row.kind, row.ref) if t.channel and t.ts]
                if not targets:
                    if await outbox.pending_posts(session, row.kind, row.ref):
                        raise Deferred()
                    return Delivered()  # never posted (e.g. Slack was off): nothing to edit
            else:
                channel, thread_ts = await self._where(session, row)
        if row.op == outbox.REFRESH:
            for channel, ts in targets:
                await self._call("chat_update", channel=channel, ts=ts, text=message["text"],
                                 blocks=message.get("blocks", []))
            return Delivered()
        if channel is None:
            raise Permanent("no channel: set METAOPS_SLACK_CHANNEL or a route that matches")
        if row.op == outbox.EPHEMERAL:
            await self._call("chat_postEphemeral", channel=channel, user=row.user,
                             thread_ts=thread_ts, text=message["text"],
                             blocks=message.get("blocks"))
            return Delivered(channel)
        answer = await self._call("chat_postMessage", channel=channel, thread_ts=thread_ts,
                                  text=message["text"], blocks=message.get("blocks"),
                                  unfurl_links=False, unfurl_media=False)
        return Delivered(str(answer.get("channel") or channel), str(answer.get("ts") or ""))

    async def _where(self, session: Any, row: SlackMessage) -> tuple[str | None, str | None]:
        """(channel, thread_ts): a reply goes in its incident's thread, once that exists."""
        if row.channel is not None or row.incident_id is None:
            return row.channel or self.settings.slack_channel, row.thread_ts
        incident = await session.get(Incident, row.incident_id)
        routed = None
        if incident is not None:
            # The first alert's labels (team, service, ...) under the group's own labels.
            first = await session.scalar(select(Alert.labels).where(
                Alert.incident_id == incident.id).order_by(Alert.id).limit(1))
            routed = channel_for(self.settings, incident.severity,
                                 {**(first or {}), **(incident.labels or {})})
        if row.kind == "incident" and row.op == outbox.POST:
            return routed, None
        parent = await outbox.parent_of(session, row.incident_id)
        if parent is not None and parent.status == outbox.SENT and parent.ts:
            return parent.channel, parent.ts
        if parent is not None and parent.status == outbox.PENDING:
            raise Deferred()
        return routed, None  # the parent could not be posted: post at the top level

    async def _respond(self, row: SlackMessage) -> None:
        body = dict(row.body or {})
        url = str(body.pop("response_url", ""))
        if not self._trusted_hook(url):
            raise Permanent("response_url is not a Slack URL")
        try:
            answer = await AsyncWebhookClient(url, timeout=10).send_dict(body)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise Transient(f"response_url: {exc.__class__.__name__}") from exc
        if answer.status_code == 429 or answer.status_code >= 500:
            raise Transient(f"response_url answered HTTP {answer.status_code}")
        if answer.status_code >= 400:
            raise Permanent(f"response_url answered HTTP {answer.status_code}: "
                            f"{answer.body[:200]}")

    def _trusted_hook(self, url: str) -> bool:
        """Only Slack's hooks (or the configured Web API's host, for proxies and tests): the URL
        came in a request, and the server must not be made to POST anywhere else."""
        hook, api = urlsplit(url), urlsplit(self.settings.slack_api_url)
        if hook.scheme == "https" and hook.hostname == "hooks.slack.com":
            return True
        return bool(hook.hostname) and (hook.scheme, hook.netloc) == (api.scheme, api.netloc)

    async def _call(self, method: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = await getattr(self.client, method)(**kwargs)
        except SlackApiError as exc:
            status = exc.response.status_code
            error = str(exc.response.get("error") or f"HTTP {status}")
            if status == 429:
                # Slack's Retry-After; 1 s when it sent none we can read.
                retry = retry_after_seconds(dict(exc.response.headers or {}))
                raise Transient(f"{method}: rate limited", 1.0 if retry is None else retry) \
                    from exc
            if status >= 500 or error in _TRANSIENT:
                raise Transient(f"{method}: {error}") from exc
            raise Permanent(f"{method}: {error}") from exc
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise Transient(f"{method}: {exc.__class__.__name__}") from exc
        return dict(response.data) if isinstance(response.data, dict) else {}
