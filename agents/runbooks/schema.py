"""Pydantic models of a runbook file; every model refuses unknown keys.

Forward compatibility: new step or runbook keys (like `wait`, `verify`, `on_fail`) are
added as *optional* fields with defaults, so every existing runbook stays valid. Unknown keys are
refused so that a runbook written for a newer schema fails loudly on an older service instead of
silently skipping, say, a `verify`.

Example::

    name: provider-outage
    description: Fail the chat model alias over when a provider errors.
    match:
      alertname: LLMProviderErrorRateHigh        # or a list of names
      labels:
        provider: {in: [openai, azure]}           # "value" | {in: [...]} | {regex: "..."}
        service: chat-api
      severity: [critical, page]                  # optional
    vars:                                         # literal data for templates (`vars.*`)
      fallback: {openai: azure/gpt-4-turbo}
    steps:
      - id: config                                # unique, snake_case: `findings.config`
        tool: gitops.get_config                   # args default to {}
      - id: failover
        tool: gitops.set_model_alias
        when: "labels.provider in vars.fallback"  # a bare expression, must give a bool
        args:
          alias: chat-default
          target: "{{ vars.fallback[labels.provider] }}"
        policy: {required_approvals: 2}           # may only tighten guardrails policy
        wait: 5m                                  # after it ran: a scheduled check, then
        verify: {promql: "...", op: "<", threshold: 0.2}   # or logs: {contains, levels, window}
        on_fail: rollback                         # escalate (default) | rollback | continue
    escalation: {after_minutes: 15, to: ml-platform-oncall, message: "..."}
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    JsonValue,
    Tag,
    field_validator,
    model_validator,
)

from guardrails.policy import PolicyOverride

RUNBOOK_NAME = r"^[a-z0-9][a-z0-9-]*$"
STEP_ID = r"^[a-z][a-z0-9_]*$"
TOOL_NAME = r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LabelIn(_Strict):
    """The label's value is one of these."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    in_: list[str] = Field(alias="in", min_length=1)


class LabelRegex(_Strict):
    """The whole label value matches this regex (anchored, as in Prometheus)."""

    regex: str = Field(min_length=1)

    @field_validator("regex")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"invalid regex {value!r}: {exc}") from None
        return value


def _matcher_kind(value: Any) -> str | None:
    if isinstance(value, str):
        return "value"
    if isinstance(value, dict):
        if "in" in value or "in_" in value:
            return "in"
        if "regex" in value:
            return "regex"
    if isinstance(value, LabelIn):
        return "in"
    if isinstance(value, LabelRegex):
        return "regex"
    return None


LabelMatcher = Annotated[
    Annotated[str, Tag("value")] | Annotated[LabelIn, Tag("in")]
    | Annotated[LabelRegex, Tag("regex")],
    Discriminator(
        _matcher_kind,
        custom_error_type="label_matcher",
        custom_error_message="a label matcher is a string, {in: [...]} or {regex: ...}",
    ),
]


class Match(_Strict):
    """Which alerts a runbook handles; every given condition must hold."""

    alertname: str | Annotated[list[str], Field(min_length=1)]
    labels: dict[str, LabelMatcher] = Field(default_factory=dict)
    severity: Annotated[list[str], Field(min_length=1)] | None = None

    @field_validator("severity")
    @classmethod
    def _lower(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else [s.lower() for s in value]

    @property
    def alertnames(self) -> list[str]:
        return [self.alertname] if isinstance(self.alertname, str) else list(self.alertname)


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> timedelta:
    """"2s", "500ms", "5m", "1h" as a timedelta."""
    found = _DURATION.match(text)
    if found is None:
        raise ValueError(f"invalid duration {text!r}: use a number and ms, s, m or h (e.g. 5m)")
    return timedelta(seconds=float(found.group(1)) * _UNIT_SECONDS[found.group(2)])


Duration = Annotated[str, Field(min_length=2, max_length=20)]


class LogCheck(_Strict):
    """Count log lines in the last `window`: a message substring, levels, services."""

    contains: str | None = Field(default=None, min_length=1, max_length=500)
    levels: list[str] | None = None
    services: list[str] | None = None
    window: Duration = "5m"

    @field_validator("window")
    @classmethod
    def _window(cls, value: str) -> str:
        parse_duration(value)
        return value


class Verify(_Strict):
    """After the step (and its `wait`): `<value> <op> <threshold>` must hold, where the value
    is a PromQL instant query's (largest series) or a log line count. Strings are templates."""

    promql: str | None = Field(default=None, min_length=1, max_length=2000)
    logs: LogCheck | None = None
    op: Literal["<", "<=", ">", ">=", "=="] = "<"
    threshold: float

    @model_validator(mode="after")
    def _one_source(self) -> Verify:
        if (self.promql is None) == (self.logs is None):
            raise ValueError("verify needs exactly one of promql or logs")
        return self


class Step(_Strict):
    """One tool call. Whether it runs directly (READ) or becomes a proposal (WRITE and up) is the
    tool's effect in the registry, not something a runbook can say."""

    id: str = Field(pattern=STEP_ID)
    tool: str = Field(pattern=TOOL_NAME)
    description: str | None = None
    # Each string value (also inside lists and dicts) is a template; other values are literals.
    args: dict[str, JsonValue] = Field(default_factory=dict)
    # A bare sandboxed expression (no braces) that must evaluate to a bool; absent = always.
    when: str | None = Field(default=None, min_length=1)
    # May only tighten what guardrails policy decides for this tool (checked in tests).
    policy: PolicyOverride | None = None
    # After the step's action has run: wait (a scheduled job, not a sleep), then verify; on a
    # failed (or unknowable) verify: escalate (default), propose the recorded inverse, or go on.
    wait: Duration | None = None
    verify: Verify | None = None
    on_fail: Literal["escalate", "rollback", "continue"] = "escalate"

    @field_validator("wait")
    @classmethod
    def _wait(cls, value: str | None) -> str | None:
        if value is not None:
            parse_duration(value)
        return value


class Escalation(_Strict):
    """Who to hand the incident to, and when, if the runbook does not resolve it."""

    after_minutes: int | None = Field(default=None, gt=0)
    to: str | None = Field(default=None, min_length=1)
    message: str | None = None


class Runbook(_Strict):
    name: str = Field(pattern=RUNBOOK_NAME)
    description: str
    match: Match
    # Literal data (never rendered) that templates read as `vars.*`, e.g. a fallback mapping.
    vars: dict[str, JsonValue] = Field(default_factory=dict)
    steps: list[Step] = Field(min_length=1)
    escalation: Escalation = Field(default_factory=Escalation)

    @model_validator(mode="after")
    def _unique_step_ids(self) -> Runbook:
        seen: set[str] = set()
        for step in self.steps:
            if step.id in seen:
                raise ValueError(f"step id {step.id!r} is used twice")
            seen.add(step.id)
        return self

    def step(self, step_id: str) -> Step:
        for step in self.steps:
            if step.id == step_id:
                return step
        raise KeyError(f"runbook {self.name!r} has no step {step_id!r}")
