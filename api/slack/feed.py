"""The Slack feed: follows the audit trail and queues the messages each event calls for."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from api.slack import outbox
from core.models import AuditEvent, SlackFeed
from core.timeutil import utcnow

FEED = "slack"
BATCH = 500

# Events after which the incident's top message (status, investigation) is redrawn.
_INCIDENT_REFRESH = frozenset({
    "incident.resolved", "investigation.started", "investigation.routed", "runbook.completed",
    "finding.recorded", "incident.escalated", "postmortem.drafted", "action.succeeded"})
# Events after which an approval card is redrawn (buttons go once it is no longer pending).
_CARD_REFRESH = frozenset({
    "approval.approve", "approval.reject", "action.approved", "action.rejected",
    "action.denied", "action.expired", "action.executing", "action.succeeded", "action.failed",
    "action.stale", "action.refused", "action.cancelled"})
_EXECUTION = frozenset({"action.succeeded", "action.failed", "action.stale", "action.refused"})
_ESCALATION = frozenset({"incident.escalated", "action.escalated"})
_POSTMORTEM = frozenset({"postmortem.drafted", "postmortem.edited"})


async def _incident_top(session: AsyncSession, incident_id: int | None) -> None:
    # Every thread needs its parent; for an incident opened before Slack was on, it is posted
    # the first time anything about the incident is.
    if incident_id is not None:
        await outbox.enqueue(session, key=outbox.incident_key(incident_id), kind="incident",
                             ref=incident_id, incident_id=incident_id)


async def _queue(session: AsyncSession, event: AuditEvent) -> None:
    seq, kind, incident_id, action_id = event.seq, event.type, event.incident_id, event.action_id
    if kind == "incident.opened":
        await _incident_top(session, incident_id)
        return
    if kind == "finding.recorded" and event.target and event.target.startswith("finding:"):
        await _incident_top(session, incident_id)
        finding_id = event.target.removeprefix("finding:")
        await outbox.enqueue(session, key=f"finding:{finding_id}", kind="finding",
                             ref=finding_id, incident_id=incident_id)
    if action_id is not None and kind == "action.proposed":
        await _incident_top(session, incident_id)
        await outbox.enqueue(session, key=f"card:{action_id}", kind="card", ref=action_id,
                             incident_id=incident_id)
    if action_id is not None and kind in _CARD_REFRESH:
        await outbox.enqueue(session, key=f"card:{action_id}:refresh:{seq}", kind="card",
                             ref=action_id, op=outbox.REFRESH, incident_id=incident_id)
    if action_id is not None and kind in _EXECUTION:
        await _incident_top(session, incident_id)
        await outbox.enqueue(session, key=f"execution:{action_id}:{seq}", kind="execution",
                             ref=action_id, incident_id=incident_id)
    if kind in _ESCALATION:
        await _incident_top(session, incident_id)
        await outbox.enqueue(session, key=f"escalation:{seq}", kind="escalation", ref=seq,
                             incident_id=incident_id)
    if kind in _POSTMORTEM and incident_id is not None:
        await _incident_top(session, incident_id)
        await outbox.enqueue(session, key=f"postmortem:{seq}", kind="postmortem",
                             ref=incident_id, incident_id=incident_id)
    if kind in _INCIDENT_REFRESH and incident_id is not None:
        await outbox.enqueue(session, key=f"incident:{incident_id}:refresh:{seq}",
                             kind="incident", ref=incident_id, op=outbox.REFRESH,
                             incident_id=incident_id)


async def advance(session: AsyncSession) -> int:
    """Queue the messages for the next batch of audit events; how many events were read.

    Idempotent: every row has a key derived from its event, so two replicas (or a re-run after
    a crash) queue each message once. The cursor starts at the trail's head the first time, so
    switching Slack on does not replay history into a channel."""
    cursor = await session.get(SlackFeed, FEED)
    if cursor is None:
        head = await session.scalar(select(func.max(AuditEvent.seq)))
        session.add(SlackFeed(name=FEED, seq=int(head or 0), updated_at=utcnow()))
        await session.flush()
        return 0
    events = list(await session.scalars(select(AuditEvent).where(AuditEvent.seq > cursor.seq)
                                        .order_by(AuditEvent.seq).limit(BATCH)))
    for event in events:
        await _queue(session, event)
    if events:
        cursor.seq = max(cursor.seq, events[-1].seq)
        cursor.updated_at = utcnow()
    return len(events)
