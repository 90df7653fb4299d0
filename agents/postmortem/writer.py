"""Deterministic post-mortem writer: incident, alerts, actions and audit events to a cited draft."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from agents.postmortem import narrative, overview, root_cause, timeline
from agents.postmortem.context import Context
from agents.postmortem.durations import spans_of
from agents.postmortem.events import payload
from agents.postmortem.model import (
    ACTION_ITEMS,
    AUTO_MARKER,
    LINKS,
    SECTIONS,
    TITLE_PREFIX,
    Draft,
    PostmortemInput,
    cited,
)
from agents.postmortem.text import clean
from core.timeutil import iso


def _links(ctx: Context, seqs: Iterable[int]) -> list[str]:
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
    ctx = Context(inp)
    spans = spans_of(ctx)
    makers: dict[str, Callable[[], list[str]]] = {
        "Summary": lambda: overview.summary(ctx, spans),
        "Impact": lambda: overview.impact(ctx),
        "Detection": lambda: overview.detection(ctx, spans),
        "Timeline": lambda: timeline.timeline(ctx),
        "Actions taken": lambda: timeline.actions_taken(ctx),
        "Root cause and contributing factors": lambda: root_cause.root_cause(ctx),
        "What went well": lambda: narrative.went_well(ctx),
        "What went wrong": lambda: narrative.went_wrong(ctx, spans),
        "Where we got lucky": lambda: narrative.lucky(ctx),
        ACTION_ITEMS: lambda: narrative.action_items(ctx),
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
    durations = {k: (None if s is None else s.seconds) for k, s in spans.items()}
    return Draft(markdown="\n".join(parts), sections=bodies, durations=durations, cited=seqs)
