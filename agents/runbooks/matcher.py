"""Picks the runbook for an alert and plans its steps (rendered args, `when` applied).

Matching rule: a runbook matches when its alertname (one name, or any of a list) equals the
alert's name, every label matcher holds (a missing label never matches; a string is equality,
`in` is membership, `regex` must match the whole value), and, if `severity` is given, the
alert's severity is in it. Among matches the most specific wins, by (number of label matchers,
severity given, a single alertname rather than a list); ties go to the first in the order given
(`load_runbooks` returns file-name order).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, NamedTuple

from pydantic import JsonValue

from agents.runbooks.context import AlertContext, AlertLike
from agents.runbooks.schema import LabelIn, LabelMatcher, Runbook, Step
from agents.runbooks.templates import build_context, evaluate_when, render_args


def _label_holds(matcher: LabelMatcher, value: str | None) -> bool:
    if value is None:
        return False
    if isinstance(matcher, str):
        return value == matcher
    if isinstance(matcher, LabelIn):
        return value in matcher.in_
    return re.fullmatch(matcher.regex, value) is not None


def matches(runbook: Runbook, alert: AlertLike | AlertContext) -> bool:
    """True if every condition of the runbook's `match` holds for the alert."""
    ctx = AlertContext.of(alert)
    m = runbook.match
    if ctx.name not in m.alertnames:
        return False
    if m.severity is not None and ctx.severity.lower() not in m.severity:
        return False
    return all(_label_holds(matcher, ctx.labels.get(label))
               for label, matcher in m.labels.items())


def specificity(runbook: Runbook) -> tuple[int, bool, bool]:
    m = runbook.match
    return (len(m.labels), m.severity is not None, isinstance(m.alertname, str))


def match(runbooks: Iterable[Runbook], alert: AlertLike | AlertContext) -> Runbook | None:
    """The most specific matching runbook (see the module docstring), or None."""
    ctx = AlertContext.of(alert)
    best: Runbook | None = None
    for runbook in runbooks:
        if matches(runbook, ctx) and (best is None or specificity(runbook) > specificity(best)):
            best = runbook
    return best


class PlannedStep(NamedTuple):
    """A step whose `when` held, with its args rendered."""

    step: Step
    args: dict[str, JsonValue]


def render_step(runbook: Runbook, step: Step | str, alert: AlertLike | AlertContext,
                findings: Mapping[str, Any] | None = None) -> PlannedStep | None:
    """One step rendered against the alert and findings so far; None if its `when` is false."""
    if isinstance(step, str):
        step = runbook.step(step)
    context = build_context(runbook, alert, findings)
    if not evaluate_when(runbook, step, context):
        return None
    return PlannedStep(step, render_args(runbook, step, context))


def plan(runbook: Runbook, alert: AlertLike | AlertContext,
         findings: Mapping[str, Any] | None = None) -> Iterator[PlannedStep]:
    """Yield the runbook's steps in order, skipping those whose `when` is false.

    Lazy on purpose: each step is rendered only when the iterator reaches it, against the
    `findings` mapping as it is then. A caller that runs each yielded READ step and stores
    `findings[step.id] = result.data` before advancing lets later steps use that data.
    """
    live: Mapping[str, Any] = findings if findings is not None else {}
    ctx = AlertContext.of(alert)
    for step in runbook.steps:
        planned = render_step(runbook, step, ctx, live)
        if planned is not None:
            yield planned
