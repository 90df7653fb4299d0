"""REST: API token administration (admin only); plaintext is returned once, at creation."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field
from sqlalchemy import select

from api.auth import require
from api.body import body_schema, read_body
from api.state import AppState, app_state
from core.models import ApiToken
from core.timeutil import iso
from guardrails import audit
from guardrails.tokens import Principal, create_token

router = APIRouter(prefix="/api/v1/tokens", tags=["tokens"])
admin = require("admin")


class TokenRequest(BaseModel):
    name: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.@-]+$")
    role: Literal["viewer", "approver", "admin", "webhook"]
    source: Literal["alertmanager", "grafana", "pagerduty", "generic"] | None = None


@router.post("", status_code=201, openapi_extra=body_schema(TokenRequest, required=True))
async def create(
    request: Request,
    state: AppState = Depends(app_state),
    principal: Principal = Depends(admin),
) -> dict[str, Any]:
    """Create a token; the response is the only time its plaintext is shown."""
    # The body is read after authentication, so an anonymous caller learns nothing from it.
    body = await read_body(request, TokenRequest)
    async with state.db.write() as session:
        row, token = await create_token(session, name=body.name, role=body.role,
                                        source=body.source, created_by=principal.name)
        await audit.append(session, type="token.created",
                           actor=audit.Actor("human", principal.name, "api"),
                           target=f"api-token/{row.name}", outcome="created",
                           payload={"role": row.role, "source": row.source})
    return {"name": row.name, "role": row.role, "source": row.source, "token": token}


@router.get("")
async def list_tokens(
    state: AppState = Depends(app_state),
    _: Principal = Depends(admin),
) -> dict[str, Any]:
    async with state.db.read() as session:
        rows = (await session.scalars(select(ApiToken).order_by(ApiToken.id))).all()
    return {"tokens": [
        {"name": r.name, "role": r.role, "source": r.source, "prefix": r.prefix,
         "created_at": iso(r.created_at), "created_by": r.created_by,
         "revoked": r.revoked_at is not None}
        for r in rows
    ]}
