"""Shared, bounded query and path parameter types for the REST routes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import Path, Query

from core.errors import ValidationFailed
from core.timeutil import checked_utc

# Database id columns are 32-bit on PostgreSQL; larger numbers can only be typos or probes.
MAX_ID = 2**31 - 1
MAX_SEQ = 2**63 - 1
NO_NUL = r"^[^\x00]*$"  # PostgreSQL text cannot hold NUL


def utc_param(name: str, value: datetime | None) -> datetime | None:
    """A query datetime in UTC; one that cannot be expressed in UTC is a 422 naming it."""
    if value is None:
        return None
    try:
        return checked_utc(value)
    except ValueError as exc:
        raise ValidationFailed(f"{name}: {exc}",
                               {"fields": [{"field": name, "problem": str(exc)}]}) from exc


IncidentId = Annotated[int, Path(ge=1, le=MAX_ID, description="Incident id")]
OptionalIncidentId = Annotated[int | None, Query(ge=1, le=MAX_ID)]
ActionId = Annotated[str, Path(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.:/-]+$",
                               description="Action id, e.g. incident-3:hallucination-storm:step")]
