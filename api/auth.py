"""Bearer-token authentication and role checks for routes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import Depends, Request

from api.state import AppState, app_state
from core.errors import Forbidden, Unauthenticated
from guardrails.tokens import Principal, authenticate, hash_token


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization")
    if not header:
        raise Unauthenticated("missing Authorization: Bearer <token> header")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("Authorization header must be 'Bearer <token>'")
    return token.strip()


async def current_principal(request: Request, state: AppState) -> Principal:
    token = _bearer(request)
    digest = hash_token(token)
    cached = state.tokens.get(digest)
    if cached is not None:
        return cached
    async with state.db.read() as session:
        principal = await authenticate(session, token)
    if principal is None:
        raise Unauthenticated("invalid or revoked token")
    state.tokens.put(digest, principal)
    return principal


def require(role: str) -> Callable[..., Awaitable[Principal]]:
    """Dependency: an authenticated human principal with at least `role`."""

    async def dependency(
        request: Request, state: AppState = Depends(app_state)
    ) -> Principal:
        principal = await current_principal(request, state)
        if not principal.at_least(role):
            raise Forbidden(f"this needs role {role} or higher; token {principal.name!r} "
                            f"has role {principal.role}")
        return principal

    return dependency
