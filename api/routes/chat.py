"""REST: POST /api/v1/chat, the chat commands of Slack and the web page over the API."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from agents.chat.grammar import MAX_TEXT
from api.auth import require
from api.body import body_schema, read_body
from api.chat import run_chat
from api.params import MAX_ID
from api.state import AppState, app_state
from guardrails.tokens import Principal

router = APIRouter(prefix="/api/v1", tags=["chat"])
viewer = require("viewer")


class ChatBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # strict: a number or a list is a 422 naming `text`, never silently turned into a command
    text: str = Field(min_length=1, max_length=MAX_TEXT, strict=True)
    incident_id: int | None = Field(default=None, ge=1, le=MAX_ID, strict=True,
                                    description="The incident a proposal belongs to, if any")


@router.post("/chat", openapi_extra=body_schema(ChatBody, required=True))
async def chat(
    request: Request,
    state: AppState = Depends(app_state),
    principal: Principal = Depends(viewer),
) -> dict[str, Any]:
    """Run one chat command as the caller (`help` lists the ones their role may run). Always
    200 with {command, ok, text, data, action_id}; ok is false for unknown input, a command
    above the caller's role, or one that was refused."""
    body = await read_body(request, ChatBody)
    reply = await run_chat(state, principal, body.text, via="api", incident_id=body.incident_id)
    return reply.to_json()
