"""LangGraph checkpointers: a SQLite saver beside the SQLite database, or the Postgres saver."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from core.database import Database

_SETUP_LOCK = 0x6D6F6370  # serialises saver.setup() across replicas on a fresh database


@asynccontextmanager
async def open_checkpointer(db: Database,
                            data_dir: Path) -> AsyncIterator[BaseCheckpointSaver[str]]:
    """The saver for `db`, open for the life of the context."""
    if db.is_sqlite:
        # Its own file: the saver's writes then never wait on our database's write lock.
        await asyncio.to_thread(data_dir.mkdir, parents=True, exist_ok=True)
        async with AsyncSqliteSaver.from_conn_string(str(data_dir / "checkpoints.db")) as saver:
            await saver.setup()
            yield saver
        return
    dsn = db.url.replace("postgresql+psycopg://", "postgresql://")
    pool: AsyncConnectionPool = AsyncConnectionPool(
        dsn, open=False, max_size=10, check=AsyncConnectionPool.check_connection,
        kwargs={"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row})
    await pool.open()
    try:
        pg_saver = AsyncPostgresSaver(pool)  # type: ignore[arg-type]
        # A session-level lock on an autocommit connection: it holds no open transaction, which
        # the saver's CREATE INDEX CONCURRENTLY would otherwise wait for forever.
        async with pool.connection() as conn:
            await conn.execute("SELECT pg_advisory_lock(%s)", (_SETUP_LOCK,))
            try:
                await pg_saver.setup()
            finally:
                await conn.execute("SELECT pg_advisory_unlock(%s)", (_SETUP_LOCK,))
        yield pg_saver
    finally:
        await pool.close()
