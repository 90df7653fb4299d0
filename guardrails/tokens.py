"""API tokens: generation, hashed storage, authentication and role checks."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.errors import Conflict, ValidationFailed
from core.models import ApiToken
from core.settings import Settings

Role = Literal["viewer", "approver", "admin", "webhook"]
HUMAN_ROLES: tuple[str, ...] = ("viewer", "approver", "admin")
ALL_ROLES: tuple[str, ...] = (*HUMAN_ROLES, "webhook")
WEBHOOK_SOURCES: tuple[str, ...] = ("alertmanager", "grafana", "pagerduty", "generic")
_RANK = {"viewer": 1, "approver": 2, "admin": 3}
TOKEN_PREFIX = "mo_"  # noqa: S105 - a prefix, not a secret
BOOTSTRAP_ADMIN = "bootstrap-admin"
BOOTSTRAP_WEBHOOK = "bootstrap-webhook"


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller: the token's name is the principal's name."""

    name: str
    role: str
    source: str | None = None

    def at_least(self, role: str) -> bool:
        """True when this principal's human role ranks at or above `role`."""
        return _RANK.get(self.role, 0) >= _RANK[role]

    def may_post_webhook(self, source: str) -> bool:
        if self.role == "admin":
            return True
        return self.role == "webhook" and self.source in (None, source)


def generate_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    # Tokens are 256-bit random, so a plain SHA-256 is enough (no password stretching needed).
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _check(name: str, role: str, source: str | None) -> None:
    if not name or len(name) > 128:
        raise ValidationFailed("token name must be 1-128 characters", {"field": "name"})
    if role not in ALL_ROLES:
        raise ValidationFailed(
            f"role must be one of {', '.join(ALL_ROLES)}", {"field": "role", "value": role}
        )
    if source is not None and source not in WEBHOOK_SOURCES:
        raise ValidationFailed(
            f"source must be one of {', '.join(WEBHOOK_SOURCES)}", {"field": "source"}
        )
    if source is not None and role != "webhook":
        raise ValidationFailed("only webhook tokens are scoped to a source", {"field": "source"})


async def create_token(
    session: AsyncSession,
    *,
    name: str,
    role: str,
    created_by: str,
    source: str | None = None,
    plaintext: str | None = None,
) -> tuple[ApiToken, str]:
    """Store a new token's hash and return the row and the plaintext (shown once)."""
    _check(name, role, source)
    existing = await session.scalar(select(ApiToken.id).where(ApiToken.name == name))
    if existing is not None:
        raise Conflict(f"a token named {name!r} already exists", {"field": "name"})
    token = plaintext or generate_token()
    row = ApiToken(
        name=name,
        role=role,
        source=source,
        token_hash=hash_token(token),
        prefix=token[:8],
        created_by=created_by,
    )
    session.add(row)
    await session.flush()
    return row, token


async def authenticate(session: AsyncSession, presented: str) -> Principal | None:
    """The principal owning `presented`, or None (unknown or revoked)."""
    digest = hash_token(presented)
    row = (
        await session.execute(
            select(ApiToken.name, ApiToken.role, ApiToken.source, ApiToken.token_hash).where(
                ApiToken.token_hash == digest, ApiToken.revoked_at.is_(None)
            )
        )
    ).first()
    # The index lookup is by hash; compare again in constant time for defence in depth.
    if row is None or not hmac.compare_digest(row.token_hash, digest):
        return None
    return Principal(row.name, row.role, row.source)


async def _ensure(
    session: AsyncSession, name: str, role: str, given: str | None
) -> str | None:
    row = await session.scalar(select(ApiToken).where(ApiToken.name == name))
    if given is not None:
        if row is None:
            await create_token(session, name=name, role=role, created_by="settings",
                               plaintext=given)
        elif row.token_hash != hash_token(given):
            row.token_hash = hash_token(given)
            row.prefix = given[:8]
        return None
    if row is not None:
        return None
    _, token = await create_token(session, name=name, role=role, created_by="bootstrap")
    return token


async def ensure_bootstrap_tokens(session: AsyncSession, settings: Settings) -> dict[str, str]:
    """Create the admin and webhook tokens on first start; returns the new plaintexts."""
    created: dict[str, str] = {}
    admin = settings.admin_token.get_secret_value() if settings.admin_token else None
    hook = settings.webhook_token.get_secret_value() if settings.webhook_token else None
    token = await _ensure(session, BOOTSTRAP_ADMIN, "admin", admin)
    if token:
        created[BOOTSTRAP_ADMIN] = token
    token = await _ensure(session, BOOTSTRAP_WEBHOOK, "webhook", hook)
    if token:
        created[BOOTSTRAP_WEBHOOK] = token
    return created
