"""Deterministic post-mortem writer: incident, alerts, actions and audit events to a cited draft."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

from agents.postmortem.model import (
    ACTION_ITEMS,
    AUTO_MARKER,
    DURATIONS,
    LINKS,
    SECTIONS,
    TITLE_PREFIX,
    Draft,
    PostmortemInput,
    cited,
    event_time,
    to_datetime,
)
from core.timeutil import iso
from guardrails.redaction import redact_text

# A first proposal this soon after the incident opened counts as prompt ("went well"), and an
# approval slower than this as slow ("went wrong").
PROMPT: Final = timedelta(minutes=15)
# Free text (summaries, notes, reasons) is cut at a word boundary past this many characters.
MAX_TEXT: Final = 400
# Bookkeeping events that say nothing a reader of the timeline needs.
_QUIET: Final = frozenset({
    "investigation.started", "investigation.running", "investigation.waiting",
    "investigation.done", "token.created",
})
_FAILED_FINDING: Final = frozenset({"error", "no_data"})
# Its own write: publishing the post-mortem is no action taken on the incident.
PUBLISH_TOOL: Final = "gitops.publish_postmortem"
UNASSIGNED: Final = "_unassigned_"
NO_DATE: Final = "_set a date_"

Event = dict[str, Any]


# --- text ------------------------------------------------------------------------------------


def clean(value: Any, limit: int = MAX_TEXT) -> str:
    """Free text made safe for one Markdown line: redacted again (defence in depth), on one
    line, cut at a word boundary, and unable to forge a citation or open a comment."""
    text = " ".join(redact_text(str(value))[0].split())
    if len(text) > limit:
        head = text[:limit]
        # Never end inside a word: a cut number would be a number nobody said.
        head = head.rsplit(" ", 1)[0] if text[limit] != " " and " " in head else head
        text = head.rstrip() + " …"
    return (text.replace("[ev:", "(ev:").replace("<!--", "&lt;!--").replace("-->", "--&gt;"))


def cell(value: str) -> str:
    return value.replace("|", "\\|")


def cite(*events: Event | None) -> str:
    seqs = dict.fromkeys(int(e["seq"]) for e in events if e is not None)
    return "".join(f"[ev:{s}]" for s in seqs)


def hms(when: datetime) -> str:
    return f"{when:%H:%M:%S} UTC"


def fmt_duration(seconds: float) -> str:
    """Whole seconds, largest units first: `4 min 12 s`, `1 h 3 min`, `0 s` (what the
    validator reads back as a difference between two cited timestamps)."""
    sign = "-" if seconds < 0 else ""
    total = int(abs(seconds))
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{n} {unit}" for n, unit in ((days, "d"), (hours, "h"), (minutes, "min")) if n]
    if secs or not parts:
        parts.append(f"{secs} s")
    return sign + " ".join(parts)


def code(value: Any, limit: int = 120) -> str:
    """Inline code; a backtick inside would end it early, so it becomes a quote."""
    text = clean(value, limit).replace("`", "'")
    return f"`{text}`"


def fmt_value(value: Any) -> str:
    if isinstance(value, str):
        return code(value)
    if isinstance(value, bool) or value is None:
        return "true" if value is True else "false" if value is False else "null"
    if isinstance(value, int | float):
        return repr(value)
    return code(json.dumps(value, sort_keys=True, ensure_ascii=False))


def fmt_args(args: Any) -> str:
    if not isinstance(args, dict) or not args:
        return "no arguments"
    return ", ".join(f"{clean(k, 60)}={fmt_value(args[k])}" for k in sorted(args))


def money(value: Any) -> str:
    return f"${float(value):,.2f}"


def pct(share: Any) -> str:
    return f"{float(share) * 100:.0f} %"


def join_names(names: Iterable[str]) -> str:
    items = [clean(n, 80) for n in names]
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def payload(event: Event | None) -> dict[str, Any]:
    value = None if event is None else event.get("payload")
    return value if isinstance(value, dict) else {}


def actor_id(event: Event) -> str:
    actor = event.get("actor")
    return str(actor.get("id", "")) if isinstance(actor, dict) else ""


def actor_kind(event: Event) -> str:
    actor = event.get("actor")
    return str(actor.get("kind", "")) if isinstance(actor, dict) else ""


def actor_via(event: Event) -> str:
    actor = event.get("actor")
    return str(actor.get("via", "")) if isinstance(actor, dict) else ""


# --- context ---------------------------------------------------------------------------------


def _own(event: Event) -> bool:
    """The post-mortem's own trail (drafts, edits, publishing) is not part of the incident."""
    kind = str(event.get("type") or "")
    return (kind.startswith("postmortem.") or event.get("target") == PUBLISH_TOOL
            or payload(event).get("tool") == PUBLISH_TOOL)


