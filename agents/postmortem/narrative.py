"""The review sections: what went well, what went wrong, where we got lucky, action items."""

from __future__ import annotations

from datetime import timedelta
from typing import Final

from agents.postmortem.context import Context
from agents.postmortem.durations import Spans
from agents.postmortem.events import actor_id, payload
from agents.postmortem.text import (
    cell,
    cite,
    clean,
    fmt_duration,
    hms,
    join_names,
    reason,
    with_detail,
)
from agents.postmortem.timeline import describe

# A first proposal this soon after the incident opened counts as prompt ("went well"), and an
# approval slower than this as slow ("went wrong").
PROMPT: Final = timedelta(minutes=15)
_FAILED_FINDING: Final = frozenset({"error", "no_data"})
UNASSIGNED: Final = "_unassigned_"
NO_DATE: Final = "_set a date_"


def went_well(ctx: Context) -> list[str]:
    lines: list[str] = []
    first = next(iter(ctx.proposals()), None)
    if first is not None and ctx.opened is not None:
        delay = ctx.time(first) - ctx.time(ctx.opened)
        if timedelta(0) <= delay <= PROMPT:
            lines.append(f"- The first proposal, {ctx.label(first.get('action_id'))}, came "
                         f"{fmt_duration(delay.total_seconds())} after the incident opened "
                         f"{cite(ctx.opened, first)}.")
    for event in ctx.of("action.approved"):
        body = payload(event)
        names = body.get("approvers")
        if not body.get("by_policy") and isinstance(names, list) and names:
            lines.append(f"- Approval quorum met for {ctx.label(event.get('action_id'))}: "
                         f"approved by {join_names(str(n) for n in names)} at "
                         f"{hms(ctx.time(event))} {cite(event)}.")
    for event in ctx.of("verify.passed"):
        lines.append(f"- Verification passed after {ctx.label(event.get('action_id'))}: "
                     f"{reason(payload(event), 'reason') or 'no detail'} {cite(event)}.")
    for event in ctx.of("injection.suspected"):
        lines.append(f"- The injection screen flagged text aimed at the agent in "
                     f"{clean(event.get('target') or 'the input', 80)} at "
                     f"{hms(ctx.time(event))} {cite(event)}.")
    done = ctx.of("action.succeeded")
    bad = ctx.of("action.failed", "action.stale", "action.refused")
    if done and not bad:
        labels = join_names(dict.fromkeys(ctx.label(e.get("action_id")) for e in done))
        lines.append(f"- Every action that ran succeeded: {labels} {cite(*done)}.")
    if ctx.resolved is not None and ctx.opened is not None:
        took = (ctx.time(ctx.resolved) - ctx.time(ctx.opened)).total_seconds()
        lines.append(f"- The incident resolved {fmt_duration(took)} after it opened "
                     f"{cite(ctx.opened, ctx.resolved)}.")
    return lines or ["- Nothing in the audit trail stands out as having gone well."]


def went_wrong(ctx: Context, spans: Spans) -> list[str]:
    lines: list[str] = []
    for event in ctx.events:
        kind = event.get("type")
        body = payload(event)
        label = ctx.label(event.get("action_id"), event.get("target"))
        when = hms(ctx.time(event))
        text = None
        if kind == "action.failed":
            text = with_detail(f"{label} failed at {when}", reason(body, "error", "reason"))
        elif kind == "action.stale":
            text = (f"{label} was not applied at {when}: its target changed after the "
                    f"proposal (stale)")
        elif kind == "action.expired":
            text = f"{label} expired at {when} without a decision"
        elif kind == "action.denied":
            text = with_detail(f"Policy denied {label} at {when}", reason(body, "reason"))
        elif kind == "action.refused":
            text = with_detail(f"{label} was refused at execution at {when}",
                               reason(body, "reason"))
        elif kind == "approval.reject":
            text = with_detail(f"The proposal {label} was rejected by "
                               f"{clean(actor_id(event), 80)} at {when}", reason(body, "reason"))
        elif kind == "approval.refused":
            text = with_detail(f"An approval of {label} by {clean(actor_id(event), 80)} was "
                               f"refused at {when}", reason(body, "reason"))
        elif kind == "execution.held":
            text = with_detail(f"Execution of {label} was held at {when}", reason(body, "reason"))
        elif kind == "verify.failed":
            text = with_detail(f"Verification failed after {label} at {when}",
                               reason(body, "reason"))
        elif kind == "incident.escalated":
            text = with_detail(f"The incident was escalated to "
                               f"{clean(body.get('to') or 'a human', 80)} at {when}",
                               reason(body, "message", "reason"))
        elif kind == "action.escalated":
            text = describe(ctx, event)
        elif kind == "finding.recorded" and event.get("outcome") in _FAILED_FINDING:
            text = with_detail(f"{clean(body.get('specialist') or actor_id(event), 80)} produced "
                               f"no evidence ({clean(event.get('outcome'), 20)})",
                               reason(body, "summary"))
        elif kind == "runbook.step" and event.get("outcome") in ("failed", "read_error"):
            text = describe(ctx, event)
        if text is not None:
            lines.append(f"- {text} {cite(event)}")
    span = spans["time_to_approve"]
    if span is not None and span.seconds > PROMPT.total_seconds():
        lines.append(f"- The first human approval came {fmt_duration(span.seconds)} after "
                     f"the first proposal {cite(span.start_event, span.end_event)}.")
    return lines or ["- No failure, rejection, expiry or escalation is recorded."]


