"""Which Slack channel an incident's thread goes to: the first matching route, else the default."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from core.settings import Settings


def channel_for(settings: Settings, severity: str | None, labels: Mapping[str, Any]) -> str | None:
    """Routes match on labels (team, service, ...) and on `severity`; all keys must be equal."""
    facts = {str(k): str(v) for k, v in labels.items()}
    if severity is not None:
        facts["severity"] = severity
    for route in settings.slack_routes:
        if all(facts.get(k) == v for k, v in route.match.items()):
            return route.channel
    return settings.slack_channel
