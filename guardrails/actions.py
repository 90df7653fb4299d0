"""Action lifecycle: proposals, human decisions (compare-and-set), expiry; every step audited."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core.database import Database, execute_count, insert_for
from core.errors import Conflict, Forbidden, MetaopsError, NotFound
from core.models import Action, ActionApproval, AuditEvent
from core.timeutil import iso, utcnow
from guardrails import audit
from guardrails.tokens import Principal
from tools.base import Preview

PENDING = "pending_approval"
FINAL = frozenset({"succeeded", "failed", "rejected", "expired", "stale", "cancelled"})
APPROVED_OR_LATER = frozenset({"approved", "executing", "succeeded", "failed", "stale"})


def params_hash(tool: str, args: dict[str, Any]) -> str:
    """What an approval binds to: the tool and its exact arguments."""
    return hashlib.sha256(audit.canonical_json({"tool": tool, "args": args}).encode()).hexdigest()


def _preview_dict(preview: Preview) -> dict[str, Any]:
    return {"summary": preview.summary, "diff": preview.diff, "current": preview.current,
            "proposed": preview.proposed}


@dataclass(frozen=True, slots=True)
class _Subject:
    incident_id: int | None
    action_id: str
    tool: str


async def _event(session: AsyncSession, subject: _Subject, type: str, actor: audit.Actor,
                 outcome: str, payload: dict[str, Any]) -> None:
    await audit.append(session, type=type, actor=actor, outcome=outcome, payload=payload,
                       incident_id=subject.incident_id, action_id=subject.action_id,
                       target=subject.tool)


@dataclass(frozen=True, slots=True)
class Proposal:
    """Everything known about a write before anyone decides on it."""

    action_id: str
    incident_id: int | None
    tool: str
    effect: str
    args: dict[str, Any]
    preview: Preview
    snapshot: str | None
    inverse: dict[str, Any] | None
    decision: dict[str, Any]  # guardrails.policy.Decision.model_dump()
    requested_by: str
    source: str | None = None


async def propose(session: AsyncSession, p: Proposal, actor: audit.Actor) -> tuple[Action, bool]:
    """Record a proposal (idempotent by action id: a re-run node finds its earlier row)."""
    existing = await session.get(Action, p.action_id)
    if existing is not None:
        return existing, False
    now = utcnow()
    outcome = p.decision["outcome"]
    status = {"allow": "approved", "deny": "rejected"}.get(outcome, PENDING)
    action = Action(
        id=p.action_id, incident_id=p.incident_id, tool=p.tool, effect=p.effect, args=p.args,
        params_hash=params_hash(p.tool, p.args), preview=_preview_dict(p.preview),
        snapshot=p.snapshot, inverse=p.inverse, status=status, decision=p.decision,
        required_approvals=int(p.decision.get("required_approvals", 1)),
        approver_role=str(p.decision.get("approver_role", "approver")),
        separation_of_duties=bool(p.decision.get("separation_of_duties", True)),
        requested_by=p.requested_by, source=p.source,
        expires_at=(now + timedelta(minutes=int(p.decision.get("expiry_minutes", 30)))
                    if status == PENDING else None),
        error=p.decision.get("reason") if status == "rejected" else None,
        created_at=now, updated_at=now,
    )
    session.add(action)
    await session.flush()
    subject = _Subject(p.incident_id, p.action_id, p.tool)
    await _event(session, subject, "action.proposed", actor, status,
                 {"tool": p.tool, "args": p.args, "preview": p.preview.summary,
                  "policy": p.decision, "requested_by": p.requested_by})
    policy_actor = audit.Actor("system", f"policy:{p.decision.get('rule')}", "system")
    if status == "approved":
        await _event(session, subject, "action.approved", policy_actor, "approved",
                     {"by_policy": True})
    elif status == "rejected":
        await _event(session, subject, "action.denied", policy_actor, "denied",
                     {"reason": p.decision.get("reason")})
    return action, True


@dataclass(frozen=True, slots=True)
class DecisionResult:
    action: Action
    status: str
    approvals: int
    needed: int
    changed: bool  # this call moved the action to a new status
    already: bool  # the same person had already decided (counts once)
    # A refusal or expiry is recorded (audited, committed) and then raised by the caller.
    error: MetaopsError | None = None


async def _locked(session: AsyncSession, action_id: str) -> Action:
    action = await session.scalar(
        select(Action).where(Action.id == action_id).with_for_update())
    if action is None:
        raise NotFound(f"no action {action_id}", {"field": "action_id"})
    return action


async def _cas(session: AsyncSession, action_id: str, old: str, new: str,
               **values: Any) -> bool:
    return bool(await execute_count(
        session, update(Action).where(Action.id == action_id, Action.status == old)
        .values(status=new, updated_at=utcnow(), **values)))


async def approvers(session: AsyncSession, action_id: str) -> list[str]:
    rows = await session.scalars(
        select(ActionApproval.principal).where(ActionApproval.action_id == action_id,
                                               ActionApproval.decision == "approve")
        .order_by(ActionApproval.id))
    return list(rows)


def _refused(action: Action, error: MetaopsError) -> DecisionResult:
    return DecisionResult(action, action.status, 0, action.required_approvals, False, False, error)


async def decide_and_commit(
    db: Database, action_id: str, principal: Principal, decision: str, via: str,
    reason: str | None = None, now: datetime | None = None,
) -> DecisionResult:
    """decide() in its own transaction; a refusal is committed (audited) and then raised."""
    async with db.write() as session:
        result = await decide(session, action_id, principal, decision, via, reason, now)
    if result.error is not None:
        raise result.error
    return result


async def decide(
    session: AsyncSession, action_id: str, principal: Principal, decision: str, via: str,
    reason: str | None = None, now: datetime | None = None,
) -> DecisionResult:
    """A human approves or rejects. Any reject wins; approvals count distinct people."""
    now = now or utcnow()
    action = await _locked(session, action_id)
    actor = audit.Actor("human", principal.name, via)  # type: ignore[arg-type]
    subject = _Subject(action.incident_id, action.id, action.tool)
    if not principal.at_least(action.approver_role):
        await _event(session, subject, "approval.refused", actor, "forbidden",
                     {"reason": f"role {principal.role} < {action.approver_role}"})
        return _refused(action, Forbidden(
            f"approving {action.tool} needs role {action.approver_role}"))
    if action.separation_of_duties and principal.name == action.requested_by:
        await _event(session, subject, "approval.refused", actor, "forbidden",
                     {"reason": "separation of duties: you requested it"})
        return _refused(action, Forbidden(
            "separation of duties: the person who requested an action cannot approve it"))
    count = len(await approvers(session, action.id))
    if action.status != PENDING:
        if decision == "approve" and action.status in APPROVED_OR_LATER:
            return DecisionResult(action, action.status, count, action.required_approvals,
                                  changed=False, already=True)
        raise Conflict(f"action {action.id} is {action.status}; it can no longer be "
                       f"{decision}d", {"status": action.status})
    if action.expires_at is not None and now >= action.expires_at:
        await _cas(session, action.id, PENDING, "expired")
        await _event(session, subject, "action.expired", audit.SYSTEM, "expired",
                     {"expires_at": iso(action.expires_at)})
        return _refused(action, Conflict(
            f"action {action.id} expired at {iso(action.expires_at)}", {"status": "expired"}))
    inserted = (await session.execute(
        insert_for(session, ActionApproval).values(
            action_id=action.id, principal=principal.name, decision=decision, via=via,
            reason=reason, created_at=now)
        .on_conflict_do_nothing(index_elements=["action_id", "principal"])
        .returning(ActionApproval.id))).scalar()
    if inserted is None and decision == "approve":
        return DecisionResult(action, action.status, count, action.required_approvals,
                              changed=False, already=True)
    await _event(session, subject, f"approval.{decision}", actor, decision, {"reason": reason})
    if decision == "reject":
        await _cas(session, action.id, PENDING, "rejected", error=reason)
        await _event(session, subject, "action.rejected", actor, "rejected", {"reason": reason})
        await session.refresh(action)
        return DecisionResult(action, "rejected", count, action.required_approvals, True, False)
    count += 1
    if count >= action.required_approvals:
        await _cas(session, action.id, PENDING, "approved")
        await _event(session, subject, "action.approved", actor, "approved",
                     {"approvers": await approvers(session, action.id)})
        await session.refresh(action)
        return DecisionResult(action, "approved", count, action.required_approvals, True, False)
    return DecisionResult(action, PENDING, count, action.required_approvals, False, False)


async def expire_due(session: AsyncSession, now: datetime | None = None) -> list[Action]:
    """Pending actions past their expiry become `expired` (default deny); returns them."""
    now = now or utcnow()
    due = list(await session.scalars(
        select(Action).where(Action.status == PENDING, Action.expires_at <= now)))
    expired = []
    for action in due:
        if await _cas(session, action.id, PENDING, "expired"):
            await audit.append(session, type="action.expired", actor=audit.WORKER,
                               incident_id=action.incident_id, action_id=action.id,
                               target=action.tool, outcome="expired",
                               payload={"expires_at": iso(action.expires_at or now)})
            expired.append(action)
    return expired


async def escalate_due(session: AsyncSession, now: datetime | None = None) -> list[Action]:
    """Pending actions waiting longer than their policy's escalate_after_minutes: escalate once
    (an audited timeline entry; Slack joins when it exists)."""
    now = now or utcnow()
    escalated = set(await session.scalars(
        select(AuditEvent.action_id).where(AuditEvent.type == "action.escalated")))
    out = []
    for action in await session.scalars(select(Action).where(Action.status == PENDING)):
        after = action.decision.get("escalate_after_minutes")
        if after is None or action.id in escalated:
            continue
        if now >= action.created_at + timedelta(minutes=int(after)):
            await _event(session, _Subject(action.incident_id, action.id, action.tool),
                         "action.escalated", audit.WORKER, "escalated",
                         {"waiting_minutes": int((now - action.created_at).total_seconds() // 60),
                          "approvals_needed": action.required_approvals,
                          "approver_role": action.approver_role})
            out.append(action)
    return out


async def count_for_incident(session: AsyncSession, incident_id: int | None,
                             tool: str | None = None) -> int:
    """Actions already proposed in the incident (of `tool` only, when given)."""
    if incident_id is None:
        return 0
    stmt = select(func.count()).select_from(Action).where(Action.incident_id == incident_id)
    if tool is not None:
        stmt = stmt.where(Action.tool == tool)
    return int(await session.scalar(stmt) or 0)


async def count_last_hour(session: AsyncSession, tool: str) -> int:
    since = utcnow() - timedelta(hours=1)
    return int(await session.scalar(
        select(func.count()).select_from(Action).where(
            Action.tool == tool, Action.created_at >= since)) or 0)
