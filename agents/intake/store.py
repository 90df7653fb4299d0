"""Persists deliveries: dedup alerts by identity, group into incidents, queue investigations.

A whole group-commit batch is stored set-wise: existing alerts and open incidents are fetched
with a few IN queries, changes are made in memory, and one flush writes them (the audit events
included), so the cost per delivery stays small and flat. It is plain synchronous code: the
batcher runs it on the database's writer thread, one hop per batch.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, tuple_
from sqlalchemy.orm import Session, load_only

from agents.intake.normalize import SEVERITY_RANK, Delivery, NormalizedAlert
from core.database import insert_for
from core.models import Alert, Incident, WorkItem
from core.timeutil import iso, utcnow
from guardrails import audit

INVESTIGATE = "investigate"
POSTMORTEM = "postmortem"
_CHUNK = 300  # keeps IN lists well under SQLite's bound-parameter limit

Identity = tuple[str, str, datetime]


@dataclass(slots=True)
class IngestResult:
    incident_ids: list[int] = field(default_factory=list)
    new_alerts: int = 0
    updated_alerts: int = 0
    ignored_alerts: int = 0
    queued: int = 0


def open_key_for(group_key: str) -> str:
    return hashlib.sha256(group_key.encode("utf-8")).hexdigest()


def _firing_key(source: str, fingerprint: str) -> str:
    return f"{source}:{fingerprint}"


def _chunks(items: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start:start + _CHUNK]


def enqueue(session: Session, incident_id: int, kind: str = INVESTIGATE) -> bool:
    """Queue one work item of `kind` unless one is already pending; True if queued now."""
    stmt = (
        insert_for(session, WorkItem)
        .values(incident_id=incident_id, kind=kind, status="pending",
                pending_key=f"{kind}:{incident_id}", attempts=0, created_at=utcnow())
        .on_conflict_do_nothing(index_elements=["pending_key"])
        .returning(WorkItem.id)
    )
    return session.execute(stmt).scalar() is not None


# Only what dedup needs: the JSON columns are overwritten on update, never read here.
_ALERT_KEYS = select(Alert).options(load_only(
    Alert.id, Alert.incident_id, Alert.source, Alert.fingerprint, Alert.starts_at,
    Alert.status, Alert.firing_key, Alert.times_seen, raiseload=True))


class _Batch:
    """In-memory view of the rows a batch touches."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.by_identity: dict[Identity, Alert] = {}
        self.by_firing: dict[str, Alert] = {}
        self.open_incidents: dict[str, Incident] = {}
        self.incidents: dict[int, Incident] = {}
        self.maybe_quiet: set[int] = set()

    def remember(self, alert: Alert) -> None:
        self.by_identity[(alert.source, alert.fingerprint, alert.starts_at)] = alert
        if alert.firing_key:
            self.by_firing[alert.firing_key] = alert

    def prefetch(self, deliveries: Sequence[Delivery]) -> None:
        firing_keys = sorted({_firing_key(d.source, a.fingerprint)
                              for d in deliveries for a in d.alerts})
        identities = sorted({(d.source, a.fingerprint, a.starts_at) for d in deliveries
                             for a in d.alerts if a.starts_at is not None})
        for keys in _chunks(firing_keys):
            for alert in self.session.scalars(
                    _ALERT_KEYS.where(Alert.firing_key.in_(keys))):
                self.remember(alert)
        for ids in _chunks(identities):
            for alert in self.session.scalars(_ALERT_KEYS.where(
                    tuple_(Alert.source, Alert.fingerprint, Alert.starts_at).in_(ids))):
                self.remember(alert)
        open_keys = sorted({open_key_for(d.group_key) for d in deliveries})
        for keys in _chunks(open_keys):
            for incident in self.session.scalars(
                    select(Incident).where(Incident.open_key.in_(keys))):
                self.open_incidents[incident.open_key or ""] = incident
                self.incidents[incident.id] = incident

    def incident(self, incident_id: int) -> Incident:
        found = self.incidents.get(incident_id)
        if found is None:
            found = self.session.get(Incident, incident_id)
            assert found is not None
            self.incidents[incident_id] = found
        return found

    def open_incident(self, d: Delivery, a: NormalizedAlert) -> tuple[Incident, bool]:
        key = open_key_for(d.group_key)
        found = self.open_incidents.get(key)
        if found is not None:
            return found, False
        now = utcnow()
        stmt = (
            insert_for(self.session, Incident)
            .values(source=d.source, group_key=d.group_key, open_key=key, title=a.title[:512],
                    severity=a.severity, status="open", investigation="queued",
                    labels=d.meta.get("group_labels") or {}, services=[],
                    created_at=now, updated_at=now)
            .on_conflict_do_nothing(index_elements=["open_key"])
            .returning(Incident.id)
        )
        new_id = self.session.execute(stmt).scalar()
        # Inserted here, or a moment ago by another replica: either way it is the open one.
        incident = self.session.scalar(select(Incident).where(Incident.open_key == key))
        assert incident is not None
        self.open_incidents[key] = incident
        self.incidents[incident.id] = incident
        return incident, new_id is not None


