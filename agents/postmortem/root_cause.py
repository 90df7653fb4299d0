"""The root cause section: hypotheses from runbooks, findings, notes and verification."""

from __future__ import annotations

from agents.postmortem.context import Context
from agents.postmortem.events import Event, actor_id, payload
from agents.postmortem.text import cite, clean, code, join_names, money, pct


def root_cause(ctx: Context) -> list[str]:
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
        lines += _finding_factors(event)
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


def _finding_factors(event: Event) -> list[str]:
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
