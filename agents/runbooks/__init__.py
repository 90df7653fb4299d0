"""Runbooks: YAML data validated by a schema, matched to alerts, args rendered in a sandbox."""

from agents.runbooks.context import AlertContext, AlertLike
from agents.runbooks.errors import (
    RunbookError,
    RunbookLoadError,
    TemplateRenderError,
    TemplateSecurityError,
)
from agents.runbooks.loader import default_runbooks_dir, load_runbook_file, load_runbooks
from agents.runbooks.matcher import PlannedStep, match, matches, plan, render_step, specificity
from agents.runbooks.schema import Escalation, LabelIn, LabelRegex, Match, Runbook, Step
from agents.runbooks.templates import build_context, evaluate_when, render_args, render_value

__all__ = [
    "AlertContext",
    "AlertLike",
    "Escalation",
    "LabelIn",
    "LabelRegex",
    "Match",
    "PlannedStep",
    "Runbook",
    "RunbookError",
    "RunbookLoadError",
    "Step",
    "TemplateRenderError",
    "TemplateSecurityError",
    "build_context",
    "default_runbooks_dir",
    "evaluate_when",
    "load_runbook_file",
    "load_runbooks",
    "match",
    "matches",
    "plan",
    "render_args",
    "render_step",
    "render_value",
    "specificity",
]
