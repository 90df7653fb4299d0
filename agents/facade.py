"""The one module api/ calls into agents through: intake, workers, graph runs, decisions."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from contextlib import AsyncExitStack
from typing import Any

from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from agents.checkpoint import open_checkpointer
from agents.intake.batcher import IngestBatcher
from agents.intake.normalize import (
    Delivery,
    from_alertmanager,
    from_generic,
    from_grafana,
    from_pagerduty,
)
from agents.intake.payloads import (
    AlertmanagerWebhook,
    GenericAlert,
    GrafanaWebhook,
    PagerDutyEvent,
)
from agents.intake.store import IngestResult
from agents.investigation import InvestigationRunner, start_investigation
from agents.reasoner import RuleReasoner
from agents.runbooks.loader import load_runbooks
from agents.specialists.config import SpecialistConfig
from agents.supervisor import GraphDeps, build_graph
from agents.toolbox import build_registry
from agents.worker import WorkerPool
from core.database import Database
from core.models import Action, WorkItem
from core.settings import Settings
from guardrails import audit
from guardrails.actions import DecisionResult, decide_and_commit, escalate_due, expire_due
from guardrails.executor import Executor, set_kill_switch
from guardrails.policy import Policy
from guardrails.tokens import Principal

log = logging.getLogger("metaops.runtime")


class Runtime:
    """Background machinery of one server process: ingest, workers, graph runs, the sweep."""

    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings
        self.workers = WorkerPool(
            db, start_investigation, concurrency=settings.worker_concurrency,
            poll_seconds=settings.worker_poll_seconds, lease_seconds=settings.worker_lease_seconds,
            after=self._after_item,
        )
        self.batcher = IngestBatcher(
            db, max_batch=settings.ingest_batch_max, wait_ms=settings.ingest_batch_wait_ms,
            on_commit=self.workers.notify,
        )
        self.registry = build_registry(settings)
        self.policy = Policy.load(settings.policy_file)
        self.executor = Executor(db, self.registry, crash_hook=self._crash_hook)
        self.runner: InvestigationRunner | None = None
        self._stack = AsyncExitStack()
        self._tasks: set[asyncio.Task[Any]] = set()
        # Jobs live in the database (the job store), so scheduled work survives restarts.
        self._scheduler = AsyncIOScheduler(
            jobstores={"default": SQLAlchemyJobStore(engine=db.sync_engine)})

    def _crash_hook(self, point: str) -> None:
        if self.settings.env == "test" and self.settings.test_crash_point == point:
            log.warning("test hook: dying at %s", point)
            os._exit(137)

    async def start(self) -> None:
        saver = await self._stack.enter_async_context(
            open_checkpointer(self.db, self.settings.data_dir))
        runbooks = load_runbooks()
        graph = build_graph(GraphDeps(self.db, self.registry, self.policy,
                                      RuleReasoner(runbooks), self.executor,
                                      SpecialistConfig.from_settings(self.settings)), saver)
        self.runner = InvestigationRunner(self.db, graph)
        await self.executor.reconcile()
        await self.batcher.start()
        await self.workers.start()
        _CURRENT["runtime"] = self
        self._scheduler.add_job(scheduled_sweep, "interval", seconds=self.settings.sweep_seconds,
                                id="sweep", max_instances=1, coalesce=True,
                                replace_existing=True, misfire_grace_time=60)
        self._scheduler.start()
        self._spawn(self.runner.recover())

    async def stop(self) -> None:
        self._scheduler.shutdown(wait=False)
        await self.batcher.stop()
        await self.workers.stop()
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self._stack.aclose()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _after_item(self, item: WorkItem) -> None:
        assert self.runner is not None
        await self.runner.run(item.incident_id)

    async def ingest(self, delivery: Delivery) -> IngestResult:
        return await self.batcher.submit(delivery)

    async def decide(self, action_id: str, principal: Principal, decision: str, via: str,
                     reason: str | None = None) -> DecisionResult:
        """Record a human decision, then let the incident's graph carry on in the background."""
        result = await decide_and_commit(self.db, action_id, principal, decision, via, reason)
        if result.changed and result.action.incident_id is not None:
            self._spawn(self._continue(result.action.incident_id, action_id))
        return result

    async def _continue(self, incident_id: int, action_id: str) -> None:
        assert self.runner is not None
        try:
            if not await self.runner.resume_if_decided(incident_id):
                # Not paused on it (e.g. the graph is busy with another action): run it here.
                await self.executor.execute(action_id)
        except Exception:
            log.exception("continuing incident %d failed", incident_id)

    async def set_kill_switch(self, on: bool, actor: audit.Actor) -> None:
        async with self.db.write() as session:
            await set_kill_switch(session, on, actor)
        if not on:
            self._spawn(self._release())

    async def _release(self) -> None:
        await self.executor.run_approved()
        assert self.runner is not None
        await self.runner.recover()

    async def sweep(self) -> None:
        """Periodic: escalate slow approvals, expire overdue ones (default deny), settle graphs."""
        try:
            async with self.db.write() as session:
                expired: list[Action] = await expire_due(session)
                await escalate_due(session)
            assert self.runner is not None
            for incident_id in {a.incident_id for a in expired if a.incident_id is not None}:
                await self.runner.resume_if_decided(incident_id)
        except Exception:
            log.exception("sweep failed")


# The job store keeps jobs by reference ("module:function"), so jobs find the runtime here.
_CURRENT: dict[str, Runtime] = {}


async def scheduled_sweep() -> None:
    runtime = _CURRENT.get("runtime")
    if runtime is not None:
        await runtime.sweep()


__all__ = [
    "AlertmanagerWebhook",
    "Delivery",
    "GenericAlert",
    "GrafanaWebhook",
    "IngestResult",
    "PagerDutyEvent",
    "Runtime",
    "from_alertmanager",
    "from_generic",
    "from_grafana",
    "from_pagerduty",
]
