"""Persists a delivery: dedup alerts by identity, group into incidents, queue investigations."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from agents.intake.normalize import SEVERITY_RANK, Delivery, NormalizedAlert
from core.database import execute_count
from core.models import Alert, Incident, WorkItem
from core.timeutil import utcnow
from guardrails import audit

INVESTIGATE = "investigate"


@dataclass(slots=True)
class IngestResult:
    incident_ids: list[int] = field(default_factory=list)
    new_alerts: int = 0
    updated_alerts: int = 0
    ignored_alerts: int = 0


def _insert(session: AsyncSession, model: Any) -> Any:
    dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
    return (sqlite_insert if dialect == "sqlite" else pg_insert)(model)


def open_key_for(group_key: str) -> str:
    return hashlib.sha256(group_key.encode("utf-8")).hexdigest()


def _firing_key(source: str, fingerprint: str) -> str:
    return f"{source}:{fingerprint}"


async def enqueue(session: AsyncSession, incident_id: int, kind: str = INVESTIGATE) -> None:
    """Queue one work item of `kind` unless one is already pending for the incident."""
    stmt = (
        _insert(session, WorkItem)
        .values(incident_id=incident_id, kind=kind, status="pending",
                pending_key=f"{kind}:{incident_id}", attempts=0, created_at=utcnow())
        .on_conflict_do_nothing(index_elements=["pending_key"])
    )
    await session.execute(stmt)


async def _find_alert(session: AsyncSession, source: str, a: NormalizedAlert) -> Alert | None:
    key = _firing_key(source, a.fingerprint)
    if a.starts_at is None:
        return await session.scalar(select(Alert).where(Alert.firing_key == key))
    found = await session.scalar(
        select(Alert).where(Alert.source == source, Alert.fingerprint == a.fingerprint,
                            Alert.starts_at == a.starts_at)
    )
    if found is None and a.status == "firing":
        # A new episode of the same labels: the previous one must have ended (we missed it).
        stale = await session.scalar(select(Alert).where(Alert.firing_key == key))
        if stale is not None:
            stale.status, stale.firing_key, stale.ends_at = "resolved", None, a.starts_at
            await session.flush()
    return found


async def _open_incident(
    session: AsyncSession, d: Delivery, a: NormalizedAlert
) -> tuple[Incident, bool]:
    key = open_key_for(d.group_key)
    found = await session.scalar(select(Incident).where(Incident.open_key == key))
    if found is not None:
        return found, False
    now = utcnow()
    stmt = (
        _insert(session, Incident)
        .values(source=d.source, group_key=d.group_key, open_key=key, title=a.title[:512],
                severity=a.severity, status="open", investigation="queued",
                labels=d.meta.get("group_labels") or {}, services=[],
                created_at=now, updated_at=now)
        .on_conflict_do_nothing(index_elements=["open_key"])
        .returning(Incident.id)
    )
    new_id = (await session.execute(stmt)).scalar()
    incident = await session.scalar(select(Incident).where(Incident.open_key == key))
    assert incident is not None  # inserted here or by a concurrent replica
    return incident, new_id is not None


def _absorb(incident: Incident, a: NormalizedAlert) -> None:
    if SEVERITY_RANK.get(a.severity, 0) > SEVERITY_RANK.get(incident.severity, 0):
        incident.severity = a.severity
    if a.service and a.service not in incident.services:
        incident.services = [*incident.services, a.service]
    incident.updated_at = utcnow()


async def _update_existing(existing: Alert, a: NormalizedAlert) -> None:
    now = utcnow()
    existing.last_seen = now
    existing.times_seen += 1
    existing.payload = a.payload
    existing.annotations = a.annotations
    existing.redacted_paths = a.redacted_paths
    if a.status == "resolved" and existing.status == "firing":
        existing.status = "resolved"
        existing.ends_at = a.ends_at or now
        existing.firing_key = None


async def _resolve_if_quiet(session: AsyncSession, incident: Incident, d: Delivery) -> None:
    firing = await session.scalar(
        select(func.count()).select_from(Alert).where(
            Alert.incident_id == incident.id, Alert.status == "firing")
    )
    if firing or incident.status != "open":
        return
    now = utcnow()
    changed = await execute_count(
        session,
        update(Incident).where(Incident.id == incident.id, Incident.status == "open")
        .values(status="resolved", open_key=None, resolved_at=now, updated_at=now),
    )
    if changed:
        await audit.append(session, type="incident.resolved", actor=_actor(d),
                           incident_id=incident.id, target=f"incident:{incident.id}",
                           outcome="resolved", payload={"reason": "all alerts resolved"})


def _actor(d: Delivery) -> audit.Actor:
    return audit.Actor("system", d.principal, "webhook")


async def store_delivery(session: AsyncSession, d: Delivery) -> IngestResult:
    """Store one delivery inside the caller's write transaction."""
    result = IngestResult()
    touched: dict[int, Incident] = {}
    for a in d.alerts:
        existing = await _find_alert(session, d.source, a)
        if existing is not None:
            await _update_existing(existing, a)
            result.updated_alerts += 1
            incident = await session.get(Incident, existing.incident_id)
            if incident is not None:
                touched.setdefault(incident.id, incident)
            continue
        if a.status == "resolved" and a.starts_at is None:
            # Resolve for a dedup key with no open alert: PagerDuty drops these too.
            result.ignored_alerts += 1
            continue
        incident, created = await _open_incident(session, d, a)
        if created:
            await audit.append(session, type="incident.opened", actor=_actor(d),
                               incident_id=incident.id, target=f"incident:{incident.id}",
                               payload={"source": d.source, "title": incident.title,
                                        "severity": incident.severity})
            if a.status == "firing":
                await enqueue(session, incident.id)
        _absorb(incident, a)
        now = utcnow()
        session.add(
            Alert(
                incident_id=incident.id, source=d.source, fingerprint=a.fingerprint,
                firing_key=_firing_key(d.source, a.fingerprint) if a.status == "firing" else None,
                status=a.status, name=a.name[:256], title=a.title, severity=a.severity,
                service=a.service, labels=a.labels, annotations=a.annotations,
                starts_at=a.starts_at or a.event_time or now,
                ends_at=a.ends_at if a.status == "resolved" else None,
                generator_url=a.generator_url, payload=a.payload,
                redacted_paths=a.redacted_paths, first_seen=now, last_seen=now, times_seen=1,
            )
        )
        await session.flush()
        result.new_alerts += 1
        touched.setdefault(incident.id, incident)
    for incident in touched.values():
        await _resolve_if_quiet(session, incident, d)
    result.incident_ids = list(touched)
    await audit.append(
        session, type="alert.received", actor=_actor(d), target=d.group_key[:512],
        incident_id=result.incident_ids[0] if len(result.incident_ids) == 1 else None,
        outcome="accepted",
        payload={"source": d.source, "alerts": len(d.alerts), "new": result.new_alerts,
                 "updated": result.updated_alerts, "ignored": result.ignored_alerts,
                 "incident_ids": result.incident_ids,
                 "fingerprints": [a.fingerprint for a in d.alerts[:50]]},
    )
    return result