@dataclass
class _Action:
    id: str
    tool: str
    args: Any = None
    preview: str = ""
    requested_by: str = ""
    status: str = ""
    events: list[Event] = field(default_factory=list)

    def first(self, *types: str) -> Event | None:
        return next((e for e in self.events if e.get("type") in types), None)

    def state(self) -> Event | None:
        """The event that set its current status (verification and runbook steps do not)."""
        return next((e for e in reversed(self.events)
                     if str(e.get("type", "")).startswith(("action.", "execution."))), None)


@dataclass(frozen=True, slots=True)
class _Span:
    start: datetime
    end: datetime
    start_event: Event | None
    end_event: Event | None
    start_what: str
    end_what: str

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()


@dataclass(frozen=True, slots=True)
class _Alert:
    raw: dict[str, Any]
    starts: datetime | None
    ends: datetime | None

    @property
    def name(self) -> str:
        return clean(self.raw.get("name") or "alert", 120)


class _Context:
    """The input indexed for the section writers."""

    def __init__(self, inp: PostmortemInput) -> None:
        self.inp = inp
        self.events = sorted((e for e in inp.events if isinstance(e.get("seq"), int)
                              and event_time(e) is not None and not _own(e)),
                             key=lambda e: int(e["seq"]))
        self.alerts = sorted(
            (_Alert(a, to_datetime(a.get("starts_at")), to_datetime(a.get("ends_at")))
             for a in inp.alerts),
            key=lambda a: (a.starts is None, a.starts or datetime.min, a.name))
        self.received = self.of("alert.received")
        self.opened = next(iter(self.of("incident.opened")), None)
        resolved = self.of("incident.resolved")
        self.resolved = resolved[-1] if resolved else None
        self.actions = self._actions()
        tools = [a.tool for a in self.actions.values()]
        self.ambiguous = {t for t in tools if tools.count(t) > 1}

    def of(self, *types: str) -> list[Event]:
        return [e for e in self.events if e.get("type") in types]

    def time(self, event: Event) -> datetime:
        when = event_time(event)
        assert when is not None, f"event {event.get('seq')} has no ts"
        return when

    def _actions(self) -> dict[str, _Action]:
        out: dict[str, _Action] = {}
        given = {str(a.get("id")): a for a in self.inp.actions
                 if a.get("id") is not None and a.get("tool") != PUBLISH_TOOL}
        for event in self.events:
            action_id = event.get("action_id")
            if not action_id:
                continue
            action = out.get(str(action_id))
            if action is None:
                row = given.get(str(action_id), {})
                body = payload(event) if event.get("type") == "action.proposed" else {}
                action = out[str(action_id)] = _Action(
                    id=str(action_id),
                    tool=str(body.get("tool") or row.get("tool") or event.get("target") or "?"),
                    args=body.get("args", row.get("args")),
                    preview=str(body.get("preview") or row.get("preview") or ""),
                    requested_by=str(body.get("requested_by") or row.get("requested_by") or ""),
                    status=str(row.get("status") or ""))
            action.events.append(event)
        for action_id, row in given.items():
            if action_id not in out:
                out[action_id] = _Action(action_id, str(row.get("tool") or "?"), row.get("args"),
                                         str(row.get("preview") or ""),
                                         str(row.get("requested_by") or ""),
                                         str(row.get("status") or ""))
        return out

    def label(self, action_id: Any, fallback: Any = None) -> str:
        action = self.actions.get(str(action_id)) if action_id else None
        tool = action.tool if action is not None else str(fallback or "an action")
        if action is not None and tool in self.ambiguous:
            return f"{clean(tool, 80)} (action `{clean(action.id, 160)}`)"
        return clean(tool, 80)

    def alert_event(self, alert: _Alert | None, end: bool = False) -> Event | None:
        """The alert.received event to cite for an alert's start (or end): the delivery whose
        payload records that time (intake keeps starts_at/ends_at), else the first delivery
        naming the alert at or after it, else the first at or after it, else the first (for an
        end, the last) delivery."""
        if not self.received:
            return None
        if alert is None:
            return self.received[0]
        when = alert.ends if end else alert.starts
        if when is not None:
            key = "ends_at" if end else "starts_at"
            for event in self.received:
                values = payload(event).get(key)
                if isinstance(values, list) and any(to_datetime(v) == when for v in values):
                    return event
        name = str(alert.raw.get("name") or "").lower()
        after = [e for e in self.received if when is None or self.time(e) >= when]
        named = [e for e in after if name and name in str(e.get("target") or "").lower()]
        return (named or after or [self.received[-1] if end else self.received[0]])[0]

    def proposals(self) -> list[Event]:
        return self.of("action.proposed")


