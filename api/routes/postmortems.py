"""REST: resolving an incident, human notes, its timeline and its post-mortem revisions."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import PlainTextResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from api.auth import require
from api.body import body_schema, read_body
from api.params import IncidentId
from api.state import AppState, app_state
from core.errors import NotFound
from core.models import AuditEvent, Incident
from guardrails.audit import row_to_export
from guardrails.tokens import Principal

router = APIRouter(prefix="/api/v1/incidents", tags=["post-mortems"])
viewer, approver = require("viewer"), require("approver")


class NoteBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=5000, pattern=r"^[^\x00]*$")


class PostmortemBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    markdown: str = Field(min_length=1, max_length=500_000, pattern=r"^[^\x00]*$")


@router.post("/{incident_id}/resolve")
async def resolve(incident_id: IncidentId, state: AppState = Depends(app_state),
                  principal: Principal = Depends(approver)) -> dict[str, Any]:
    """Resolve by hand; the post-mortem is drafted by the next worker cycle."""
    changed = await state.runtime.resolve_incident(incident_id, principal, "api")
    return {"id": incident_id, "status": "resolved",
            "message": "resolved" if changed else "already resolved"}


@router.post("/{incident_id}/notes", status_code=201, openapi_extra=body_schema(NoteBody))
async def add_note(incident_id: IncidentId, request: Request,
                   state: AppState = Depends(app_state),
                   principal: Principal = Depends(approver)) -> dict[str, Any]:
    """A human note: a new audit event on the incident (redacted like everything else)."""
    body = await read_body(request, NoteBody)
    return await state.runtime.add_note(incident_id, principal, body.text, "api")


@router.get("/{incident_id}/timeline")
async def timeline(incident_id: IncidentId, state: AppState = Depends(app_state),
                   _: Principal = Depends(viewer)) -> dict[str, Any]:
    """Every audit event of the incident in order: alerts, steps, findings, proposals,
    approvals, executions, checks, escalations, notes, resolution."""
    async with state.db.read() as session:
        if await session.get(Incident, incident_id) is None:
            raise NotFound(f"no incident {incident_id}", {"field": "incident_id"})
        rows = (await session.scalars(select(AuditEvent).where(
            AuditEvent.incident_id == incident_id).order_by(AuditEvent.seq))).all()
    return {"incident_id": incident_id, "events": [row_to_export(r) for r in rows]}


@router.get("/{incident_id}/postmortem", response_model=None)
async def get_postmortem(
    incident_id: IncidentId,
    format: Literal["json", "markdown"] = Query("json"),
    state: AppState = Depends(app_state),
    _: Principal = Depends(viewer),
) -> Response | dict[str, Any]:
    """The latest revision (JSON with the validator's findings, or the Markdown itself)."""
    found = await state.runtime.postmortem(incident_id)
    if found is None:
        raise NotFound(f"incident {incident_id} has no post-mortem yet (it is drafted when "
                       "the incident resolves)", {"field": "incident_id"})
    if format == "markdown":
        return PlainTextResponse(found["markdown"], media_type="text/markdown")
    return found


@router.put("/{incident_id}/postmortem", openapi_extra=body_schema(PostmortemBody))
async def edit_postmortem(incident_id: IncidentId, request: Request,
                          state: AppState = Depends(app_state),
                          principal: Principal = Depends(approver)) -> dict[str, Any]:
    """A human edit: a new revision if it passes the validator and the blameless lint (422
    naming the lines otherwise)."""
    body = await read_body(request, PostmortemBody)
    return await state.runtime.edit_postmortem(incident_id, principal, body.markdown)


@router.post("/{incident_id}/postmortem/regenerate", status_code=202)
async def regenerate(incident_id: IncidentId, state: AppState = Depends(app_state),
                     _: Principal = Depends(approver)) -> dict[str, Any]:
    """Re-resolve the auto-filled sections now (human-edited ones are kept)."""
    await state.runtime.request_postmortem(incident_id)
    return {"id": incident_id, "status": "queued"}
