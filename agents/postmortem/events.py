"""Audit events as the post-mortem writer reads them: the Event shape, its payload and actor."""

from __future__ import annotations

from typing import Any

Event = dict[str, Any]


def payload(event: Event | None) -> dict[str, Any]:
    value = None if event is None else event.get("payload")
    return value if isinstance(value, dict) else {}


def actor_id(event: Event) -> str:
    actor = event.get("actor")
    return str(actor.get("id", "")) if isinstance(actor, dict) else ""


def actor_kind(event: Event) -> str:
    actor = event.get("actor")
    return str(actor.get("kind", "")) if isinstance(actor, dict) else ""


def actor_via(event: Event) -> str:
    actor = event.get("actor")
    return str(actor.get("via", "")) if isinstance(actor, dict) else ""
