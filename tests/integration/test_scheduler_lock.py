"""The scheduler's job store never waits for the app's write lock on the event loop thread.

APScheduler reads and writes its job store synchronously on the loop. When that store shared
the app's database engine, a tick that met an open write transaction (a coroutine on the same
loop) blocked the loop until SQLite's 30 s busy timeout, or forever on PostgreSQL's advisory
lock: the whole server stopped."""

from __future__ import annotations

import asyncio
import time

from fastapi import FastAPI

from api.app import create_app
from core.settings import Settings
from core.timeutil import utcnow


async def test_ticks_while_a_write_transaction_is_open_do_not_stall_the_loop(
        settings: Settings) -> None:
    settings = settings.model_copy(update={"sweep_seconds": 0.1})
    app: FastAPI = create_app(settings)
    async with app.router.lifespan_context(app):
        db = app.state.metaops.db
        runtime = app.state.metaops.runtime
        lags: list[float] = []

        async def watch() -> None:
            # The loop's own responsiveness: how late a 50 ms sleep wakes up.
            while True:
                start = time.monotonic()
                await asyncio.sleep(0.05)
                lags.append(time.monotonic() - start - 0.05)

        watcher = asyncio.create_task(watch())
        ticks = 0
        for _ in range(6):
            async with db.write() as session:  # holds the write lock across ticks
                await session.run_sync(lambda s: None)
                await asyncio.sleep(0.35)
            job = runtime._scheduler.get_job("sweep")
            ticks += job is not None
        # A check scheduled while a write is open must not wait for it either.
        async with db.write() as session:
            await session.run_sync(lambda s: None)
            runtime._schedule_check("no-such-action", utcnow())
            await asyncio.sleep(0.35)
        watcher.cancel()
        assert ticks == 6 and lags
        assert max(lags) < 2.0, f"the event loop stalled for {max(lags):.1f} s"