# --- durations -------------------------------------------------------------------------------


def _spans(ctx: _Context) -> dict[str, _Span | None]:
    first_alert = next((a for a in ctx.alerts if a.starts is not None), None)
    alert_ev = ctx.alert_event(first_alert)
    opened = ctx.opened
    start_what = f"alert {first_alert.name} started" if first_alert else ""
    spans: dict[str, _Span | None] = dict.fromkeys(DURATIONS)
    if first_alert is not None and first_alert.starts is not None and opened is not None:
        spans["time_to_detect"] = _Span(first_alert.starts, ctx.time(opened), alert_ev, opened,
                                        start_what, "incident opened")
    if opened is not None:
        human = next((e for e in ctx.events if int(e["seq"]) > int(opened["seq"])
                      and actor_kind(e) == "human"), None)
        if human is not None:
            spans["time_to_acknowledge"] = _Span(
                ctx.time(opened), ctx.time(human), opened, human, "incident opened",
                f"first human event, {clean(human.get('type'), 60)} by "
                f"{clean(actor_id(human), 80)}")
    proposed = next(iter(ctx.proposals()), None)
    if proposed is not None:
        approve = next((e for e in ctx.of("approval.approve")
                        if int(e["seq"]) > int(proposed["seq"])), None)
        if approve is not None:
            spans["time_to_approve"] = _Span(
                ctx.time(proposed), ctx.time(approve), proposed, approve,
                f"first proposal, {ctx.label(proposed.get('action_id'), proposed.get('target'))}",
                f"first approval, by {clean(actor_id(approve), 80)}")
    succeeded = next(iter(ctx.of("action.succeeded")), None)
    if first_alert is not None and first_alert.starts is not None and succeeded is not None:
        spans["time_to_mitigate"] = _Span(
            first_alert.starts, ctx.time(succeeded), alert_ev, succeeded, start_what,
            f"{ctx.label(succeeded.get('action_id'), succeeded.get('target'))} succeeded")
    return spans


_NOT_REACHED: Final = {
    "time_to_detect": "no alert start or no incident.opened event",
    "time_to_acknowledge": "no human event after the incident opened",
    "time_to_approve": "no human approval after a proposal",
    "time_to_mitigate": "no action succeeded",
}
_LABELS: Final = {
    "time_to_detect": "Time to detect",
    "time_to_acknowledge": "Time to acknowledge",
    "time_to_approve": "Time to approve",
    "time_to_mitigate": "Time to mitigate",
}


