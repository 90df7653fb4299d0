"""Shared fixtures: a fresh migrated database per test (SQLite or PostgreSQL), app, servers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from api.app import create_app
from core.database import Database
from core.settings import Settings
from tests.support import ADMIN_TOKEN, BACKEND, WEBHOOK_TOKEN, DatabaseFactory, ServerProcess


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On the PostgreSQL pass, run only the tests that use a database (through `db_factory`)
    and are not marked `sqlite_pass`: the others do not depend on the backend (or their SQL is
    covered on PostgreSQL by integration tests) and already ran in the SQLite pass. They are
    deselected (and counted as such), not skipped."""
    if BACKEND == "sqlite":
        return

    def wanted(item: pytest.Item) -> bool:
        return ("db_factory" in getattr(item, "fixturenames", ())
                and item.get_closest_marker("sqlite_pass") is None)

    keep = [i for i in items if wanted(i)]
    drop = [i for i in items if not wanted(i)]
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.fixture(scope="session")
def db_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DatabaseFactory]:
    factory = DatabaseFactory(tmp_path_factory.mktemp("dbtemplate"))
    yield factory
    factory.close()


@pytest.fixture
def db_url(db_factory: DatabaseFactory, tmp_path: Path) -> str:
    return db_factory.new(tmp_path / "db")


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    return Settings(
        env="test", data_dir=tmp_path / "var", database_url=db_url,
        admin_token=ADMIN_TOKEN, webhook_token=WEBHOOK_TOKEN,  # type: ignore[arg-type]
        worker_poll_seconds=0.05,
    )


@pytest.fixture
async def db(settings: Settings) -> AsyncIterator[Database]:
    database = Database(settings.resolved_database_url)
    yield database
    await database.dispose()


@dataclass
class Harness:
    app: FastAPI
    client: httpx.AsyncClient
    settings: Settings

    def auth(self, token: str = ADMIN_TOKEN) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    async def post_webhook(self, source: str, body: Any, token: str = WEBHOOK_TOKEN,
                           **kwargs: Any) -> httpx.Response:
        return await self.client.post(f"/webhooks/{source}", json=body, headers=self.auth(token),
                                      **kwargs)

    async def get(self, path: str, token: str = ADMIN_TOKEN, **kwargs: Any) -> httpx.Response:
        return await self.client.get(path, headers=self.auth(token), **kwargs)

    @property
    def runtime(self) -> Any:
        return self.app.state.metaops.runtime


@asynccontextmanager
async def in_process(settings: Settings) -> AsyncIterator[Harness]:
    """The app in-process with its lifespan (ingest batcher and workers) running."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://metaops.test") as c:
            yield Harness(app, c, settings)


@pytest.fixture
async def harness(settings: Settings) -> AsyncIterator[Harness]:
    async with in_process(settings) as h:
        yield h


@pytest.fixture
def server_factory(db_url: str, tmp_path: Path) -> Iterator[Any]:
    """Starts `metaops serve` child processes on this test's database."""
    servers: list[ServerProcess] = []

    def make(**env: str) -> ServerProcess:
        server = ServerProcess(database_url=db_url, data_dir=tmp_path / f"srv{len(servers)}",
                               extra_env=env)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()
