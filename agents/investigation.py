"""What an investigation work item does (for now: mark the incident ready for the graph)."""

from __future__ import annotations

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from core.models import Incident, WorkItem
from guardrails import audit


async def run_investigation(session: AsyncSession, item: WorkItem) -> None:
    """Runs inside the transaction that completes `item`, so its effects commit exactly once."""
    await session.execute(
        update(Incident).where(Incident.id == item.incident_id).values(investigation="ready")
    )
    await audit.append(
        session, type="investigation.ready", actor=audit.WORKER,
        incident_id=item.incident_id, target=f"incident:{item.incident_id}", outcome="ready",
        payload={"work_item": item.id, "attempt": item.attempts},
    )
