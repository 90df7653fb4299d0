"""FastAPI application factory: routes, error mapping, startup of ingest and workers."""

from __future__ import annotations

import logging
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from agents.facade import Runtime
from api.errors import install_error_handlers
from api.metrics import Metrics
from api.routes import (
    actions,
    audit,
    chat,
    health,
    incidents,
    postmortems,
    slack,
    tokens,
    webhooks,
)
from api.state import AppState
from core.database import Database, database_from_settings
from core.settings import Settings, get_settings
from guardrails import audit as audit_trail
from guardrails.tokens import ensure_bootstrap_tokens

if TYPE_CHECKING:
    from api.slack.service import SlackService

log = logging.getLogger("metaops")


async def bootstrap(db: Database, settings: Settings) -> dict[str, str]:
    """First start: create the admin and webhook tokens and print them once."""
    async with db.write() as session:
        created = await ensure_bootstrap_tokens(session, settings)
        for name in created:
            await audit_trail.append(session, type="token.created", actor=audit_trail.SYSTEM,
                                     target=f"api-token/{name}", outcome="created",
                                     payload={"bootstrap": True})
    for name, token in created.items():
        # Printed once; only the hash is stored. stdout, not the log, so log shipping skips it.
        print(f"metaops: created {name} token (shown once, store it now): {token}",
              file=sys.stdout, flush=True)
    return created


def _slack(state: AppState) -> SlackService | None:
    if not state.settings.slack_enabled:
        return None
    # slack_bolt and aiohttp load only when Slack is on: every server start pays for imports.
    from api.slack.service import SlackService  # noqa: PLC0415

    return SlackService(state)


def create_app(settings: Settings | None = None, db: Database | None = None) -> FastAPI:
    settings = settings or get_settings()
    db = db or database_from_settings(settings)
    metrics = Metrics()
    runtime = Runtime(db, settings, llm_observe=metrics.observe_llm)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await bootstrap(db, settings)
        await runtime.start()
        if state.slack is not None:
            await state.slack.start()
        try:
            yield
        finally:
            if state.slack is not None:
                await state.slack.stop()
            await runtime.stop()
            await db.dispose()

    app = FastAPI(
        title="metaops",
        version="0.1.0",
        description="Autonomous operations for LLM applications: alerts in, incidents, audit.",
        lifespan=lifespan,
    )
    state = AppState(settings=settings, db=db, runtime=runtime, metrics=metrics)
    state.slack = _slack(state)
    app.state.metaops = state
    install_error_handlers(app)
    for module in (webhooks, incidents, postmortems, actions, audit, tokens, health, slack, chat):
        app.include_router(module.router)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version,
                                 description=app.description, routes=app.routes)
            schema.setdefault("components", {}).setdefault("schemas", {}).update(
                webhooks.webhook_schemas())
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
