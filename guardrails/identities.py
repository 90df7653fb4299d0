"""Slack identities: which metaops principal (name and role) a Slack user acts as."""

from __future__ import annotations

import re

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.errors import Conflict, NotFound, ValidationFailed
from core.models import SlackIdentity
from guardrails import audit
from guardrails.tokens import HUMAN_ROLES, Principal

# Slack user ids: U… (workspace users) and W… (Enterprise Grid users), upper-case alphanumerics.
_SLACK_USER = re.compile(r"^[UW][A-Z0-9]{2,30}$")
_NAME = re.compile(r"^[A-Za-z0-9_.@-]{1,128}$")


def _check(slack_user_id: str, name: str, role: str) -> None:
    if not _SLACK_USER.fullmatch(slack_user_id):
        raise ValidationFailed("a Slack user id looks like U0123ABCD (U or W, then capitals and "
                               "digits)", {"field": "slack_user", "value": slack_user_id[:40]})
    if not _NAME.fullmatch(name):
        raise ValidationFailed("name must be 1-128 letters, digits or _.@-", {"field": "name"})
    if role not in HUMAN_ROLES:
        raise ValidationFailed(f"role must be one of {', '.join(HUMAN_ROLES)}",
                               {"field": "role", "value": role})


async def add_identity(session: AsyncSession, *, slack_user_id: str, name: str, role: str,
                       created_by: str, actor: audit.Actor) -> SlackIdentity:
    """Map a Slack user to a principal (audited). One Slack user maps to one principal; a
    principal may have several Slack users (e.g. two workspaces)."""
    _check(slack_user_id, name, role)
    if await session.get(SlackIdentity, slack_user_id) is not None:
        raise Conflict(f"Slack user {slack_user_id} is already mapped; remove it first",
                       {"field": "slack_user"})
    row = SlackIdentity(slack_user_id=slack_user_id, name=name, role=role,
                        created_by=created_by)
    session.add(row)
    await session.flush()
    await audit.append(session, type="principal.mapped", actor=actor,
                       target=f"slack-user/{slack_user_id}", outcome="mapped",
                       payload={"name": name, "role": role})
    return row


async def remove_identity(session: AsyncSession, slack_user_id: str,
                          actor: audit.Actor) -> None:
    row = await session.get(SlackIdentity, slack_user_id)
    if row is None:
        raise NotFound(f"Slack user {slack_user_id} is not mapped", {"field": "slack_user"})
    await session.delete(row)
    await audit.append(session, type="principal.unmapped", actor=actor,
                       target=f"slack-user/{slack_user_id}", outcome="unmapped",
                       payload={"name": row.name, "role": row.role})


async def list_identities(session: AsyncSession) -> list[SlackIdentity]:
    return list(await session.scalars(select(SlackIdentity).order_by(SlackIdentity.name,
                                                                     SlackIdentity.slack_user_id)))


async def principal_for(session: AsyncSession, slack_user_id: str) -> Principal | None:
    """The principal a Slack user acts as, or None when unmapped."""
    row = await session.get(SlackIdentity, slack_user_id)
    return None if row is None else Principal(row.name, row.role)
