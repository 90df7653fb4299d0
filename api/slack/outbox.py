"""The Slack outbox: once-only message rows, and claiming and settling them for delivery."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core.database import execute_count, insert_for
from core.models import SlackMessage
from core.timeutil import utcnow

PENDING, SENT, FAILED, COALESCED = "pending", "sent", "failed", "coalesced"
POST, REFRESH, EPHEMERAL, RESPOND = "post", "refresh", "ephemeral", "respond"
# A claim outlives any one delivery (slack_sdk's timeout is 10 s); a crashed sender's rows
# come back after it.
CLAIM = timedelta(seconds=60)


async def enqueue(session: AsyncSession, *, key: str, kind: str, ref: str | int, op: str = POST,
                  incident_id: int | None = None, channel: str | None = None,
                  thread_ts: str | None = None, user: str | None = None,
                  body: dict[str, Any] | None = None) -> bool:
    """Add a message unless one with `key` exists; True if added."""
    values = {"key": key[:255], "kind": kind, "ref": str(ref)[:255], "op": op,
              "incident_id": incident_id, "channel": channel, "thread_ts": thread_ts,
              "user": user, "body": body, "status": PENDING, "attempts": 0,
              "next_attempt_at": utcnow(), "created_at": utcnow()}
    # RETURNING, not rowcount: psycopg reports -1 for INSERT ... ON CONFLICT DO NOTHING.
    inserted = await session.scalar(
        insert_for(session, SlackMessage).values(**values)
        .on_conflict_do_nothing(index_elements=["key"]).returning(SlackMessage.id))
    return inserted is not None


async def due(session: AsyncSession, now: datetime, limit: int = 100) -> Sequence[SlackMessage]:
    """Pending rows whose time has come and that no live sender holds, oldest first."""
    return (await session.scalars(
        select(SlackMessage)
        .where(SlackMessage.status == PENDING, SlackMessage.next_attempt_at <= now,
               or_(SlackMessage.claimed_until.is_(None), SlackMessage.claimed_until < now))
        .order_by(SlackMessage.id).limit(limit))).all()


async def claim(session: AsyncSession, row_id: int, now: datetime) -> bool:
    """Compare-and-set: this sender takes the row (two replicas never send it twice at once)."""
    return await execute_count(session, update(SlackMessage).where(
        SlackMessage.id == row_id, SlackMessage.status == PENDING,
        or_(SlackMessage.claimed_until.is_(None), SlackMessage.claimed_until < now),
    ).values(claimed_until=now + CLAIM)) == 1


async def settle(session: AsyncSession, row_id: int, *, status: str, ts: str | None = None,
                 channel: str | None = None, error: str | None = None,
                 retry_at: datetime | None = None, count_attempt: bool = True) -> None:
    """Record a delivery's outcome: sent (with the message's channel and ts), failed for good,
    or still pending with the time of the next try."""
    row = await session.get(SlackMessage, row_id)
    if row is None:
        return
    row.claimed_until = None
    if count_attempt:
        row.attempts += 1
    row.last_error = None if error is None else error[:2000]
    row.status = status
    if status == SENT:
        row.sent_at = utcnow()
        row.ts = ts
        if channel:
            row.channel = channel
    if retry_at is not None:
        row.next_attempt_at = retry_at


async def parent_of(session: AsyncSession, incident_id: int) -> SlackMessage | None:
    """The incident's top message (its thread's parent), if one was queued."""
    return await session.scalar(select(SlackMessage).where(
        SlackMessage.key == incident_key(incident_id)))


async def sent_posts(session: AsyncSession, kind: str, ref: str) -> Sequence[SlackMessage]:
    """Every delivered post of one thing (a card may be shown in several places)."""
    return (await session.scalars(select(SlackMessage).where(
        SlackMessage.kind == kind, SlackMessage.ref == ref, SlackMessage.op == POST,
        SlackMessage.status == SENT).order_by(SlackMessage.id))).all()


async def pending_posts(session: AsyncSession, kind: str, ref: str) -> int:
    return len((await session.scalars(select(SlackMessage.id).where(
        SlackMessage.kind == kind, SlackMessage.ref == ref, SlackMessage.op == POST,
        SlackMessage.status == PENDING))).all())


async def coalesce_refreshes(session: AsyncSession, kind: str, ref: str, keep: int) -> None:
    """A refresh renders the state current when it is sent, so pending refreshes queued
    before it are redundant once it is sent."""
    await session.execute(update(SlackMessage).where(
        SlackMessage.kind == kind, SlackMessage.ref == ref, SlackMessage.op == REFRESH,
        SlackMessage.status == PENDING, SlackMessage.id < keep,
    ).values(status=COALESCED))


def incident_key(incident_id: int) -> str:
    return f"incident:{incident_id}"
