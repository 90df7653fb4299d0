"""Async database engines and sessions for SQLite (aiosqlite, WAL) and PostgreSQL (psycopg)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import CursorResult, Engine, Executable, create_engine, event, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import Session, sessionmaker

from core.settings import Settings, sync_url

T = TypeVar("T")


# On PostgreSQL every write transaction first takes this transaction-scoped advisory lock (the
# audit chain appends under it too). One lock order for everyone means writers on several
# replicas can queue but never deadlock (row lock vs. audit lock); SQLite's BEGIN IMMEDIATE is
# the same rule there.
WRITE_LOCK_KEY = 0x6D6574616F7073


def _pg_begin_write(conn: Any) -> None:
    conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({WRITE_LOCK_KEY})")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # FULL sync makes every acknowledged commit survive power loss; group commit pays for it.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _sqlite_writer_connect(dbapi_connection: Any, record: Any) -> None:
    _sqlite_pragmas(dbapi_connection, record)
    # Take over BEGIN so writers can open with IMMEDIATE (SQLAlchemy's documented recipe).
    dbapi_connection.isolation_level = None


def _sqlite_begin_immediate(conn: Any) -> None:
    # Writers take the write lock up front: no lock upgrade, so no SQLITE_BUSY deadlocks.
    conn.exec_driver_sql("BEGIN IMMEDIATE")


class Database:
    """One database: a writer engine and a reader engine (the same one on PostgreSQL)."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        if self.is_sqlite:
            self.engine = create_async_engine(url, echo=echo)
            event.listen(self.engine.sync_engine, "connect", _sqlite_writer_connect)
            event.listen(self.engine.sync_engine, "begin", _sqlite_begin_immediate)
            self.read_engine = create_async_engine(url, echo=echo)
            event.listen(self.read_engine.sync_engine, "connect", _sqlite_pragmas)
        else:
            self.engine = create_async_engine(
                url, echo=echo, pool_size=10, max_overflow=20, pool_pre_ping=True
            )
            event.listen(self.engine.sync_engine, "begin", _pg_begin_write)
            self.read_engine = create_async_engine(
                url, echo=echo, pool_size=10, max_overflow=20, pool_pre_ping=True
            )
        # Hot write paths (webhook ingest) run as plain synchronous code on one dedicated thread:
        # one hop per transaction instead of one per statement through the async driver.
        self.sync_engine = create_engine(sync_url(url), echo=echo,
                                         **({} if self.is_sqlite else {"pool_pre_ping": True}))
        if self.is_sqlite:
            event.listen(self.sync_engine, "connect", _sqlite_writer_connect)
            event.listen(self.sync_engine, "begin", _sqlite_begin_immediate)
        else:
            event.listen(self.sync_engine, "begin", _pg_begin_write)
        self._sync_writer = sessionmaker(self.sync_engine, expire_on_commit=False)
        self._writer_thread = ThreadPoolExecutor(1, thread_name_prefix="db-writer")
        # SQLite has one writer at a time; queueing our own writers here is far cheaper than
        # letting them spin in SQLite's busy handler (which sleeps in steps up to 100 ms).
        self._write_lock = asyncio.Lock() if self.is_sqlite else None
        self._writer = async_sessionmaker(self.engine, expire_on_commit=False)
        self._reader = async_sessionmaker(self.read_engine, expire_on_commit=False)
        self._jobstore: Engine | None = None

    @property
    def dialect(self) -> str:
        return "sqlite" if self.is_sqlite else "postgresql"

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncSession]:
        """A session inside one write transaction, committed on clean exit."""
        if self._write_lock is None:
            async with self._writer() as session, session.begin():
                yield session
            return
        async with self._write_lock, self._writer() as session, session.begin():
            yield session

    async def write_sync(self, fn: Callable[[Session], T]) -> T:
        """Run fn(session) in one write transaction on the dedicated writer thread."""

        def run() -> T:
            with self._sync_writer() as session, session.begin():
                return fn(session)

        loop = asyncio.get_running_loop()
        if self._write_lock is None:
            return await loop.run_in_executor(self._writer_thread, run)
        async with self._write_lock:
            return await loop.run_in_executor(self._writer_thread, run)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        """A session for reads; never commits."""
        async with self._reader() as session:
            yield session

    async def ping(self) -> None:
        async with self.read() as session:
            await session.execute(text("SELECT 1"))

    def jobstore_engine(self, data_dir: Path) -> Engine:
        """A synchronous engine for the scheduler's job store, which APScheduler drives on the
        event loop thread. It must never wait for our write lock (SQLite's single writer,
        PostgreSQL's advisory lock): the writer holding it may be a coroutine on that very
        loop, which would then never finish. So on SQLite the jobs get a database file of their
        own, and on PostgreSQL a plain engine without the lock."""
        if self._jobstore is None:
            if self.is_sqlite:
                data_dir.mkdir(parents=True, exist_ok=True)
                self._jobstore = create_engine(f"sqlite:///{(data_dir / 'scheduler.db').resolve()}")
                event.listen(self._jobstore, "connect", _sqlite_pragmas)
            else:
                self._jobstore = create_engine(sync_url(self.url), pool_pre_ping=True,
                                               pool_size=2, max_overflow=2)
        return self._jobstore

    async def dispose(self) -> None:
        self._writer_thread.shutdown(wait=True)
        if self._jobstore is not None:
            self._jobstore.dispose()
        self.sync_engine.dispose()
        await self.engine.dispose()
        if self.read_engine is not self.engine:
            await self.read_engine.dispose()


def database_from_settings(settings: Settings) -> Database:
    """The Database the settings point at; creates the data dir for SQLite."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return Database(settings.resolved_database_url)



async def execute_count(session: AsyncSession, statement: Executable) -> int:
    """Run an UPDATE/DELETE and return how many rows it touched (compare-and-set checks)."""
    result = await session.execute(statement)
    assert isinstance(result, CursorResult)
    return int(result.rowcount)


def insert_for(session: Session | AsyncSession, model: Any) -> Any:
    """The dialect's INSERT (it has on_conflict_do_nothing on both SQLite and PostgreSQL)."""
    bind = session.bind
    name = bind.dialect.name if bind is not None else "sqlite"
    return (sqlite_insert if name == "sqlite" else pg_insert)(model)
