"""The one module api/ calls into agents through: intake, worker pool, investigations."""

from __future__ import annotations

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
from agents.investigation import run_investigation
from agents.worker import WorkerPool
from core.database import Database
from core.settings import Settings


class Runtime:
    """Background machinery of one server process: group-commit ingest and the worker pool."""

    def __init__(self, db: Database, settings: Settings) -> None:
        self.workers = WorkerPool(
            db, run_investigation, concurrency=settings.worker_concurrency,
            poll_seconds=settings.worker_poll_seconds, lease_seconds=settings.worker_lease_seconds,
        )
        self.batcher = IngestBatcher(
            db, max_batch=settings.ingest_batch_max, wait_ms=settings.ingest_batch_wait_ms,
            on_commit=self.workers.notify,
        )

    async def start(self) -> None:
        await self.batcher.start()
        await self.workers.start()

    async def stop(self) -> None:
        await self.batcher.stop()
        await self.workers.stop()

    async def ingest(self, delivery: Delivery) -> IngestResult:
        return await self.batcher.submit(delivery)


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
