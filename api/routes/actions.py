"""REST: actions (proposed changes), their previews and approvals; decisions; kill switch."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field
from sqlalchemy import select

from api.auth import require
from api.body import body_schema, read_body
from api.params import MAX_ID, ActionId
from api.state import AppState, app_state
from api.views import action_view, approvals_for
from core.errors import NotFound
from core.models import Action, ActionApproval
from guardrails import audit
from guardrails.executor import kill_switch_on
from guardrails.tokens import Principal

router = APIRouter(prefix="/api/v1", tags=["actions"])
viewer, approver, admin = require("viewer"), require("approver"), require("admin")
STATUSES = ("proposed", "pending_approval", "approved", "executing", "succeeded", "failed",
            "rejected", "expired", "stale", "cancelled")


async def _approvals(state: AppState, ids: list[str]) -> dict[str, list[ActionApproval]]:
    async with state.db.read() as session:
        return await approvals_for(session, ids)


@router.get("/actions")
async def list_actions(
    status: Literal[STATUSES] | None = None,  # type: ignore[valid-type]
    incident_id: int | None = Query(None, ge=1, le=MAX_ID),
    limit: int = Query(100, ge=1, le=500),
    state: AppState = Depends(app_state),
    _: Principal = Depends(viewer),
) -> dict[str, Any]:
    """Actions, newest first."""
    stmt = select(Action).order_by(Action.created_at.desc()).limit(limit)
    if status:
        stmt = stmt.where(Action.status == status)
    if incident_id:
        stmt = stmt.where(Action.incident_id == incident_id)
    async with state.db.read() as session:
        rows = list((await session.scalars(stmt)).all())
    approvals = await _approvals(state, [r.id for r in rows])
    return {"actions": [action_view(r, approvals[r.id]) for r in rows]}


@router.get("/actions/{action_id}")
async def get_action(
    action_id: ActionId,
    state: AppState = Depends(app_state),
    _: Principal = Depends(viewer),
) -> dict[str, Any]:
    """Tool, args, preview, policy decision, approvals so far, expiry."""
    async with state.db.read() as session:
        action = await session.get(Action, action_id)
    if action is None:
        raise NotFound(f"no action {action_id}", {"field": "action_id"})
    return action_view(action, (await _approvals(state, [action_id]))[action_id])


class RejectBody(BaseModel):
    reason: str = Field(min_length=1, max_length=2000, pattern=r"^[^\x00]*$")


@router.post("/actions/{action_id}/approve")
async def approve(
    action_id: ActionId,
    state: AppState = Depends(app_state),
    principal: Principal = Depends(approver),
) -> dict[str, Any]:
    """Approve (counts once per person). 200 with the new status, or "already approved"."""
    result = await state.runtime.decide(action_id, principal, "approve", "api")
    return {"id": action_id, "status": result.status, "approvals": result.approvals,
            "required": result.needed,
            "message": "already approved" if result.already else "approval recorded"}


@router.post("/actions/{action_id}/reject", openapi_extra=body_schema(RejectBody))
async def reject(
    action_id: ActionId,
    request: Request,
    state: AppState = Depends(app_state),
    principal: Principal = Depends(approver),
) -> dict[str, Any]:
    """Reject with a reason; any reject wins."""
    body = await read_body(request, RejectBody)
    result = await state.runtime.decide(action_id, principal, "reject", "api", body.reason)
    return {"id": action_id, "status": result.status}


class KillSwitchBody(BaseModel):
    on: bool


@router.get("/killswitch")
async def get_kill_switch(
    state: AppState = Depends(app_state), _: Principal = Depends(viewer),
) -> dict[str, Any]:
    async with state.db.read() as session:
        return {"on": await kill_switch_on(session)}


@router.post("/killswitch")
async def put_kill_switch(
    body: KillSwitchBody,
    state: AppState = Depends(app_state),
    principal: Principal = Depends(admin),
) -> dict[str, Any]:
    """On: nothing executes (approved actions wait). Off: waiting approved actions run."""
    await state.runtime.set_kill_switch(body.on, audit.Actor("human", principal.name, "api"))
    return {"on": body.on}