def _duration_line(key: str, span: _Span | None) -> str:
    label = _LABELS[key]
    if span is None:
        return f"- {label}: not reached ({_NOT_REACHED[key]})"
    if span.start_event is None or span.end_event is None:
        return f"- {label}: not shown (its start is not in the audit trail)"
    text = fmt_duration(span.seconds)
    if span.seconds < 0:
        text += " (the clocks disagree: the start is later than the end)"
    return (f"- {label}: {text} ({span.start_what} at {hms(span.start)} "
            f"{cite(span.start_event)} → {span.end_what} at {hms(span.end)} "
            f"{cite(span.end_event)})")


# --- timeline --------------------------------------------------------------------------------


def _reason(body: dict[str, Any], *keys: str) -> str:
    for key in keys:
        value = body.get(key)
        if value:
            return clean(value, 240)
    return ""


def _with(text: str, extra: str, sep: str = ": ") -> str:
    return f"{text}{sep}{extra}" if extra else text


def describe(ctx: _Context, event: Event) -> str | None:
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
        "runbook.step": lambda: _with(
            f"Runbook step {clean(str(event.get('target') or '').removeprefix('runbook:'), 160)}"
            + (f" ({clean(body['tool'], 80)})" if body.get("tool") else "")
            + f": {clean(event.get('outcome') or body.get('outcome') or '?', 40)}",
            _reason(body, "error"), " — "),
        "runbook.completed": lambda: _runbook_completed(event, body),
        "action.proposed": lambda: _proposed(event, body, label),
        "approval.approve": lambda: f"{label} approved by {who} via {clean(actor_via(event))}",
        "approval.reject": lambda: _with(
            f"{label} rejected by {who} via {clean(actor_via(event))}", _reason(body, "reason")),
        "approval.refused": lambda: _with(f"Approval of {label} by {who} refused",
                                          _reason(body, "reason")),
        "action.approved": lambda: _approved(event, body, label),
        "action.denied": lambda: _with(f"{label} denied by policy", _reason(body, "reason")),
        "action.rejected": lambda: _with(f"{label} rejected", _reason(body, "reason")),
        "action.expired": lambda: f"{label} expired without a decision",
        "action.escalated": lambda: (
            f"{label} escalated after waiting {int(body['waiting_minutes'])} min for approval"
            if isinstance(body.get("waiting_minutes"), int) else f"{label} escalated"),
        "execution.held": lambda: _with(f"Execution of {label} held", _reason(body, "reason")),
        "execution.deferred": lambda: _with(f"Execution of {label} deferred",
                                            _reason(body, "reason")),
        "action.executing": lambda: (
            f"{label} executing"
            + (f" (approved by {join_names(str(n) for n in body['approved_by'])})"
               if body.get("approved_by") else "")),
        "action.succeeded": lambda: f"{label} succeeded",
        "action.failed": lambda: _with(f"{label} failed", _reason(body, "error", "reason")),
        "action.stale": lambda: (f"{label} not applied: the target changed since the "
                                 f"proposal (stale)"),
        "action.refused": lambda: _with(f"{label} refused at execution", _reason(body, "reason")),
        "verify.passed": lambda: _with(f"Verification after {label} passed",
                                       _reason(body, "reason")),
        "verify.failed": lambda: _with(f"Verification after {label} failed",
                                       _reason(body, "reason")),
        "incident.escalated": lambda: _with(
            f"Incident escalated to {clean(body.get('to') or 'a human', 80)}",
            _reason(body, "message", "reason")),
        "note.added": lambda: (f"Note by {clean(body.get('author') or who, 80)}: "
                               f"“{clean(body.get('text') or '')}”"),
        "incident.resolved": lambda: _with("Incident resolved", _reason(body, "reason")),
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


def _policy(event: Event, body: dict[str, Any]) -> str:
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
    return f"{label} proposed by {by} ({fmt_args(body.get('args'))}); {_policy(event, body)}"


