"""JSON views of ORM rows for API responses (one shape per resource), shared by REST and chat."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.errors import NotFound
from core.models import Action, ActionApproval, Alert, AuditEvent, Finding, Incident
from core.timeutil import iso
from guardrails.audit import row_to_export


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


async def incident_detail(session: AsyncSession, incident_id: int) -> dict[str, Any]:
    """One incident with its alerts, findings, actions and timeline (its audit events): what
    GET /api/v1/incidents/{id} and the chat's `incident N` both show."""
    incident = await session.get(Incident, incident_id)
    if incident is None:
        raise NotFound(f"no incident {incident_id}", {"field": "incident_id"})
    alerts = (await session.scalars(
        select(Alert).where(Alert.incident_id == incident_id).order_by(Alert.id))).all()
    events = (await session.scalars(
        select(AuditEvent).where(AuditEvent.incident_id == incident_id)
        .order_by(AuditEvent.seq))).all()
    actions = list((await session.scalars(
        select(Action).where(Action.incident_id == incident_id)
        .order_by(Action.created_at))).all())
    findings = (await session.scalars(
        select(Finding).where(Finding.incident_id == incident_id).order_by(Finding.id))).all()
    out = incident_view(incident, len(alerts))
    out["alerts"] = [alert_view(a) for a in alerts]
    out["findings"] = [
        {"specialist": f.specialist, "kind": f.kind, "summary": f.summary, "data": f.data,
         "created_at": iso(f.created_at)} for f in findings]
    out["actions"] = [{"id": a.id, "tool": a.tool, "status": a.status,
                       "preview": a.preview.get("summary"), "args": a.args} for a in actions]
    out["timeline"] = [
        {"seq": e["seq"], "ts": e["ts"], "type": e["type"], "actor": e["actor"],
         "outcome": e["outcome"], "payload": e["payload"]}
        for e in map(row_to_export, events)
    ]
    return out


def action_view(action: Action, approvals: list[ActionApproval]) -> dict[str, Any]:
    return {
        "id": action.id,
        "incident_id": action.incident_id,
        "tool": action.tool,
        "effect": action.effect,
        "args": action.args,
        "status": action.status,
        "preview": action.preview,
        "policy": action.decision,
        "required_approvals": action.required_approvals,
        "approver_role": action.approver_role,
        "requested_by": action.requested_by,
        "approvals": [{"by": a.principal, "decision": a.decision, "via": a.via,
                       "at": iso(a.created_at), "reason": a.reason} for a in approvals],
        "expires_at": iso(action.expires_at) if action.expires_at else None,
        "inverse": action.inverse,
        "result": action.result,
        "error": action.error,
        "created_at": iso(action.created_at),
        "executed_at": iso(action.executed_at) if action.executed_at else None,
    }


async def approvals_for(session: AsyncSession,
                        ids: list[str]) -> dict[str, list[ActionApproval]]:
    """Each action's approvals and rejections, oldest first."""
    out: dict[str, list[ActionApproval]] = {i: [] for i in ids}
    if not ids:
        return out
    for row in await session.scalars(select(ActionApproval).where(
            ActionApproval.action_id.in_(ids)).order_by(ActionApproval.id)):
        out[row.action_id].append(row)
    return out