def _absorb(incident: Incident, a: NormalizedAlert, now: datetime) -> None:
    if SEVERITY_RANK.get(a.severity, 0) > SEVERITY_RANK.get(incident.severity, 0):
        incident.severity = a.severity
    if a.service and a.service not in incident.services:
        incident.services = [*incident.services, a.service]
    incident.updated_at = now


def _actor(d: Delivery) -> audit.Actor:
    return audit.Actor("system", d.principal, "webhook")


def _update(existing: Alert, a: NormalizedAlert, batch: _Batch, now: datetime) -> None:
    existing.last_seen = now
    existing.times_seen += 1
    existing.payload = a.payload
    existing.annotations = a.annotations
    existing.redacted_paths = a.redacted_paths
    if a.status == "resolved" and existing.status == "firing":
        batch.by_firing.pop(existing.firing_key or "", None)
        existing.status, existing.firing_key = "resolved", None
        existing.ends_at = a.ends_at or now
        batch.maybe_quiet.add(existing.incident_id)


def _store_alert(batch: _Batch, d: Delivery, a: NormalizedAlert,
                       result: IngestResult, touched: dict[int, None]) -> None:
    now = utcnow()
    key = _firing_key(d.source, a.fingerprint)
    if a.starts_at is None:
        existing = batch.by_firing.get(key)
    else:
        existing = batch.by_identity.get((d.source, a.fingerprint, a.starts_at))
        stale = batch.by_firing.get(key)
        if existing is None and a.status == "firing" and stale is not None:
            # A new episode of the same labels: the previous one must have ended unseen.
            stale.status, stale.firing_key, stale.ends_at = "resolved", None, a.starts_at
            batch.by_firing.pop(key)
            batch.maybe_quiet.add(stale.incident_id)
            batch.session.flush()  # frees the firing key before the new row takes it
    if existing is not None:
        _update(existing, a, batch, now)
        result.updated_alerts += 1
        touched[existing.incident_id] = None
        return
    if a.status == "resolved" and a.starts_at is None:
        # Resolve for a dedup key with no open alert: PagerDuty drops these too.
        result.ignored_alerts += 1
        return
    incident, created = batch.open_incident(d, a)
    if created:
        audit.append_sync(batch.session, type="incident.opened", actor=_actor(d),
                     incident_id=incident.id, target=f"incident:{incident.id}",
                     payload={"source": d.source, "title": incident.title,
                              "severity": incident.severity})
        if a.status == "firing" and enqueue(batch.session, incident.id):
            result.queued += 1
    _absorb(incident, a, now)
    alert = Alert(
        incident_id=incident.id, source=d.source, fingerprint=a.fingerprint,
        firing_key=key if a.status == "firing" else None,
        status=a.status, name=a.name[:256], title=a.title, severity=a.severity,
        service=a.service, labels=a.labels, annotations=a.annotations,
        starts_at=a.starts_at or a.event_time or now,
        ends_at=a.ends_at if a.status == "resolved" else None,
        generator_url=a.generator_url, payload=a.payload,
        redacted_paths=a.redacted_paths, first_seen=now, last_seen=now, times_seen=1,
    )
    batch.session.add(alert)
    batch.remember(alert)
    if a.status == "resolved":
        batch.maybe_quiet.add(incident.id)
    result.new_alerts += 1
    touched[incident.id] = None


