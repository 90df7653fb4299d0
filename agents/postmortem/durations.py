"""The four durations (detect, acknowledge, approve, mitigate): spans between cited events."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final

from agents.postmortem.context import Context
from agents.postmortem.events import Event, actor_id, actor_kind
from agents.postmortem.model import DURATIONS
from agents.postmortem.text import cite, clean, fmt_duration, hms


@dataclass(frozen=True, slots=True)
class Span:
    start: datetime
    end: datetime
    start_event: Event | None
    end_event: Event | None
    start_what: str
    end_what: str

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()


# Each duration by its key in DURATIONS; None where the trail never reached its end.
Spans = dict[str, Span | None]


def spans_of(ctx: Context) -> Spans:
    first_alert = next((a for a in ctx.alerts if a.starts is not None), None)
    alert_ev = ctx.alert_event(first_alert)
    opened = ctx.opened
    start_what = f"alert {first_alert.name} started" if first_alert else ""
    spans: dict[str, Span | None] = dict.fromkeys(DURATIONS)
    if first_alert is not None and first_alert.starts is not None and opened is not None:
        spans["time_to_detect"] = Span(first_alert.starts, ctx.time(opened), alert_ev, opened,
                                       start_what, "incident opened")
    if opened is not None:
        human = next((e for e in ctx.events if int(e["seq"]) > int(opened["seq"])
                      and actor_kind(e) == "human"), None)
        if human is not None:
            spans["time_to_acknowledge"] = Span(
                ctx.time(opened), ctx.time(human), opened, human, "incident opened",
                f"first human event, {clean(human.get('type'), 60)} by "
                f"{clean(actor_id(human), 80)}")
    proposed = next(iter(ctx.proposals()), None)
    if proposed is not None:
        approve = next((e for e in ctx.of("approval.approve")
                        if int(e["seq"]) > int(proposed["seq"])), None)
        if approve is not None:
            spans["time_to_approve"] = Span(
                ctx.time(proposed), ctx.time(approve), proposed, approve,
                f"first proposal, {ctx.label(proposed.get('action_id'), proposed.get('target'))}",
                f"first approval, by {clean(actor_id(approve), 80)}")
    succeeded = next(iter(ctx.of("action.succeeded")), None)
    if first_alert is not None and first_alert.starts is not None and succeeded is not None:
        spans["time_to_mitigate"] = Span(
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


def duration_line(key: str, span: Span | None) -> str:
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
