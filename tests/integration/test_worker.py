"""Worker pool: failing handlers retry then fail, lost leases roll effects back."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from agents.intake.store import enqueue
from agents.worker import MAX_ATTEMPTS, WorkerPool
from core.database import Database
from core.models import AuditEvent, Incident, WorkItem
from core.timeutil import utcnow
from guardrails import audit


async def _incident(db: Database) -> int:
    async with db.write() as s:
        inc = Incident(source="generic", group_key="g", open_key="k", title="t", severity="info")
        s.add(inc)
        await s.flush()
        await s.run_sync(lambda sync: enqueue(sync, inc.id))
        return inc.id


async def test_a_failing_handler_is_retried_then_marked_failed(db: Database) -> None:
    await _incident(db)
    calls = 0

    async def boom(session: AsyncSession, item: WorkItem) -> None:
        nonlocal calls
        calls += 1
        await audit.append(session, type="test.effect", actor=audit.WORKER)
        raise RuntimeError("upstream said no")

    pool = WorkerPool(db, boom)
    while await pool.run_one():
        pass
    async with db.read() as s:
        item = await s.scalar(select(WorkItem))
        effects = (await s.scalars(select(AuditEvent).where(
            AuditEvent.type == "test.effect"))).all()
    assert item is not None
    assert calls == MAX_ATTEMPTS
    assert (item.status, item.attempts) == ("failed", MAX_ATTEMPTS)
    assert item.error == "RuntimeError: upstream said no"
    assert effects == []  # each attempt's effects rolled back with it


async def test_lost_lease_rolls_back_the_effects(db: Database) -> None:
    await _incident(db)

    async def steal(session: AsyncSession, item: WorkItem) -> None:
        await audit.append(session, type="test.effect", actor=audit.WORKER)
        # Another node has taken the item over (its lease expired). Writers are serialised on
        # both backends, so the takeover is written here, where it lands before our CAS.
        await session.execute(update(WorkItem).values(claimed_by="other-node:1"))

    pool = WorkerPool(db, steal)
    assert await pool.run_one()
    async with db.read() as s:
        effects = (await s.scalars(select(AuditEvent))).all()
        item = await s.scalar(select(WorkItem))
    assert effects == []
    assert item is not None and item.status == "running" and pool.completed == 0


async def test_item_whose_lease_keeps_expiring_is_given_up(db: Database) -> None:
    await _incident(db)
    async with db.write() as s:
        await s.execute(update(WorkItem).values(
            status="running", attempts=MAX_ATTEMPTS, claimed_by="dead:1",
            lease_until=utcnow() - timedelta(seconds=1)))

    async def never(session: AsyncSession, item: WorkItem) -> None:
        raise AssertionError("must not run")

    pool = WorkerPool(db, never)
    assert await pool.run_one() is False
    async with db.read() as s:
        item = await s.scalar(select(WorkItem))
    assert item is not None and item.status == "failed" and "gave up" in (item.error or "")