def _resolve_quiet(batch: _Batch, actors: dict[int, audit.Actor]) -> None:
    """Resolve the incidents whose last firing alert resolved in this batch."""
    candidates = sorted(batch.maybe_quiet)
    if not candidates:
        return
    batch.session.flush()
    firing: dict[int, int] = {}
    for ids in _chunks(candidates):
        rows = batch.session.execute(
            select(Alert.incident_id, func.count()).where(
                Alert.incident_id.in_(ids), Alert.status == "firing").group_by(Alert.incident_id))
        firing.update({int(i): int(n) for i, n in rows.all()})
    now = utcnow()
    for incident_id in candidates:
        incident = batch.incident(incident_id)
        if firing.get(incident_id) or incident.status != "open":
            continue
        batch.open_incidents.pop(incident.open_key or "", None)
        incident.status, incident.open_key = "resolved", None
        incident.resolved_at = incident.updated_at = now
        audit.append_sync(batch.session, type="incident.resolved",
                     actor=actors.get(incident_id, audit.SYSTEM), incident_id=incident_id,
                     target=f"incident:{incident_id}", outcome="resolved",
                     payload={"reason": "all alerts resolved"})
        enqueue(batch.session, incident_id, POSTMORTEM)


def _requeue_postmortems(batch: _Batch, touched: Iterable[int]) -> None:
    """A late event on an already resolved incident re-resolves its post-mortem: one query
    for the whole batch, not one per incident."""
    ids = sorted(set(touched))
    for chunk in _chunks(ids):
        for incident_id in batch.session.scalars(select(Incident.id).where(
                Incident.id.in_(chunk), Incident.status == "resolved")):
            enqueue(batch.session, int(incident_id), POSTMORTEM)


def store_batch(session: Session, deliveries: Sequence[Delivery]) -> list[IngestResult]:
    """Store deliveries, in order, inside the caller's write transaction."""
    batch = _Batch(session)
    results: list[IngestResult] = []
    actors: dict[int, audit.Actor] = {}
    with session.no_autoflush:
        batch.prefetch(deliveries)
        for d in deliveries:
            result = IngestResult()
            touched: dict[int, None] = {}
            for a in d.alerts:
                _store_alert(batch, d, a, result, touched)
            result.incident_ids = list(touched)
            for incident_id in touched:
                actors[incident_id] = _actor(d)
            audit.append_sync(
                session, type="alert.received", actor=_actor(d), target=d.group_key[:512],
                incident_id=result.incident_ids[0] if len(result.incident_ids) == 1 else None,
                outcome="accepted",
                payload={"source": d.source, "alerts": len(d.alerts), "new": result.new_alerts,
                         "updated": result.updated_alerts, "ignored": result.ignored_alerts,
                         "incident_ids": result.incident_ids,
                         "fingerprints": [a.fingerprint for a in d.alerts[:50]],
                         # When the alerts say they started: the post-mortem cites this event
                         # for time to detect.
                         "starts_at": [iso(a.starts_at) if a.starts_at else None
                                       for a in d.alerts[:50]],
                         "ends_at": [iso(a.ends_at) if a.ends_at else None
                                     for a in d.alerts[:50]]},
            )
            results.append(result)
        _requeue_postmortems(batch, actors)
        _resolve_quiet(batch, actors)
    session.flush()
    return results
