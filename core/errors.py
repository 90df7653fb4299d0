"""Typed errors of metaops; api/errors.py and the CLI map them to HTTP and exit codes."""

from __future__ import annotations

from typing import Any


class MetaopsError(Exception):
    """Base of every error we raise on purpose; `code` is stable and machine-readable."""

    code = "internal"
    status = 500

    def __init__(self, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}


class ValidationFailed(MetaopsError):
    """Input is well-formed but breaks the schema; details name the field."""

    code = "validation_error"
    status = 422


class MalformedBody(MetaopsError):
    """Body is not parseable (bad JSON, wrong content type)."""

    code = "malformed_body"
    status = 400


class UnsupportedMediaType(MetaopsError):
    code = "unsupported_media_type"
    status = 415


class PayloadTooLarge(MetaopsError):
    code = "payload_too_large"
    status = 413


class Unauthenticated(MetaopsError):
    code = "unauthenticated"
    status = 401


class Forbidden(MetaopsError):
    code = "forbidden"
    status = 403


class NotFound(MetaopsError):
    code = "not_found"
    status = 404


class Conflict(MetaopsError):
    code = "conflict"
    status = 409


class AuditChainBroken(MetaopsError):
    """Audit verification found a row whose hash or link does not match."""

    code = "audit_chain_broken"
    status = 500

    def __init__(self, seq: int, reason: str) -> None:
        super().__init__(f"audit chain broken at seq {seq}: {reason}", {"seq": seq})
        self.seq = seq
        self.reason = reason


class AuditAppendFailed(MetaopsError):
    code = "audit_append_failed"
    status = 503


class Unavailable(MetaopsError):
    code = "unavailable"
    status = 503
