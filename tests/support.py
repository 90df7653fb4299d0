"""Test support: per-test databases on SQLite or PostgreSQL, in-process app, server processes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg

from core.migrations import upgrade

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
SCENARIOS = SHARED / "reference" / "scenarios"
WIRE = SHARED / "reference" / "wire"
BACKEND = os.environ.get("METAOPS_TEST_DB", "sqlite")
PG_URL = os.environ.get("METAOPS_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
# A Redis database of the pass's own: the SQLite and PostgreSQL passes may run at once.
REDIS_TEST_URL = f"redis://127.0.0.1:6379/{9 if BACKEND == 'sqlite' else 10}"
ADMIN_TOKEN = "mo_test_admin_token_0123456789abcdef"
WEBHOOK_TOKEN = "mo_test_webhook_token_0123456789abcdef"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def load_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _pg_admin() -> psycopg.Connection[Any]:
    return psycopg.connect(PG_URL, autocommit=True)


def _pg_url_for(dbname: str) -> str:
    base, _, _ = PG_URL.rpartition("/")
    return f"{base}/{dbname}"


class DatabaseFactory:
    """Migrates one template per session; each test gets a fresh copy of it."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.backend = BACKEND
        self.created: list[str] = []
        if self.backend == "sqlite":
            self.template = workdir / "template.db"
            upgrade(f"sqlite+aiosqlite:///{self.template}")
        else:
            self.template_name = f"metaops_tpl_{os.getpid()}_{uuid.uuid4().hex[:6]}"
            with _pg_admin() as conn:
                conn.execute(f'CREATE DATABASE "{self.template_name}"')
            upgrade(_pg_url_for(self.template_name).replace(
                "postgresql://", "postgresql+psycopg://"))
            _setup_pg_checkpointer(_pg_url_for(self.template_name))

    def new(self, directory: Path) -> str:
        """A fresh migrated database; returns its async SQLAlchemy URL."""
        if self.backend == "sqlite":
            directory.mkdir(parents=True, exist_ok=True)
            target = directory / "metaops.db"
            shutil.copyfile(self.template, target)
            return f"sqlite+aiosqlite:///{target}"
        name = f"metaops_t_{uuid.uuid4().hex[:12]}"
        with _pg_admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{self.template_name}"')
        self.created.append(name)
        return _pg_url_for(name).replace("postgresql://", "postgresql+psycopg://")

    def close(self) -> None:
        if self.backend == "sqlite":
            return
        with _pg_admin() as conn:
            for name in [*self.created, self.template_name]:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _setup_pg_checkpointer(dsn: str) -> None:
    """Create LangGraph's checkpoint tables in the template once, not in every test database."""
    from langgraph.checkpoint.postgres import PostgresSaver

    with PostgresSaver.from_conn_string(dsn) as saver:
        saver.setup()


def sync_dsn(url: str) -> str:
    """A DSN for direct (non-SQLAlchemy) access: sqlite file path or psycopg URL."""
    if url.startswith("sqlite"):
        return url.split("///", 1)[1]
    return url.replace("postgresql+psycopg://", "postgresql://")


def raw_execute(url: str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Run SQL straight on the database, behind the application's back."""
    if url.startswith("sqlite"):
        import sqlite3

        conn = sqlite3.connect(sync_dsn(url))
        try:
            rows = conn.execute(sql, params).fetchall()
            conn.commit()
            return rows
        finally:
            conn.close()
    with psycopg.connect(sync_dsn(url), autocommit=True) as pconn:
        cur = pconn.execute(sql.replace("?", "%s"), params)  # type: ignore[arg-type]
        return cur.fetchall() if cur.description else []


@dataclass
class ServerProcess:
    """`metaops serve` in a child process, killable and restartable on the same database."""

    database_url: str
    data_dir: Path
    port: int = field(default_factory=free_port)
    extra_env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    starts: int = 0
    command: tuple[str, ...] = ("serve",)  # e.g. ("slack", "socket")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("METAOPS_")}
        env.update({
            "METAOPS_ENV": "test",
            "METAOPS_DATABASE_URL": self.database_url,
            "METAOPS_DATA_DIR": str(self.data_dir),
            "METAOPS_PORT": str(self.port),
            "METAOPS_ADMIN_TOKEN": ADMIN_TOKEN,
            "METAOPS_WEBHOOK_TOKEN": WEBHOOK_TOKEN,
            "METAOPS_WORKER_POLL_SECONDS": "0.1",
            "METAOPS_WORKER_LEASE_SECONDS": "3",
        })
        env.update(self.extra_env)
        return env

    def start(self, timeout: float = 30.0) -> None:
        self.starts += 1
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.data_dir / f"server-{self.starts}.log"
        log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "api.cli", *self.command], cwd=ROOT, env=self.env(),
            stdout=log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log_path.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"server did not become ready: {self.log_path.read_text()[-3000:]}")

    def kill(self) -> None:
        """SIGKILL: no shutdown hooks, no flushing."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()

    def logs(self) -> str:
        return "".join(p.read_text(errors="replace")
                       for p in sorted(self.data_dir.glob("server-*.log")))

    def client(self, token: str = ADMIN_TOKEN) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {token}"},
                            timeout=30.0)


def wait_until(predicate: Any, what: str, *servers: ServerProcess, within: float = 60.0) -> Any:
    """Poll `predicate` until it returns something truthy; on timeout fail with the servers'
    recent logs."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    logs = "\n".join(s.logs()[-3000:] for s in servers)
    raise AssertionError(f"timed out waiting for {what}\n{logs}")
