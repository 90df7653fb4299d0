"""Timeline and actions taken: every audit event described in one cited line."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from agents.postmortem.context import Context
from agents.postmortem.events import Event, actor_id, actor_via, payload
from agents.postmortem.text import cite, clean, fmt_args, hms, join_names, reason, with_detail

# Bookkeeping events that say nothing a reader of the timeline needs.
_QUIET: Final = frozenset({
    "investigation.started", "investigation.running", "investigation.waiting",
    "investigation.done", "token.created",
})


def describe(ctx: Context, event: Event) -> str | None:
    """One timeline entry for an event (None for bookkeeping nobody needs to read)."""
    kind = str(event.get("type") or "")
    body = payload(event)
    label = ctx.label(event.get("action_id"), event.get("target"))
    who = clean(actor_id(event), 80)
    if kind in _QUIET:
        return None
    simple: dict[str, Callable[[], str]] = {
        "alert.received": lambda: _alert_received(body),
        "incident.opened": lambda: (
            f"Incident opened: “{clean(body.get('title') or '', 200)}”"
            + (f" (severity {clean(body['severity'], 40)})" if body.get("severity") else "")),
        "investigation.routed": lambda: (
            "Investigation routed to " + (join_names(str(r) for r in body.get("routes") or [])
                                          or "no specialist")),
        "injection.suspected": lambda: (
            f"Suspected prompt injection flagged in {clean(event.get('target') or 'input', 80)}"
            + (f" (kinds: {join_names(str(k) for k in body['kinds'])})"
               if body.get("kinds") else "")),
        "finding.recorded": lambda: (
            f"{clean(body.get('specialist') or who, 80)} recorded its "
            f"{clean(body.get('kind') or 'finding', 60)} finding"
            + (f" (status {clean(event['outcome'], 40)})"
               if event.get("outcome") not in (None, "ok") else "")),
        "runbook.step": lambda: with_detail(
            f"Runbook step {clean(str(event.get('target') or '').removeprefix('runbook:'), 160)}"
            + (f" ({clean(body['tool'], 80)})" if body.get("tool") else "")
            + f": {clean(event.get('outcome') or body.get('outcome') or '?', 40)}",
            reason(body, "error"), " — "),
        "runbook.completed": lambda: _runbook_completed(event, body),
        "action.proposed": lambda: _proposed(event, body, label),
        "approval.approve": lambda: f"{label} approved by {who} via {clean(actor_via(event))}",
        "approval.reject": lambda: with_detail(
            f"{label} rejected by {who} via {clean(actor_via(event))}", reason(body, "reason")),
        "approval.refused": lambda: with_detail(f"Approval of {label} by {who} refused",
                                                reason(body, "reason")),
        "action.approved": lambda: _approved(event, body, label),
        "action.denied": lambda: with_detail(f"{label} denied by policy", reason(body, "reason")),
        "action.rejected": lambda: with_detail(f"{label} rejected", reason(body, "reason")),
        "action.expired": lambda: f"{label} expired without a decision",
        "action.escalated": lambda: (
            f"{label} escalated after waiting {int(body['waiting_minutes'])} min for approval"
            if isinstance(body.get("waiting_minutes"), int) else f"{label} escalated"),
        "execution.held": lambda: with_detail(f"Execution of {label} held", reason(body, "reason")),
        "execution.deferred": lambda: with_detail(f"Execution of {label} deferred",
                                                  reason(body, "reason")),
        "action.executing": lambda: (
            f"{label} executing"
            + (f" (approved by {join_names(str(n) for n in body['approved_by'])})"
               if body.get("approved_by") else "")),
        "action.succeeded": lambda: f"{label} succeeded",
        "action.failed": lambda: with_detail(f"{label} failed", reason(body, "error", "reason")),
        "action.stale": lambda: (f"{label} not applied: the target changed since the "
                                 f"proposal (stale)"),
        "action.refused": lambda: with_detail(f"{label} refused at execution",
                                              reason(body, "reason")),
        "verify.passed": lambda: with_detail(f"Verification after {label} passed",
                                             reason(body, "reason")),
        "verify.failed": lambda: with_detail(f"Verification after {label} failed",
                                             reason(body, "reason")),
        "incident.escalated": lambda: with_detail(
            f"Incident escalated to {clean(body.get('to') or 'a human', 80)}",
            reason(body, "message", "reason")),
        "note.added": lambda: (f"Note by {clean(body.get('author') or who, 80)}: "
                               f"“{clean(body.get('text') or '')}”"),
        "incident.resolved": lambda: with_detail("Incident resolved", reason(body, "reason")),
    }
    if kind == "action.rejected" and any(
            e.get("type") == "approval.reject" and e.get("action_id") == event.get("action_id")
            for e in ctx.events):
        return None  # the human's reject, just before it, already says so
    make = simple.get(kind)
    if make is not None:
        return make()
    outcome = event.get("outcome")
    return clean(kind, 80) + (f" ({clean(outcome, 40)})" if outcome else "")


def _alert_received(body: dict[str, Any]) -> str:
    text = f"Alert delivery from {clean(body.get('source') or 'a source', 60)}"
    counts = [f"{body[k]} {k}" for k in ("new", "updated", "ignored")
              if isinstance(body.get(k), int) and body[k]]
    if isinstance(body.get("alerts"), int):
        noun = "alert" if body["alerts"] == 1 else "alerts"
        text += f": {body['alerts']} {noun}" + (f" ({', '.join(counts)})" if counts else "")
    return text


def _runbook_completed(event: Event, body: dict[str, Any]) -> str:
    name = clean(str(event.get("target") or "").removeprefix("runbook:"), 120)
    proposals = body.get("proposals")
    failed = body.get("failed_steps")
    text = f"Runbook {name} completed"
    if isinstance(proposals, list):
        text += f": {len(proposals)} proposal{'s' if len(proposals) != 1 else ''}"
    if isinstance(failed, dict) and failed:
        text += f", {len(failed)} failed step{'s' if len(failed) != 1 else ''}"
    return text


def policy_text(event: Event, body: dict[str, Any]) -> str:
    raw = body.get("policy")
    policy: dict[str, Any] = raw if isinstance(raw, dict) else {}
    rule = f"policy rule {clean(policy['rule'], 80)}" if policy.get("rule") else "policy"
    outcome = clean(event.get("outcome") or policy.get("outcome") or "?", 40)
    text = f"{rule}: {outcome.replace('_', ' ')}"
    needed = policy.get("required_approvals")
    if event.get("outcome") == "pending_approval" and isinstance(needed, int):
        text += f", {needed} approval{'s' if needed != 1 else ''} needed"
    return text


def _proposed(event: Event, body: dict[str, Any], label: str) -> str:
    by = clean(body.get("requested_by") or actor_id(event), 120)
    return f"{label} proposed by {by} ({fmt_args(body.get('args'))}); {policy_text(event, body)}"


def _approved(event: Event, body: dict[str, Any], label: str) -> str:
    if body.get("by_policy"):
        return f"{label} approved by {clean(actor_id(event), 120)}"
    names = body.get("approvers")
    if isinstance(names, list) and names:
        return f"{label}: approval quorum met, approved by {join_names(str(n) for n in names)}"
    return f"{label} approved by {clean(actor_id(event), 80)}"


def timeline(ctx: Context) -> list[str]:
    lines: list[str] = []
    day = None
    for event in ctx.events:
        what = describe(ctx, event)
        if what is None:
            continue
        when = ctx.time(event)
        # The date is shown where it changes, so a timeline across midnight stays readable.
        stamp = hms(when) if when.date() == day else f"{hms(when)} ({when:%Y-%m-%d})"
        day = when.date()
        lines.append(f"- {stamp} — {what} {cite(event)}")
    return lines or ["- No event is recorded for this incident."]


def actions_taken(ctx: Context) -> list[str]:
    lines: list[str] = []
    for action in ctx.actions.values():
        proposed = action.first("action.proposed")
        if not action.events:
            lines.append(f"- **{ctx.label(action.id)}**: no audit event of this incident "
                         f"records it")
            continue
        head = f"- **{ctx.label(action.id)}**"
        if proposed is not None:
            head += f" ({fmt_args(payload(proposed).get('args'))}) {cite(proposed)}"
        lines.append(head)
        if proposed is not None and action.preview:
            lines.append(f"  - Change: {clean(action.preview)} {cite(proposed)}")
        if proposed is not None:
            body = payload(proposed)
            by = clean(body.get("requested_by") or actor_id(proposed), 120)
            lines.append(f"  - Proposed by {by} at {hms(ctx.time(proposed))}; "
                         f"{policy_text(proposed, body)} {cite(proposed)}")
        for event in action.events:
            if event is proposed or event.get("type") == "runbook.step":
                continue
            what = describe(ctx, event)
            if what is not None:
                lines.append(f"  - {hms(ctx.time(event))}: {what} {cite(event)}")
        last = action.state() or action.events[-1]
        state = clean(last.get("outcome") or action.status or "?", 40).replace("_", " ")
        lines.append(f"  - Last recorded state: {state} {cite(last)}")
    return lines or ["- None: no change to any system is recorded."]
