"""The opening sections: summary, impact and detection."""

from __future__ import annotations

from datetime import datetime

from agents.postmortem.context import Context
from agents.postmortem.durations import Spans, duration_line
from agents.postmortem.events import Event, actor_id, payload
from agents.postmortem.model import DURATIONS
from agents.postmortem.text import cite, clean, fmt_args, fmt_duration, hms, join_names


def summary(ctx: Context, spans: Spans) -> list[str]:
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
            lines.append(f"- {ctx.label(action.id)}{args}: {state} at "
                         f"{hms(ctx.time(last))} {cite(proposed, last)}")
    else:
        lines.append("- Nothing: no change to any system is recorded.")
    lines += ["", _status(ctx), "", "Durations:"]
    lines += [duration_line(k, spans[k]) for k in DURATIONS]
    return lines


def _status(ctx: Context) -> str:
    if ctx.resolved is not None:
        return (f"Status: resolved at {hms(ctx.time(ctx.resolved))} on "
                f"{ctx.time(ctx.resolved):%Y-%m-%d} {cite(ctx.resolved)}.")
    status = clean(ctx.inp.incident.get("status") or "open", 40)
    return f"Status: {status} when this draft was written."


def impact(ctx: Context) -> list[str]:
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
    end, end_ev, what = _impact_end(ctx)
    if end is None:
        lines.append(f"- Duration: still firing when this draft was written; the first alert "
                     f"started at {hms(first.starts)} {cite(alert_ev)}")
    else:
        lines.append(f"- Duration: {fmt_duration((end - first.starts).total_seconds())}, "
                     f"from the first alert's start at {hms(first.starts)} {cite(alert_ev)} "
                     f"to {what} at {hms(end)} {cite(end_ev)}")
    return lines


def _impact_end(ctx: Context) -> tuple[datetime | None, Event | None, str]:
    if ctx.resolved is not None:
        return ctx.time(ctx.resolved), ctx.resolved, "the incident's resolution"
    ended = [a for a in ctx.alerts if a.ends is not None]
    if ctx.alerts and len(ended) == len(ctx.alerts) and ctx.received:
        last = max(ended, key=lambda a: a.ends or datetime.min)
        assert last.ends is not None
        return last.ends, ctx.alert_event(last, end=True), "the last alert's end"
    return None, None, ""


def detection(ctx: Context, spans: Spans) -> list[str]:
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
    lines.append(duration_line("time_to_detect", spans["time_to_detect"]))
    return lines
