"""The one place errors become HTTP responses: {"error": {"code", "message", "details"}}."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from core.errors import MetaopsError, ValidationFailed
from guardrails.redaction import redact_text

_LOCATIONS = ("body", "query", "path", "header")

log = logging.getLogger("metaops.api")

_HTTP_CODES = {
    400: "bad_request", 401: "unauthenticated", 403: "forbidden", 404: "not_found",
    405: "method_not_allowed", 406: "not_acceptable", 409: "conflict", 413: "payload_too_large",
    415: "unsupported_media_type", 422: "validation_error", 429: "rate_limited",
}


def error_body(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details or {}}}


def field_path(loc: tuple[int | str, ...] | list[int | str]) -> str:
    """('body', 'alerts', 0, 'startsAt') -> 'alerts[0].startsAt'.

    Keys come from untrusted input too (a label named after an e-mail address), so each part
    is redacted and long ones are cut.
    """
    out = ""
    for i, part in enumerate(loc):
        if isinstance(part, int):
            out += f"[{part}]"
        elif i == 0 and part in _LOCATIONS:
            continue
        else:
            text = redact_text(str(part))[0]
            text = text if len(text) <= 64 else text[:61] + "..."
            out += ("." if out else "") + text
    return out or "body"


def validation_failed(errors: list[Any], prefix: tuple[str, ...] = ()) -> ValidationFailed:
    """A 422 naming each bad field; the offending input values are never echoed back."""
    problems = []
    for err in errors[:20]:
        loc = tuple(prefix) + tuple(err.get("loc", ()))
        # Drop pydantic's internal tags for function validators from the path.
        loc = tuple(p for p in loc if not (isinstance(p, str) and p.startswith("function-")))
        problems.append({"field": field_path(loc), "problem": str(err.get("msg", "invalid"))})
    first = problems[0] if problems else {"field": "body", "problem": "invalid"}
    return ValidationFailed(f"{first['field']}: {first['problem']}", {"fields": problems})


def _response(exc: MetaopsError, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error_body(exc.code, exc.message, exc.details), status_code=exc.status,
                        headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(MetaopsError)
    async def _metaops(_: Request, exc: MetaopsError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return _response(exc, headers)

    @app.exception_handler(RequestValidationError)
    async def _request_validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        return _response(validation_failed(list(exc.errors())))

    @app.exception_handler(ValidationError)
    async def _pydantic(_: Request, exc: ValidationError) -> JSONResponse:
        return _response(validation_failed(list(exc.errors())))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        return JSONResponse(error_body(code, str(exc.detail)), status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled error: %s", exc.__class__.__name__, exc_info=exc)
        return JSONResponse(error_body("internal", "internal error"), status_code=500)
