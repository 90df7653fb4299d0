"""Per-app state shared by routes: settings, database, runtime, metrics, token cache, Slack."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fastapi import Request

from agents.facade import Runtime
from api.metrics import Metrics
from core.database import Database
from core.settings import Settings
from guardrails.tokens import Principal

if TYPE_CHECKING:
    from api.slack.service import SlackService


@dataclass
class TokenCache:
    """Short-lived cache of token hash -> principal, so webhook bursts skip a lookup each."""

    ttl: float = 5.0
    _items: dict[str, tuple[float, Principal]] = field(default_factory=dict)

    def get(self, digest: str) -> Principal | None:
        hit = self._items.get(digest)
        if hit is None or hit[0] < time.monotonic():
            return None
        return hit[1]

    def put(self, digest: str, principal: Principal) -> None:
        if len(self._items) > 10_000:
            self._items.clear()
        self._items[digest] = (time.monotonic() + self.ttl, principal)


@dataclass
class AppState:
    settings: Settings
    db: Database
    runtime: Runtime
    metrics: Metrics
    tokens: TokenCache = field(default_factory=TokenCache)
    slack: SlackService | None = None  # None: Slack is not configured


def app_state(request: Request) -> AppState:
    state: AppState = request.app.state.metaops
    return state
