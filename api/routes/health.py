"""Liveness, readiness and Prometheus metrics endpoints."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api.errors import error_body
from api.state import AppState, app_state

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, Any]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz", response_model=None)
async def readyz(state: AppState = Depends(app_state)) -> dict[str, Any] | JSONResponse:
    """Ready to take traffic: the database answers."""
    try:
        await state.db.ping()
    except Exception as exc:
        return JSONResponse(
            error_body("unavailable", f"database unreachable: {exc.__class__.__name__}"),
            status_code=503,
        )
    return {"status": "ready", "database": state.db.dialect}


@router.get("/metrics", response_class=Response)
async def metrics(state: AppState = Depends(app_state)) -> Response:
    """Prometheus text format."""
    return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
