"""REST: audit trail listing with filters and cursor, chain verification, NDJSON export."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse
from sqlalchemy import select

from api.auth import require
from api.params import MAX_SEQ, NO_NUL, OptionalIncidentId, utc_param
from api.state import AppState, app_state
from core.models import AuditEvent
from guardrails import audit
from guardrails.tokens import Principal

router = APIRouter(prefix="/api/v1/audit", tags=["audit"])


@router.get("")
async def list_events(
    incident_id: OptionalIncidentId = None,
    actor: str | None = Query(None, max_length=256, pattern=NO_NUL,
                              description="Actor id (principal name)"),
    type: str | None = Query(None, max_length=64, pattern=NO_NUL,
                             description="Event type, e.g. alert.received"),
    since: datetime | None = None,
    until: datetime | None = None,
    cursor: int | None = Query(None, ge=0, le=MAX_SEQ,
                               description="Return events with seq after this"),
    limit: int = Query(100, ge=1, le=1000),
    order: Literal["asc", "desc"] = Query("asc", description="desc: newest first"),
    state: AppState = Depends(app_state),
    _: Principal = Depends(require("viewer")),  # noqa: B008
) -> dict[str, Any]:
    """Audit events in seq order (or newest first); pass next_cursor back as cursor."""
    by = AuditEvent.seq.desc() if order == "desc" else AuditEvent.seq
    stmt = select(AuditEvent).order_by(by).limit(limit + 1)
    if incident_id is not None:
        stmt = stmt.where(AuditEvent.incident_id == incident_id)
    if actor:
        stmt = stmt.where(AuditEvent.actor_id == actor)
    if type:
        stmt = stmt.where(AuditEvent.type == type)
    since = utc_param("since", since)
    if since:
        stmt = stmt.where(AuditEvent.ts >= since)
    until = utc_param("until", until)
    if until:
        stmt = stmt.where(AuditEvent.ts < until)
    if cursor is not None:
        stmt = stmt.where(AuditEvent.seq < cursor if order == "desc" else AuditEvent.seq > cursor)
    async with state.db.read() as session:
        rows = list((await session.scalars(stmt)).all())
    page = rows[:limit]
    return {
        "events": [audit.row_to_export(r) for r in page],
        "next_cursor": page[-1].seq if len(rows) > limit else None,
    }


@router.get("/verify")
async def verify(
    state: AppState = Depends(app_state),
    _: Principal = Depends(require("viewer")),  # noqa: B008
) -> dict[str, Any]:
    """Recompute the hash chain; names the first bad seq if any."""
    async with state.db.read() as session:
        report = await audit.verify_database(session)
    return report.as_dict()


@router.get("/export", response_class=StreamingResponse,
            responses={200: {"content": {"application/x-ndjson": {}}}})
async def export(
    state: AppState = Depends(app_state),
    _: Principal = Depends(require("admin")),  # noqa: B008
) -> StreamingResponse:
    """The whole chain as NDJSON, verifiable offline with `metaops audit verify --file`."""

    async def lines() -> AsyncIterator[str]:
        async with state.db.read() as session:
            async for event in audit.iter_events(session):
                yield audit.export_line(event)

    return StreamingResponse(lines(), media_type="application/x-ndjson")
