"""Bounded worker pool that claims work items by lease and completes them exactly once."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core.database import Database, execute_count
from core.models import WorkItem
from core.timeutil import utcnow

log = logging.getLogger("metaops.worker")

Handler = Callable[[AsyncSession, WorkItem], Awaitable[None]]
After = Callable[[WorkItem], Awaitable[None]]
MAX_ATTEMPTS = 5


class WorkerPool:
    """N workers; each claims one item (compare-and-set), runs it, completes it with its effects.

    A claim is a lease with a unique token. The handler's effects and the `done` flip share one
    transaction guarded by that token, so a crash or a lost lease rolls the effects back and the
    item runs again: each item's effects commit exactly once.
    """

    def __init__(
        self, db: Database, handler: Handler, *, concurrency: int = 4,
        poll_seconds: float = 0.5, lease_seconds: float = 300.0, after: After | None = None,
    ) -> None:
        self._db = db
        self._handler = handler
        # Long work (the graph) runs after the item's commit; it must be safe to repeat and has
        # its own recovery, because a crash between the two leaves the item done.
        self._after = after
        self._concurrency = concurrency
        self._poll = poll_seconds
        self._lease = timedelta(seconds=lease_seconds)
        self._node = f"{socket.gethostname()}:{os.getpid()}"
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.completed = 0

    def notify(self) -> None:
        """New work was committed: wake idle workers now instead of at the next poll."""
        self._wake.set()

    async def start(self) -> None:
        await self._recover()
        self._tasks = [
            asyncio.create_task(self._loop(i), name=f"worker-{i}")
            for i in range(self._concurrency)
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    async def _recover(self) -> None:
        if not self._db.is_sqlite:
            return  # shared database: other replicas may be mid-item; leases expire instead
        # One process owns a SQLite file, so anything still "running" died with the last one.
        async with self._db.write() as session:
            await session.execute(
                update(WorkItem).where(WorkItem.status == "running")
                .values(status="pending", claimed_by=None, lease_until=None)
            )

    async def _loop(self, index: int) -> None:
        while True:
            # Cleared before looking for work, so a notify() during the claim is not lost.
            self._wake.clear()
            try:
                ran = await self.run_one()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("worker %d: unexpected error", index)
                ran = False
            if not ran:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._poll)

    async def _claim(self) -> tuple[int, str] | None:
        while True:
            now = utcnow()
            claimable = or_(WorkItem.status == "pending",
                            (WorkItem.status == "running") & (WorkItem.lease_until < now))
            # Look with a read first: idle workers must not queue for the write lock.
            async with self._db.read() as session:
                candidate = (await session.execute(
                    select(WorkItem.id, WorkItem.status, WorkItem.attempts)
                    .where(claimable).order_by(WorkItem.id).limit(1))).first()
            if candidate is None:
                return None
            item_id, status, attempts = candidate
            async with self._db.write() as session:
                if status == "running" and attempts >= MAX_ATTEMPTS:
                    # Its worker keeps dying or outliving the lease: stop retrying it.
                    await session.execute(
                        update(WorkItem).where(WorkItem.id == item_id, claimable).values(
                            status="failed", lease_until=None, claimed_by=None,
                            error=f"gave up: the lease expired on each of {MAX_ATTEMPTS} attempts")
                    )
                    continue
                token = f"{self._node}:{uuid.uuid4().hex[:12]}"
                claimed = await execute_count(
                    session,
                    update(WorkItem).where(WorkItem.id == item_id, claimable).values(
                        status="running", claimed_by=token, pending_key=None,
                        lease_until=now + self._lease, started_at=now,
                        attempts=WorkItem.attempts + 1),
                )
            if claimed:
                return item_id, token

    async def run_one(self) -> bool:
        """Claim and run one item; False when there was nothing to claim."""
        claim = await self._claim()
        if claim is None:
            return False
        item_id, token = claim
        try:
            async with self._db.write() as session:
                item = await session.get(WorkItem, item_id)
                if item is None or item.claimed_by != token:
                    return True
                await self._handler(session, item)
                done = await execute_count(
                    session,
                    update(WorkItem).where(WorkItem.id == item_id, WorkItem.claimed_by == token,
                                           WorkItem.status == "running")
                    .values(status="done", finished_at=utcnow(), lease_until=None),
                )
                if not done:
                    raise _LeaseLost(item_id)
            self.completed += 1
        except _LeaseLost:
            log.warning("work item %d: lease lost, effects rolled back", item_id)
            return True
        except Exception as exc:
            log.exception("work item %d failed", item_id)
            await self._fail(item_id, token, exc)
            return True
        if self._after is not None and item is not None:
            try:
                await self._after(item)
            except Exception:
                log.exception("work item %d: follow-up failed (its recovery will retry)", item_id)
        return True

    async def _fail(self, item_id: int, token: str, exc: Exception) -> None:
        async with self._db.write() as session:
            item = await session.get(WorkItem, item_id)
            if item is None or item.claimed_by != token:
                return
            final = item.attempts >= MAX_ATTEMPTS
            item.status = "failed" if final else "pending"
            item.error = f"{exc.__class__.__name__}: {str(exc)[:500]}"
            item.lease_until = None
            item.claimed_by = None


class _LeaseLost(Exception):
    pass