def _approved(event: Event, body: dict[str, Any], label: str) -> str:
    if body.get("by_policy"):
        return f"{label} approved by {clean(actor_id(event), 120)}"
    names = body.get("approvers")
    if isinstance(names, list) and names:
        return f"{label}: approval quorum met, approved by {join_names(str(n) for n in names)}"
    return f"{label} approved by {clean(actor_id(event), 80)}"


# --- sections --------------------------------------------------------------------------------


class _Writer:
    def __init__(self, inp: PostmortemInput) -> None:
        self.ctx = _Context(inp)
        self.spans = _spans(self.ctx)

    # Summary ---------------------------------------------------------------------------------

    def summary(self) -> list[str]:
        ctx = self.ctx
        lines: list[str] = []
        if ctx.alerts:
            fired = ", ".join(
                f"{a.name}" + (f" on {clean(a.raw['service'], 80)}" if a.raw.get("service")
                               else "")
                + (f" (severity {clean(a.raw['severity'], 40)})" if a.raw.get("severity")
                   else "") for a in ctx.alerts)
            lines.append(f"What fired: {fired} "
                         f"{cite(ctx.alert_event(ctx.alerts[0]), ctx.opened)}".rstrip() + ".")
        else:
            lines.append("What fired: no alert is recorded for this incident.")
        if ctx.opened is not None:
            when = ctx.time(ctx.opened)
            lines.append(f"The incident opened at {hms(when)} on {when:%Y-%m-%d} "
                         f"{cite(ctx.opened)}.")
        findings = ctx.of("finding.recorded")
        if findings:
            lines += ["", "What the specialists found:"]
            lines += [f"- {clean(payload(e).get('specialist') or actor_id(e), 80)}: "
                      f"{clean(payload(e).get('summary') or 'no summary')} {cite(e)}"
                      for e in findings]
        changes = [a for a in ctx.actions.values() if a.events]
        lines += ["", "What was changed:"]
        if changes:
            for action in changes:
                last = action.state() or action.events[-1]
                proposed = action.first("action.proposed")
                state = clean(last.get("outcome") or action.status or "?", 40).replace("_", " ")
                args = f" ({fmt_args(payload(proposed).get('args'))})" if proposed else ""
                lines.append(f"- {self.ctx.label(action.id)}{args}: {state} at "
                             f"{hms(ctx.time(last))} {cite(proposed, last)}")
        else:
            lines.append("- Nothing: no change to any system is recorded.")
        lines += ["", self._status(), "", "Durations:"]
        lines += [_duration_line(k, self.spans[k]) for k in DURATIONS]
        return lines

    def _status(self) -> str:
        ctx = self.ctx
        if ctx.resolved is not None:
            return (f"Status: resolved at {hms(ctx.time(ctx.resolved))} on "
                    f"{ctx.time(ctx.resolved):%Y-%m-%d} {cite(ctx.resolved)}.")
        status = clean(ctx.inp.incident.get("status") or "open", 40)
        return f"Status: {status} when this draft was written."

    # Impact ----------------------------------------------------------------------------------

    def impact(self) -> list[str]:
        ctx = self.ctx
        inc = ctx.inp.incident
        first = next((a for a in ctx.alerts if a.starts is not None), None)
        alert_ev = ctx.alert_event(first)
        services = [str(s) for s in inc.get("services") or []] or list(dict.fromkeys(
            str(a.raw["service"]) for a in ctx.alerts if a.raw.get("service")))
        lines = [f"- Services: {join_names(services) or 'none recorded'} "
                 f"{cite(alert_ev, ctx.opened)}".rstrip()]
        severity = payload(ctx.opened).get("severity") or inc.get("severity")
        if severity:
            lines.append(f"- Severity: {clean(severity, 40)} {cite(ctx.opened)}".rstrip())
        if first is None or first.starts is None or alert_ev is None:
            lines.append("- Duration: unknown (no alert start, or no alert delivery of this "
                         "incident in the audit trail)")
            return lines
        end, end_ev, what = self._impact_end()
        if end is None:
            lines.append(f"- Duration: still firing when this draft was written; the first alert "
                         f"started at {hms(first.starts)} {cite(alert_ev)}")
        else:
            lines.append(f"- Duration: {fmt_duration((end - first.starts).total_seconds())}, "
                         f"from the first alert's start at {hms(first.starts)} {cite(alert_ev)} "
                         f"to {what} at {hms(end)} {cite(end_ev)}")
        return lines

    def _impact_end(self) -> tuple[datetime | None, Event | None, str]:
        ctx = self.ctx
        if ctx.resolved is not None:
            return ctx.time(ctx.resolved), ctx.resolved, "the incident's resolution"
        ended = [a for a in ctx.alerts if a.ends is not None]
        if ctx.alerts and len(ended) == len(ctx.alerts) and ctx.received:
            last = max(ended, key=lambda a: a.ends or datetime.min)
            assert last.ends is not None
            return last.ends, ctx.alert_event(last, end=True), "the last alert's end"
        return None, None, ""

    # Detection -------------------------------------------------------------------------------

    def detection(self) -> list[str]:
        ctx = self.ctx
        lines: list[str] = []
        for alert in ctx.alerts:
            ev = ctx.alert_event(alert)
            text = f"- {alert.name}"
            facts = [clean(alert.raw[k], 80) for k in ("service", "severity") if alert.raw.get(k)]
            if facts:
                text += f" ({', '.join(facts)})"
            if alert.raw.get("title") and alert.raw.get("title") != alert.raw.get("name"):
                text += f": “{clean(alert.raw['title'], 200)}”"
            if alert.starts is not None and ev is not None:
                text += f"; started at {hms(alert.starts)}"
            if ev is not None:
                text += f"; delivered at {hms(ctx.time(ev))}"
            end_ev = ctx.alert_event(alert, end=True) if alert.ends is not None else None
            if alert.ends is not None and end_ev is not None:
                text += f"; ended at {hms(alert.ends)}"
            lines.append(f"{text} {cite(ev, end_ev, ctx.opened)}".rstrip())
        if not ctx.alerts:
            lines.append("- No alert is recorded for this incident.")
        if ctx.opened is not None:
            lines.append(f"- The incident opened at {hms(ctx.time(ctx.opened))} "
                         f"{cite(ctx.opened)}.")
        lines.append(_duration_line("time_to_detect", self.spans["time_to_detect"]))
        return lines

    # Timeline --------------------------------------------------------------------------------

    def timeline(self) -> list[str]:
        ctx = self.ctx
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

    # Actions taken ---------------------------------------------------------------------------

    def actions_taken(self) -> list[str]:
        ctx = self.ctx
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
                             f"{_policy(proposed, body)} {cite(proposed)}")
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

    # Root cause ------------------------------------------------------------------------------

    def root_cause(self) -> list[str]:
        ctx = self.ctx
        lines = ["Hypotheses, each supported by the cited evidence; they describe systems, "
                 "changes and decisions, not people."]
        for event in ctx.of("runbook.completed"):
            body = payload(event)
            name = clean(str(event.get("target") or "").removeprefix("runbook:"), 120)
            reads = [str(s) for s in body.get("read_steps") or []]
            text = f"- The alert matched runbook {name}"
            if reads:
                text += f", which read {join_names(reads)}"
            props = body.get("proposals")
            if isinstance(props, list):
                text += (f" and made {len(props)} proposal{'s' if len(props) != 1 else ''}")
            lines.append(f"{text} {cite(event)}")
        for event in ctx.of("finding.recorded"):
            lines += self._finding_factors(event)
        notes = ctx.of("note.added")
        if notes:
            lines.append("- What people observed (their notes, as written):")
            lines += [f"  - {clean(payload(e).get('author') or actor_id(e), 80)}: "
                      f"“{clean(payload(e).get('text') or '')}” {cite(e)}" for e in notes]
        for event in ctx.of("verify.passed", "verify.failed"):
            label = ctx.label(event.get("action_id"), event.get("target"))
            done = next((e for e in ctx.of("action.succeeded")
                         if e.get("action_id") == event.get("action_id")), None)
            if event.get("type") == "verify.passed":
                lines.append(f"- The measure recovered after {label} {cite(done, event)}, which "
                             f"supports the hypothesis that the state it changed contributed.")
            else:
                lines.append(f"- The measure did not recover after {label} {cite(done, event)}; "
                             f"the cause may lie elsewhere.")
        if len(lines) == 1 + (len(notes) + 1 if notes else 0):
            lines.append("- The audit trail records no finding and no runbook; the cause is not "
                         "established by it.")
        return lines

    def _finding_factors(self, event: Event) -> list[str]:
        body = payload(event)
        who = clean(body.get("specialist") or actor_id(event), 80)
        out = [f"- {who}: {clean(body.get('summary') or 'no summary')} {cite(event)}"]
        for p in body.get("patterns") or []:
            if not isinstance(p, dict) or not p.get("label"):
                continue
            level = f" ({clean(p['level'], 20)})" if p.get("level") else ""
            count = f"{p['count']:,} lines" if isinstance(p.get("count"), int) else ""
            share = (f"{pct(p['share'])} of its level's lines"
                     if isinstance(p.get("share"), int | float) else "")
            figures = ", ".join(x for x in (count, share) if x)
            out.append(f"  - Log pattern {code(p['label'])}{level}"
                       f"{': ' + figures if figures else ''} {cite(event)}")
        burn = body.get("burn_rate_usd_per_hour")
        base = body.get("baseline_burn_rate_usd_per_hour")
        if isinstance(burn, int | float):
            text = f"  - Spend rate {money(burn)}/h"
            if isinstance(base, int | float):
                text += f" against a baseline of {money(base)}/h"
            out.append(f"{text} {cite(event)}")
        for user in body.get("top_users") or []:
            if isinstance(user, dict) and user.get("user_id"):
                parts: list[str] = []
                if isinstance(user.get("cost_usd"), int | float):
                    parts.append(money(user["cost_usd"]))
                if isinstance(user.get("requests"), int):
                    parts.append(f"{user['requests']:,} requests")
                out.append(f"  - Top user by spend {clean(user['user_id'], 80)}"
                           f"{' (' + ', '.join(parts) + ')' if parts else ''} {cite(event)}")
        runaway = [str(u) for u in body.get("runaway_users") or [] if isinstance(u, str | int)]
        if runaway:
            out.append(f"  - Traffic that looks like a runaway loop: {join_names(runaway)} "
                       f"{cite(event)}")
        return out

    # Went well / wrong / lucky ---------------------------------------------------------------

    def went_well(self) -> list[str]:
        ctx = self.ctx
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
                         f"{_reason(payload(event), 'reason') or 'no detail'} {cite(event)}.")
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

    def went_wrong(self) -> list[str]:
        ctx = self.ctx
        lines: list[str] = []
        for event in ctx.events:
            kind = event.get("type")
            body = payload(event)
            label = ctx.label(event.get("action_id"), event.get("target"))
            when = hms(ctx.time(event))
            text = None
            if kind == "action.failed":
                text = _with(f"{label} failed at {when}", _reason(body, "error", "reason"))
            elif kind == "action.stale":
                text = (f"{label} was not applied at {when}: its target changed after the "
                        f"proposal (stale)")
            elif kind == "action.expired":
                text = f"{label} expired at {when} without a decision"
            elif kind == "action.denied":
                text = _with(f"Policy denied {label} at {when}", _reason(body, "reason"))
            elif kind == "action.refused":
                text = _with(f"{label} was refused at execution at {when}",
                             _reason(body, "reason"))
            elif kind == "approval.reject":
                text = _with(f"The proposal {label} was rejected by "
                             f"{clean(actor_id(event), 80)} at {when}", _reason(body, "reason"))
            elif kind == "approval.refused":
                text = _with(f"An approval of {label} by {clean(actor_id(event), 80)} was "
                             f"refused at {when}", _reason(body, "reason"))
            elif kind == "execution.held":
                text = _with(f"Execution of {label} was held at {when}", _reason(body, "reason"))
            elif kind == "verify.failed":
                text = _with(f"Verification failed after {label} at {when}",
                             _reason(body, "reason"))
            elif kind == "incident.escalated":
                text = _with(f"The incident was escalated to "
                             f"{clean(body.get('to') or 'a human', 80)} at {when}",
                             _reason(body, "message", "reason"))
            elif kind == "action.escalated":
                text = describe(ctx, event)
            elif kind == "finding.recorded" and event.get("outcome") in _FAILED_FINDING:
                text = _with(f"{clean(body.get('specialist') or actor_id(event), 80)} produced "
                             f"no evidence ({clean(event.get('outcome'), 20)})",
                             _reason(body, "summary"))
            elif kind == "runbook.step" and event.get("outcome") in ("failed", "read_error"):
                text = describe(ctx, event)
            if text is not None:
                lines.append(f"- {text} {cite(event)}")
        span = self.spans["time_to_approve"]
        if span is not None and span.seconds > PROMPT.total_seconds():
            lines.append(f"- The first human approval came {fmt_duration(span.seconds)} after "
                         f"the first proposal {cite(span.start_event, span.end_event)}.")
        return lines or ["- No failure, rejection, expiry or escalation is recorded."]

    def lucky(self) -> list[str]:
        ctx = self.ctx
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

    # Action items ----------------------------------------------------------------------------

    def action_items(self) -> list[str]:
        ctx = self.ctx
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


