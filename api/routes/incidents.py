"""REST: incidents list and detail (alerts, findings, actions, timeline)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query
from sqlalchemy import func, select

from api.auth import require
from api.params import MAX_ID, IncidentId, utc_param
from api.state import AppState, app_state
from api.views import incident_detail, incident_view
from core.models import Alert, Incident
from guardrails.tokens import Principal

router = APIRouter(prefix="/api/v1/incidents", tags=["incidents"])
viewer = require("viewer")


@router.get("")
async def list_incidents(
    status: Literal["open", "resolved"] | None = None,
    since: datetime | None = Query(None, description="Only incidents created at or after this"),
    limit: int = Query(50, ge=1, le=500),
    cursor: int | None = Query(None, ge=1, le=MAX_ID,
                               description="next_cursor from the previous page"),
    state: AppState = Depends(app_state),
    _: Principal = Depends(viewer),
) -> dict[str, Any]:
    """Incidents, newest first."""
    stmt = select(Incident).order_by(Incident.id.desc()).limit(limit + 1)
    if status:
        stmt = stmt.where(Incident.status == status)
    since = utc_param("since", since)
    if since:
        stmt = stmt.where(Incident.created_at >= since)
    if cursor:
        stmt = stmt.where(Incident.id < cursor)
    async with state.db.read() as session:
        rows = list((await session.scalars(stmt)).all())
        page = rows[:limit]
        counts: dict[int, int] = {}
        if page:
            counts = dict(
                (await session.execute(
                    select(Alert.incident_id, func.count()).where(
                        Alert.incident_id.in_([r.id for r in page])).group_by(Alert.incident_id)
                )).all()
            )
    return {
        "incidents": [incident_view(r, counts.get(r.id, 0)) for r in page],
        "next_cursor": page[-1].id if len(rows) > limit else None,
    }


@router.get("/{incident_id}")
async def get_incident(
    incident_id: IncidentId,
    state: AppState = Depends(app_state),
    _: Principal = Depends(viewer),
) -> dict[str, Any]:
    """One incident with its alerts, findings, actions and timeline (its audit events)."""
    async with state.db.read() as session:
        return await incident_detail(session, incident_id)
