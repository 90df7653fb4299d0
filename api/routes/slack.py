"""Slack's Request URL: events, interactivity and the /metaops command, all on /slack/events."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response

from api.state import AppState, app_state
from core.errors import NotFound

router = APIRouter(tags=["slack"])


@router.post("/slack/events", include_in_schema=False)
async def events(request: Request, state: AppState = Depends(app_state)) -> Response:
    """Verified by Slack's signature (401 otherwise), acknowledged at once, worked on after."""
    if state.slack is None or state.slack.socket_mode:
        raise NotFound("Slack is not configured on this server (set METAOPS_SLACK_BOT_TOKEN "
                       "and METAOPS_SLACK_SIGNING_SECRET)")
    return await state.slack.handle_http(request)
