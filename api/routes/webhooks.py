"""Webhook ingest: authenticate, bound, parse, redact, validate, normalise, commit, 202."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError

from agents import facade
from api.auth import current_principal
from api.errors import validation_failed
from api.state import AppState, app_state
from core.errors import (
    Forbidden,
    MalformedBody,
    NotFound,
    PayloadTooLarge,
    UnsupportedMediaType,
    ValidationFailed,
)
from guardrails.redaction import redact, redact_text
from guardrails.tokens import WEBHOOK_SOURCES

router = APIRouter(prefix="/webhooks", tags=["webhooks"])

SCHEMAS: dict[str, type[BaseModel]] = {
    "alertmanager": facade.AlertmanagerWebhook,
    "grafana": facade.GrafanaWebhook,
    "pagerduty": facade.PagerDutyEvent,
    "generic": facade.GenericAlert,
}

_ACCEPTED = {
    "description": "Accepted and durably stored; investigation runs in the background",
    "content": {"application/json": {"example": {"status": "accepted", "incident_ids": [1]}}},
}
_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"description": text}
    for code, text in ((401, "Missing or wrong token"), (403, "Token not allowed for source"),
                       (413, "Body too large"), (415, "Not application/json"),
                       (422, "Invalid payload; details name the field"))
}


async def read_bounded(request: Request, limit: int) -> bytes:
    """The request body, refusing anything over `limit` bytes without buffering it all."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > limit:
                raise PayloadTooLarge(f"body is {declared} bytes; the limit is {limit}",
                                      {"limit": limit})
        except ValueError as exc:
            raise MalformedBody("Content-Length is not a number") from exc
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"body exceeds the limit of {limit} bytes", {"limit": limit})
        chunks.append(chunk)
    return b"".join(chunks)


def _check_content_type(request: Request) -> None:
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media != "application/json" and not (media.startswith("application/")
                                            and media.endswith("+json")):
        raise UnsupportedMediaType(
            f"Content-Type must be application/json, got {media or 'nothing'!r}",
            {"field": "content-type"},
        )


def _reject_constant(name: str) -> Any:
    # Python's json accepts NaN and Infinity; JSON (and PostgreSQL's json type) does not.
    raise ValueError(f"{name} is not valid JSON")


def _nul_path(value: Any, path: str = "") -> str | None:
    """Where a NUL character hides (PostgreSQL text cannot store it), or None."""
    if isinstance(value, str):
        return path or "body" if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            if "\x00" in str(key):
                return path or "body"
            found = _nul_path(item, where)
            if found:
                return found
    if isinstance(value, list):
        for i, item in enumerate(value):
            found = _nul_path(item, f"{path}[{i}]")
            if found:
                return found
    return None


def _parse(body: bytes) -> dict[str, Any]:
    if not body:
        raise MalformedBody("request body is empty; expected a JSON object")
    try:
        value = json.loads(body, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "msg", None) or str(exc)
        raise MalformedBody(f"body is not valid JSON: {reason}",
                            {"position": getattr(exc, "pos", None)}) from exc
    if not isinstance(value, dict):
        raise ValidationFailed("body must be a JSON object",
                               {"fields": [{"field": "body", "problem": "must be an object"}]})
    if b"\\u0000" in body:
        where = _nul_path(value)
        if where is not None:
            field = redact_text(where)[0][:200]
            raise ValidationFailed(f"{field}: must not contain NUL characters",
                                   {"fields": [{"field": field,
                                                "problem": "must not contain NUL characters"}]})
    return value


def _normalize(source: str, model: BaseModel, clean: dict[str, Any], paths: tuple[str, ...],
               principal: str, raw: dict[str, Any]) -> facade.Delivery:
    if isinstance(model, facade.AlertmanagerWebhook):
        return facade.from_alertmanager(model, clean, paths, principal)
    if isinstance(model, facade.GrafanaWebhook):
        return facade.from_grafana(model, clean, paths, principal)
    if isinstance(model, facade.PagerDutyEvent):
        return facade.from_pagerduty(model, clean, paths, principal, str(raw["routing_key"]))
    assert isinstance(model, facade.GenericAlert)
    return facade.from_generic(model, clean, paths, principal)


async def ingest(source: str, request: Request, state: AppState) -> JSONResponse:
    started = time.perf_counter()
    status = 500
    try:
        if source not in SCHEMAS:
            raise NotFound(f"unknown webhook source {source!r}; use one of "
                           f"{', '.join(WEBHOOK_SOURCES)}", {"field": "source"})
        principal = await current_principal(request, state)
        if not principal.may_post_webhook(source):
            raise Forbidden(f"token {principal.name!r} may not post {source} webhooks")
        _check_content_type(request)
        raw = _parse(await read_bounded(request, state.settings.max_body_bytes))
        # Redact first: everything after this line (validation errors included) sees clean text.
        redacted = redact(raw)
        clean: dict[str, Any] = redacted.value
        try:
            model = SCHEMAS[source].model_validate(clean)
        except ValidationError as exc:
            raise validation_failed(list(exc.errors())) from exc
        delivery = _normalize(source, model, clean, redacted.paths, principal.name, raw)
        result = await state.runtime.ingest(delivery)
        state.metrics.alerts_received.labels(source).inc(len(delivery.alerts))
        status = 202
        body: dict[str, Any] = {
            "status": "accepted",
            "incident_ids": result.incident_ids,
            "alerts": {"new": result.new_alerts, "updated": result.updated_alerts,
                       "ignored": result.ignored_alerts},
        }
        if source == "pagerduty":
            # What a PagerDuty sender expects back, plus our own fields.
            body.update({"status": "success", "message": "Event processed",
                         "dedup_key": delivery.meta["dedup_key"]})
        return JSONResponse(body, status_code=202)
    except Exception as exc:
        status = getattr(exc, "status", 500)
        raise
    finally:
        label = source if source in SCHEMAS else "unknown"
        state.metrics.webhook_requests.labels(label, str(status)).inc()
        state.metrics.ingest_seconds.labels(label).observe(time.perf_counter() - started)


def _route(source: str) -> Callable[..., Any]:
    async def handler(request: Request, state: AppState = Depends(app_state)) -> JSONResponse:
        return await ingest(source, request, state)

    handler.__name__ = f"webhook_{source}"
    return handler


_DOCS = {
    "alertmanager": "Prometheus Alertmanager webhook (payload version 4).",
    "grafana": "Grafana unified alerting webhook contact point.",
    "pagerduty": "PagerDuty Events API v2 (trigger, acknowledge, resolve).",
    "generic": "metaops generic JSON alert: title, dedup_key, status, severity, labels, "
               "annotations, optional group_key, service, starts_at, ends_at.",
}

for _source, _schema in SCHEMAS.items():
    router.add_api_route(
        f"/{_source}", _route(_source), methods=["POST"], status_code=202,
        summary=_DOCS[_source], responses={202: _ACCEPTED, **_ERRORS},
        openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
            "schema": {"$ref": f"#/components/schemas/{_schema.__name__}"}}}}},
    )


@router.post("/{source}", include_in_schema=False)
async def unknown_source(source: str) -> None:
    raise NotFound(f"unknown webhook source {source!r}; use one of {', '.join(WEBHOOK_SOURCES)}",
                   {"field": "source"})


def webhook_schemas() -> dict[str, Any]:
    """JSON Schemas of the webhook bodies, for the OpenAPI document's components."""
    out: dict[str, Any] = {}
    for schema in SCHEMAS.values():
        js = schema.model_json_schema(ref_template="#/components/schemas/{model}")
        out.update(js.pop("$defs", {}))
        out[schema.__name__] = js
    return out
