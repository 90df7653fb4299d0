"""JSON views of ORM rows for API responses (one shape per resource)."""

from __future__ import annotations

from typing import Any

from core.models import Alert, Incident
from core.timeutil import iso


def incident_view(row: Incident, alert_count: int | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": row.id,
        "title": row.title,
        "severity": row.severity,
        "status": row.status,
        "source": row.source,
        "services": row.services,
        "labels": row.labels,
        "investigation": row.investigation,
        "created_at": iso(row.created_at),
        "updated_at": iso(row.updated_at),
        "resolved_at": iso(row.resolved_at) if row.resolved_at else None,
    }
    if alert_count is not None:
        out["alert_count"] = alert_count
    return out


def alert_view(row: Alert) -> dict[str, Any]:
    return {
        "id": row.id,
        "source": row.source,
        "fingerprint": row.fingerprint,
        "status": row.status,
        "name": row.name,
        "title": row.title,
        "severity": row.severity,
        "service": row.service,
        "labels": row.labels,
        "annotations": row.annotations,
        "starts_at": iso(row.starts_at),
        "ends_at": iso(row.ends_at) if row.ends_at else None,
        "generator_url": row.generator_url,
        "first_seen": iso(row.first_seen),
        "last_seen": iso(row.last_seen),
        "times_seen": row.times_seen,
        "redacted_paths": row.redacted_paths,
        "payload": row.payload,
    }