def lucky(ctx: Context) -> list[str]:
    lines: list[str] = []
    proposals = ctx.proposals()
    for event in ctx.of("injection.suspected"):
        from_runbooks = all(str(payload(p).get("requested_by") or "").startswith("runbook:")
                            for p in proposals)
        if not proposals:
            lines.append(f"- Text aimed at the agent was flagged {cite(event)}, and no "
                         f"write depended on it: nothing was proposed at all.")
        elif from_runbooks:
            lines.append(f"- Text aimed at the agent was flagged {cite(event)}, and no "
                         f"write depended on it: every proposal came from a runbook step "
                         f"{cite(*proposals)}.")
    for event in ctx.of("action.stale", "action.refused"):
        lines.append(f"- {ctx.label(event.get('action_id'), event.get('target'))} was "
                     f"caught before it ran: it did not apply an outdated change "
                     f"{cite(event)}.")
    failed = ctx.of("action.failed", "action.stale", "action.expired", "action.refused")
    if ctx.resolved is not None and failed:
        labels = join_names(dict.fromkeys(ctx.label(e.get("action_id")) for e in failed))
        lines.append(f"- The incident resolved at {hms(ctx.time(ctx.resolved))} even though "
                     f"{labels} did not complete {cite(*failed, ctx.resolved)}.")
    return lines or ["- Nothing in the audit trail points to luck."]


def action_items(ctx: Context) -> list[str]:
    items: list[str] = []
    for event in ctx.events:
        kind = event.get("type")
        body = payload(event)
        label = ctx.label(event.get("action_id"), event.get("target"))
        item = None
        if kind == "action.failed":
            item = f"Find out why {label} failed and fix the cause"
        elif kind == "action.stale":
            item = f"Keep {label} from going stale between proposal and execution"
        elif kind == "action.expired":
            item = (f"Check why {label} got no decision before it expired (routing, "
                    f"paging, approver availability)")
        elif kind == "action.denied":
            item = f"Reconcile the runbook step behind {label} with the policy that denied it"
        elif kind == "approval.refused":
            item = f"Make sure approvers with the needed role can be reached for {label}"
        elif kind == "verify.failed":
            item = f"Investigate why the measure did not recover after {label}"
        elif kind == "incident.escalated":
            item = f"Follow up the escalation to {clean(body.get('to') or 'a human', 80)}"
        elif kind == "injection.suspected":
            item = (f"Find where the text flagged as prompt injection in "
                    f"{clean(event.get('target') or 'the input', 80)} came from")
        elif kind == "finding.recorded" and event.get("outcome") in _FAILED_FINDING:
            item = (f"Restore the data {clean(body.get('specialist') or 'the specialist', 80)}"
                    f" needs")
        elif kind == "runbook.completed":
            name = clean(str(event.get("target") or "").removeprefix("runbook:"), 120)
            item = f"Review runbook {name} against this incident"
        if item is not None:
            items.append(f"| {cell(item)} {cite(event)} | {UNASSIGNED} | {NO_DATE} |")
    if not ctx.of("runbook.completed"):
        items.append(f"| Decide whether a runbook should cover this alert | {UNASSIGNED} "
                     f"| {NO_DATE} |")
    return ["| Item | Owner | Due |", "| --- | --- | --- |", *items]
