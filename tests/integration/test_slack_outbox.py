"""The Slack feed (audit trail → outbox rows) and sender (outbox → Slack Web API) on a real
database, against the wire-level fake Slack with the real slack_sdk client."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy import select, update

from api.slack import feed, outbox
from api.slack.sender import Sender
from core.database import Database
from core.models import Finding, Incident, SlackFeed, SlackMessage
from core.settings import Settings
from core.timeutil import utcnow
from guardrails import audit
from tests.fake_slack import BOT_TOKEN, CHANNEL_ID, FakeSlack, serve_slack


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with serve_slack() as fake:
        yield fake


async def _incident(db: Database) -> None:
    async with db.write() as session:
        session.add(Incident(id=1, source="generic", group_key="g", title="Chat API errors",
                             severity="critical", labels={"team": "llm"}, services=["chat-api"]))
        await session.flush()
        session.add(Finding(id=7, incident_id=1, specialist="log_summarizer", kind="log_patterns",
                            summary="3 error patterns", data={"patterns": []}))


async def _rows(db: Database) -> list[SlackMessage]:
    async with db.read() as session:
        return list(await session.scalars(select(SlackMessage).order_by(SlackMessage.id)))


async def test_feed_queues_each_event_s_messages_once(db: Database) -> None:
    await _incident(db)
    async with db.write() as session:
        await audit.append(session, type="token.created", actor=audit.SYSTEM)
        assert await feed.advance(session) == 0  # first run: starts at the head, no replay
    events = [("incident.opened", None, None), ("finding.recorded", None, "finding:7"),
              ("action.proposed", "a1", None), ("approval.approve", "a1", None),
              ("action.succeeded", "a1", None), ("incident.escalated", None, None),
              ("postmortem.drafted", None, None)]
    async with db.write() as session:
        for kind, action_id, target in events:
            await audit.append(session, type=kind, actor=audit.WORKER, incident_id=1,
                               action_id=action_id, target=target)
    async with db.write() as session:
        assert await feed.advance(session) == len(events)
    rows = await _rows(db)
    posts = [(r.kind, r.ref) for r in rows if r.op == outbox.POST]
    assert posts == [("incident", "1"), ("finding", "7"), ("card", "a1"), ("execution", "a1"),
                     ("escalation", str(_seq(rows, "escalation"))), ("postmortem", "1")]
    refreshes = sorted({(r.kind, r.ref) for r in rows if r.op == outbox.REFRESH})
    assert refreshes == [("card", "a1"), ("incident", "1")]
    # Read again from the start (a second replica, or a crash before the cursor moved): the
    # keys make every message once-only.
    async with db.write() as session:
        await session.execute(update(SlackFeed).values(seq=0))
        await feed.advance(session)
    assert len(await _rows(db)) == len(rows)


def _seq(rows: list[SlackMessage], kind: str) -> int:
    return int(next(r.ref for r in rows if r.kind == kind))


def _sender(db: Database, slack: FakeSlack, tmp_path: Path) -> Sender:
    settings = Settings(env="test", data_dir=tmp_path, slack_channel=CHANNEL_ID,
                        slack_api_url=slack.api_url, slack_retry_max_seconds=60)
    return Sender(db, settings, AsyncWebClient(token=BOT_TOKEN, base_url=slack.api_url))


async def _due_now(db: Database, sender: Sender) -> None:
    """As if the wait were over: what the clock would do, without sleeping in a test."""
    sender._paused_until = None
    async with db.write() as session:
        await session.execute(update(SlackMessage).where(
            SlackMessage.status == outbox.PENDING).values(next_attempt_at=utcnow()))


async def test_sender_threads_honours_429_and_rides_out_outages(
        db: Database, slack: FakeSlack, tmp_path: Path) -> None:
    await _incident(db)
    async with db.write() as session:
        assert await outbox.enqueue(session, key="incident:1", kind="incident", ref=1,
                                    incident_id=1)
        assert not await outbox.enqueue(session, key="incident:1", kind="incident", ref=1,
                                        incident_id=1)  # once-only, on both databases
        await outbox.enqueue(session, key="finding:7", kind="finding", ref=7, incident_id=1)
    sender = _sender(db, slack, tmp_path)

    slack.rate_limit(1, retry_after=30)
    assert await sender.deliver_due() == 0
    row = (await _rows(db))[0]
    assert row.status == outbox.PENDING and row.attempts == 0  # a 429 is not a failure
    assert row.next_attempt_at - utcnow() > timedelta(seconds=25)  # Retry-After honoured
    calls = len(slack.calls)
    assert await sender.deliver_due() == 0 and len(slack.calls) == calls  # paused: no calls

    await _due_now(db, sender)
    assert await sender.deliver_due() == 2
    top, finding = await _rows(db)
    assert top.status == finding.status == outbox.SENT
    thread = slack.thread(CHANNEL_ID, str(top.ts))
    assert [m["ts"] for m in thread] == [top.ts, finding.ts]
    assert "Chat API errors" in thread[0]["text"] and "3 error patterns" in thread[1]["text"]

    # Slack answers 500: the refresh waits with backoff and is delivered after recovery.
    async with db.write() as session:
        await outbox.enqueue(session, key="incident:1:refresh:9", kind="incident", ref=1,
                             op=outbox.REFRESH, incident_id=1)
        incident = await session.get(Incident, 1)
        assert incident is not None
        incident.status = "resolved"
    slack.outage(True)
    assert await sender.deliver_due() == 0
    refresh = (await _rows(db))[-1]
    assert refresh.status == outbox.PENDING and refresh.attempts == 1
    assert "internal_error" in str(refresh.last_error)
    slack.heal()
    await _due_now(db, sender)
    assert await sender.deliver_due() == 1
    assert "resolved" in slack.message(CHANNEL_ID, str(top.ts))["text"]
    assert len(slack.versions(CHANNEL_ID, str(top.ts))) == 2  # edited in place

    # Slack refuses the message itself: failed for good, not retried forever.
    slack.fail("chat.postMessage", "channel_not_found")
    async with db.write() as session:
        await outbox.enqueue(session, key="text:1", kind="text", ref="x", channel="C0GONE",
                             body={"text": "hello"})
    assert await sender.deliver_due() == 1
    gone = (await _rows(db))[-1]
    assert gone.status == outbox.FAILED and "channel_not_found" in str(gone.last_error)
