"""Group commit for webhook deliveries: many requests, one durable transaction."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from agents.intake.normalize import Delivery
from agents.intake.store import IngestResult, store_batch
from core.database import Database

log = logging.getLogger("metaops.ingest")

_Item = tuple[Delivery, "asyncio.Future[IngestResult]"]


class IngestBatcher:
    """One writer task per process; callers await their delivery's commit (then answer 202)."""

    def __init__(
        self, db: Database, *, max_batch: int = 256, wait_ms: float = 2.0,
        on_commit: Callable[[], None] | None = None,
    ) -> None:
        self._db = db
        self._max = max_batch
        self._wait = wait_ms / 1000.0
        self._on_commit = on_commit
        self._queue: asyncio.Queue[_Item] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="ingest-batcher")

    async def stop(self) -> None:
        # Finish what was already accepted into the queue before shutting down.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._queue.join(), timeout=30)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def submit(self, delivery: Delivery) -> IngestResult:
        future: asyncio.Future[IngestResult] = asyncio.get_running_loop().create_future()
        await self._queue.put((delivery, future))
        # Shielded: a client that hangs up must not cancel a commit others share.
        return await asyncio.shield(future)

    async def _run(self) -> None:
        while True:
            first = await self._queue.get()
            batch = [first]
            loop = asyncio.get_running_loop()
            deadline = loop.time() + self._wait
            while len(batch) < self._max:
                try:
                    batch.append(self._queue.get_nowait())
                    continue
                except asyncio.QueueEmpty:
                    pass
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(self._queue.get(), remaining))
                except TimeoutError:
                    break
            try:
                await self._commit(batch)
            except Exception as exc:
                # The writer task must outlive any one batch; its callers get the error.
                log.exception("ingest batch failed")
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
            finally:
                for _ in batch:
                    self._queue.task_done()

    async def _commit(self, batch: list[_Item]) -> None:
        try:
            deliveries = [delivery for delivery, _ in batch]
            results = await self._db.write_sync(lambda session: store_batch(session, deliveries))
        except Exception as exc:
            if len(batch) > 1:
                # One bad delivery must not sink its neighbours: retry each on its own.
                for item in batch:
                    await self._commit([item])
                return
            log.exception("ingest commit failed")
            if not batch[0][1].done():
                batch[0][1].set_exception(exc)
            return
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)
        if self._on_commit is not None and any(r.queued for r in results):
            self._on_commit()
