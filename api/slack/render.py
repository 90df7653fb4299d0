"""An outbox row's message, rendered from the database's state at the time it is sent."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from api.slack import blocks
from api.views import action_view, incident_view
from core.models import (
    Action,
    ActionApproval,
    Alert,
    AuditEvent,
    Finding,
    Incident,
    PostmortemRevision,
    SlackMessage,
)
from guardrails.audit import row_to_export

Message = dict[str, Any]


async def incident(session: AsyncSession, incident_id: int) -> Message | None:
    row = await session.get(Incident, incident_id)
    if row is None:
        return None
    count = await session.scalar(select(func.count()).select_from(Alert).where(
        Alert.incident_id == incident_id))
    return blocks.incident_message(incident_view(row, int(count or 0)))


async def action(session: AsyncSession, action_id: str) -> dict[str, Any] | None:
    row = await session.get(Action, action_id)
    if row is None:
        return None
    approvals = list(await session.scalars(select(ActionApproval).where(
        ActionApproval.action_id == action_id).order_by(ActionApproval.id)))
    return action_view(row, approvals)


async def render(session: AsyncSession, row: SlackMessage, now: datetime) -> Message | None:
    """The chat.postMessage / chat.update payload (text and blocks) for `row`, or None when
    what it shows no longer exists."""
    if row.kind == "incident":
        return await incident(session, int(row.ref))
    if row.kind == "finding":
        finding = await session.get(Finding, int(row.ref))
        if finding is None:
            return None
        return blocks.finding_message({"specialist": finding.specialist, "kind": finding.kind,
                                       "summary": finding.summary, "data": finding.data})
    if row.kind in ("card", "execution"):
        view = await action(session, row.ref)
        if view is None:
            return None
        if row.kind == "card":
            return blocks.approval_card(view, now=now)
        return blocks.execution_message(view)
    if row.kind == "escalation":
        event = await session.scalar(select(AuditEvent).where(AuditEvent.seq == int(row.ref)))
        return None if event is None else blocks.escalation_message(row_to_export(event))
    if row.kind == "postmortem":
        incident_id = int(row.ref)
        revision = (await session.scalars(select(PostmortemRevision).where(
            PostmortemRevision.incident_id == incident_id)
            .order_by(PostmortemRevision.revision.desc()).limit(1))).first()
        if revision is None:
            return None
        return blocks.postmortem_message(incident_id, revision.markdown, None)
    if row.kind == "text":
        return dict(row.body or {})
    raise ValueError(f"unknown Slack message kind {row.kind!r}")
