"""Errors of the Kubernetes tools, carrying the API server's Status (code, reason, message)."""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any

from core.errors import MetaopsError


class KubeError(MetaopsError):
    """Something about the Kubernetes API went wrong."""

    code = "kube_error"
    status = 502


class KubeApiError(KubeError):
    """The API server answered with a failure: '<what>: 404 Not Found: <Status message>'."""

    def __init__(self, what: str, http_status: int, message: str, reason: str = "") -> None:
        try:
            phrase = HTTPStatus(http_status).phrase
        except ValueError:
            phrase = reason or "Error"
        self.http_status = http_status
        self.reason = reason  # the Status `reason`, e.g. NotFound, Conflict, Forbidden
        self.api_message = message
        super().__init__(f"{what}: {http_status} {phrase}: {message}",
                         {"http_status": http_status, "reason": reason, "message": message})

    @property
    def conflict(self) -> bool:
        return self.http_status == 409

    @property
    def not_found(self) -> bool:
        return self.http_status == 404


class KubeUnavailable(KubeError):
    """The API server could not be reached or did not answer in time."""

    code = "kube_unavailable"
    status = 503


class KubeRefused(KubeError):
    """The request cannot apply to the cluster as it is (paused deployment, too many jobs...)."""

    code = "kube_refused"
    status = 422


def from_api_exception(what: str, exc: Any) -> KubeApiError:
    """A KubeApiError from a kubernetes.client ApiException: the Status body's message when
    there is one, else the HTTP reason and whatever body came back."""
    http_status = int(getattr(exc, "status", 0) or 0)
    body: Any = getattr(exc, "body", None)
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    message, reason = "", ""
    try:
        status = json.loads(body) if isinstance(body, str) and body else None
    except ValueError:
        status = None
    if isinstance(status, dict):
        message = str(status.get("message") or "")
        reason = str(status.get("reason") or "")
    if not message:
        message = (body.strip()[:500] if isinstance(body, str) and body.strip()
                   else str(getattr(exc, "reason", "") or "no response body"))
    return KubeApiError(what, http_status, message, reason)