def _links(ctx: _Context, seqs: Iterable[int]) -> list[str]:
    by_seq = {int(e["seq"]): e for e in ctx.events}
    lines = []
    for seq in sorted(set(seqs)):
        event = by_seq.get(seq)
        if event is not None:
            lines.append(f"- [ev:{seq}] `{event.get('id')}` · {clean(event.get('type'), 80)} · "
                         f"{iso(ctx.time(event))}")
    return lines or ["- No event is cited."]


def write(inp: PostmortemInput) -> Draft:
    """The draft: the same input always gives the same Markdown, and every factual line cites
    the audit events it rests on (validator.validate passes on it)."""
    w = _Writer(inp)
    ctx = w.ctx
    makers: dict[str, Callable[[], list[str]]] = {
        "Summary": w.summary,
        "Impact": w.impact,
        "Detection": w.detection,
        "Timeline": w.timeline,
        "Actions taken": w.actions_taken,
        "Root cause and contributing factors": w.root_cause,
        "What went well": w.went_well,
        "What went wrong": w.went_wrong,
        "Where we got lucky": w.lucky,
        ACTION_ITEMS: w.action_items,
    }
    bodies = {name: "\n".join([AUTO_MARKER, *make()]) for name, make in makers.items()}
    seqs = sorted({s for body in bodies.values() for s in cited(body)})
    bodies[LINKS] = "\n".join([AUTO_MARKER, *_links(ctx, seqs)])
    title = clean(inp.incident.get("title") or payload(ctx.opened).get("title")
                  or f"incident {inp.incident.get('id', '?')}", 200)
    # No clock time in the text: the same trail must give the same draft (regeneration
    # compares drafts to tell whether anything changed).
    parts = [f"{TITLE_PREFIX}{title}", "",
             "<!-- auto: written from the audit trail; facts cite events as [ev:seq], listed "
             "under Links -->", ""]
    for name in SECTIONS:
        parts += [f"## {name}", bodies[name], ""]
    durations = {k: (None if s is None else s.seconds) for k, s in w.spans.items()}
    return Draft(markdown="\n".join(parts), sections=bodies, durations=durations, cited=seqs)
