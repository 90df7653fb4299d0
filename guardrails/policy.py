"""Approval policy: per tool, effect and arguments decide allow, deny or require approval."""

from __future__ import annotations

import re
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, Final, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
    field_validator,
    model_validator,
)

from tools.base import Effect

__all__ = [
    "DEFAULT_POLICY_FILE",
    "ROLE_RANK",
    "ArgMatch",
    "Decision",
    "Limits",
    "Outcome",
    "Policy",
    "PolicyContext",
    "PolicyError",
    "PolicyOverride",
    "RateLimits",
    "Role",
    "Rule",
    "loosening_reasons",
    "role_at_least",
]

# Semantics, in one place (callers rely on these):
#
# * `Policy.evaluate` depends only on the tool name, the effect, the argument values named by a
#   rule's `when` or by a limit, and the counters of `PolicyContext`. Argument values are compared
#   exactly (type-aware: True is not 1, "4" is not 4); patterns only ever come from the policy
#   file, never from arguments. Any other argument (free text such as a reason or a description)
#   cannot change the decision or its reason.
# * Rules are tried in file order; the first whose `tool` glob and every `when` matcher hold wins.
#   A matcher on an argument that is absent never holds. No rule matched -> `defaults[effect]`.
# * Limits and the global rate limits apply to WRITE and DESTRUCTIVE calls only; a rule's own
#   `max_per_hour` / `max_per_incident` apply to whatever it matches. A violated limit or rate
#   limit turns the decision into `deny`, whose reason names the limit and the value.
# * The kill switch never changes a decision: `PolicyContext.kill_switch` is carried for the
#   executor, which refuses to run anything while it is on (approved actions stay approved).
# * `requested_by` is not used here either: separation of duties is a field of the decision that
#   the approvals layer enforces (the requester cannot approve).
# * An approval request expires after `expiry_minutes`; an expired request is denied (never run).
#   `escalate_after_minutes`, when set, asks the expiry sweep to escalate a still-pending request.

Outcome = Literal["allow", "deny", "require_approval"]
Role = Literal["viewer", "approver", "admin"]
ApproverRole = Literal["approver", "admin"]

ROLE_RANK: Final[Mapping[str, int]] = {"viewer": 0, "approver": 1, "admin": 2}
_OUTCOME_RANK: Final[Mapping[str, int]] = {"allow": 0, "require_approval": 1, "deny": 2}
# Approvals a require_approval decision needs when neither the rule nor the default says.
_BASE_APPROVALS: Final[Mapping[Effect, int]] = {
    Effect.READ: 1, Effect.WRITE: 1, Effect.DESTRUCTIVE: 2,
}

DEFAULT_POLICY_FILE: Final = Path(__file__).with_name("policy.yaml")

_MAX_SHOWN: Final = 80


def role_at_least(role: str, required: str) -> bool:
    """True when `role` ranks at or above `required` (viewer < approver < admin); unknown: False."""
    return role in ROLE_RANK and required in ROLE_RANK and ROLE_RANK[role] >= ROLE_RANK[required]


class PolicyError(ValueError):
    """A policy file that cannot be read or does not validate; the message names the key."""


# --------------------------------------------------------------------------- decisions


class PolicyOverride(BaseModel):
    """What a runbook step may ask for on top of policy; only the tightening part is applied."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    required_approvals: int | None = Field(default=None, ge=0, le=10)
    approver_role: Role | None = None
    expiry_minutes: int | None = Field(default=None, ge=1)
    separation_of_duties: bool | None = None
    deny: bool | None = None


class Decision(BaseModel):
    """The outcome of evaluating one proposed tool call, stored with the action."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    outcome: Outcome
    rule: str
    reason: str
    required_approvals: int = Field(ge=0)
    approver_role: Role
    separation_of_duties: bool
    expiry_minutes: int = Field(ge=1)
    escalate_after_minutes: int | None = None

    @property
    def allowed(self) -> bool:
        return self.outcome == "allow"

    @property
    def denied(self) -> bool:
        return self.outcome == "deny"

    def tighten(self, override: PolicyOverride) -> Decision:
        """Apply `override` only where it is stricter; returns `self` when nothing changes.

        More approvals (an `allow` then needs approval), a higher role, a shorter expiry,
        separation of duties switched on, and `deny: true` are taken; the opposite of each is
        ignored (see `loosening_reasons`). `escalate_after_minutes` is left as it is.
        """
        update: dict[str, Any] = {}
        changes: list[str] = []
        outcome: Outcome = self.outcome
        wanted = override.required_approvals
        if wanted is not None and wanted > self.required_approvals:
            update["required_approvals"] = wanted
            changes.append(f"required_approvals {self.required_approvals} → {wanted}")
            if outcome == "allow":
                outcome = "require_approval"
        role = override.approver_role
        if role is not None and ROLE_RANK[role] > ROLE_RANK[self.approver_role]:
            update["approver_role"] = role
            changes.append(f"approver_role {self.approver_role} → {role}")
        expiry = override.expiry_minutes
        if expiry is not None and expiry < self.expiry_minutes:
            update["expiry_minutes"] = expiry
            changes.append(f"expiry_minutes {self.expiry_minutes} → {expiry}")
        if override.separation_of_duties and not self.separation_of_duties:
            update["separation_of_duties"] = True
            changes.append("separation_of_duties false → true")
        if override.deny and outcome != "deny":
            outcome = "deny"
        if outcome != self.outcome:
            update["outcome"] = outcome
            changes.append(f"outcome {self.outcome} → {outcome}")
        if not changes:
            return self
        update["reason"] = f"{self.reason}; tightened by override: {', '.join(changes)}"
        return self.model_copy(update=update)


def loosening_reasons(decision: Decision, override: PolicyOverride) -> list[str]:
    """Every field where `override` asks for less than `decision`; empty when it only tightens.

    Invariant: the list is empty exactly when `decision.tighten(override)` takes every value the
    override sets (nothing of it had to be ignored).
    """
    reasons: list[str] = []
    wanted = override.required_approvals
    if wanted is not None and wanted < decision.required_approvals:
        reasons.append(
            f"required_approvals: {wanted} is fewer than the {decision.required_approvals} "
            f"required by policy rule {decision.rule!r}"
        )
    role = override.approver_role
    if role is not None and ROLE_RANK[role] < ROLE_RANK[decision.approver_role]:
        reasons.append(
            f"approver_role: {role} is below {decision.approver_role} "
            f"required by policy rule {decision.rule!r}"
        )
    expiry = override.expiry_minutes
    if expiry is not None and expiry > decision.expiry_minutes:
        reasons.append(
            f"expiry_minutes: {expiry} is longer than the {decision.expiry_minutes} "
            f"allowed by policy rule {decision.rule!r}"
        )
    if override.separation_of_duties is False and decision.separation_of_duties:
        reasons.append(
            f"separation_of_duties: false, but policy rule {decision.rule!r} requires it"
        )
    if override.deny is False and decision.outcome == "deny":
        reasons.append(f"deny: false, but policy rule {decision.rule!r} denies this call")
    return reasons


@dataclass(frozen=True, slots=True, kw_only=True)
class PolicyContext:
    """Trusted facts about a proposed call. Counts exclude the call being evaluated.

    `actions_last_hour_for_tool`: actions of this tool proposed in the last hour (all incidents).
    `actions_for_incident`: actions (any tool) already proposed in this incident.
    `actions_for_incident_for_tool`: of those, actions of this tool; when None the incident total
    stands in for it (an upper bound, so a rule's `max_per_incident` still holds).
    `gpus_per_pod`: observed GPUs per pod of the deployment a `kube.*` call scales (from the
    cluster, not from the proposal); needed whenever `limits.max_total_gpus` is set.
    `requested_by` and `kill_switch` do not influence `Policy.evaluate` (see module notes).
    """

    incident_id: str | None
    requested_by: str | None
    actions_last_hour_for_tool: int
    actions_for_incident: int
    actions_for_incident_for_tool: int | None = None
    gpus_per_pod: int | None = None
    kill_switch: bool = False

    def __post_init__(self) -> None:
        for name in ("actions_last_hour_for_tool", "actions_for_incident",
                     "actions_for_incident_for_tool", "gpus_per_pod"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool)
                                      or value < 0):
                raise ValueError(f"PolicyContext.{name} must be a non-negative integer")


# --------------------------------------------------------------------------- policy file

Scalar = StrictStr | StrictBool | StrictInt | StrictFloat | None
Number = StrictInt | StrictFloat


class _FileModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class ArgMatch(_FileModel):
    """Conditions on one argument; every condition given must hold. YAML shorthands: a scalar
    means `{eq: scalar}`, a list means `{in: list}`."""

    eq: Scalar = None
    ne: Scalar = None
    in_: list[Scalar] | None = Field(default=None, alias="in")
    not_in: list[Scalar] | None = None
    gt: Number | None = None
    gte: Number | None = None
    lt: Number | None = None
    lte: Number | None = None
    glob: StrictStr | None = None

    @model_validator(mode="after")
    def _needs_a_condition(self) -> ArgMatch:
        if not self.model_fields_set:
            raise ValueError("a matcher needs one of eq, ne, in, not_in, gt, gte, lt, lte, glob")
        return self

    def holds(self, value: Any) -> bool:
        given = self.model_fields_set
        checks: list[bool] = []
        if "eq" in given:
            checks.append(_same(value, self.eq))
        if "ne" in given:
            checks.append(not _same(value, self.ne))
        if "in_" in given:
            checks.append(any(_same(value, item) for item in self.in_ or ()))
        if "not_in" in given:
            checks.append(not any(_same(value, item) for item in self.not_in or ()))
        number = value if _is_number(value) else None
        for name, test in (("gt", float.__gt__), ("gte", float.__ge__),
                           ("lt", float.__lt__), ("lte", float.__le__)):
            bound = getattr(self, name)
            if name in given:
                checks.append(number is not None and bound is not None
                              and test(float(number), float(bound)))
        if "glob" in given:
            checks.append(isinstance(value, str) and fnmatchcase(value, self.glob or ""))
        return all(checks)


class Limits(_FileModel):
    """Hard limits on WRITE/DESTRUCTIVE arguments. A list left out (None) does not restrict.

    gitops.*: `flag` in allowed_flags, `path` matches allowed_prompts (globs; `*` stays inside one
    path segment), `alias` in allowed_aliases, `target` in allowed_alias_targets.
    kube.*: `namespace` in allowed_namespaces (required when the list is set), `replicas` at most
    max_replicas, replicas times observed GPUs per pod at most max_total_gpus, and 0 replicas only
    with allow_scale_to_zero. cache.*: `prefix` in allowed_cache_prefixes.
    """

    allowed_flags: list[StrictStr] | None = None
    allowed_prompts: list[StrictStr] | None = None
    allowed_aliases: list[StrictStr] | None = None
    allowed_alias_targets: list[StrictStr] | None = None
    allowed_namespaces: list[StrictStr] | None = None
    allowed_cache_prefixes: list[StrictStr] | None = None
    max_replicas: int | None = Field(default=None, ge=0)
    max_total_gpus: int | None = Field(default=None, ge=0)
    allow_scale_to_zero: bool = False

    @field_validator("allowed_prompts")
    @classmethod
    def _relative_globs(cls, value: list[str] | None) -> list[str] | None:
        for pattern in value or ():
            if _unsafe_path(pattern):
                raise ValueError(f"prompt pattern {pattern!r} must be a relative path "
                                 "without '.', '..' or empty segments")
        return value


class RateLimits(_FileModel):
    """`max_per_hour`: actions of one tool per hour; `max_per_incident`: actions per incident."""

    max_per_hour: int | None = Field(default=None, ge=0)
    max_per_incident: int | None = Field(default=None, ge=0)


class _Settings(_FileModel):
    decision: Outcome
    required_approvals: int | None = Field(default=None, ge=1, le=10)
    approver_role: ApproverRole | None = None
    separation_of_duties: bool | None = None
    expiry_minutes: int | None = Field(default=None, ge=1)
    escalate_after_minutes: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _approvals_only_when_required(self) -> _Settings:
        if self.required_approvals is not None and self.decision != "require_approval":
            raise ValueError(f"required_approvals only applies to decision require_approval, "
                             f"not {self.decision}")
        return self


class EffectDefault(_Settings):
    """The decision for a tool of one effect that no rule matches."""


class EffectDefaults(_FileModel):
    read: EffectDefault = EffectDefault(decision="allow")
    write: EffectDefault = EffectDefault(decision="require_approval", required_approvals=1)
    destructive: EffectDefault = EffectDefault(decision="require_approval", required_approvals=2)

    def for_effect(self, effect: Effect) -> EffectDefault:
        value: EffectDefault = getattr(self, effect.value)
        return value


class Rule(_Settings):
    """One entry of `rules`: the first that matches a call decides it."""

    name: StrictStr = Field(min_length=1)
    tool: StrictStr = Field(min_length=1)
    when: dict[str, ArgMatch] = Field(default_factory=dict)
    reason: StrictStr | None = None
    max_per_hour: int | None = Field(default=None, ge=0)
    max_per_incident: int | None = Field(default=None, ge=0)
    limits: Limits | None = None

    @field_validator("name")
    @classmethod
    def _not_reserved(cls, value: str) -> str:
        if value.startswith("default:"):
            raise ValueError("rule names starting with 'default:' are reserved")
        return value

    @field_validator("when", mode="before")
    @classmethod
    def _shorthands(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        return {key: ({"in": item} if isinstance(item, list)
                      else item if isinstance(item, dict) else {"eq": item})
                for key, item in value.items()}

    def matches(self, tool: str, args: Mapping[str, Any]) -> bool:
        if not fnmatchcase(tool, self.tool):
            return False
        return all(key in args and matcher.holds(args[key]) for key, matcher in self.when.items())


class Policy(_FileModel):
    """The approval policy file (guardrails/policy.yaml by default); unknown keys are refused."""

    version: Literal[1] = 1
    approver_role: ApproverRole = "approver"
    separation_of_duties: bool = True
    expiry_minutes: int = Field(default=30, ge=1)
    escalate_after_minutes: int | None = Field(default=None, ge=1)
    rate_limits: RateLimits = RateLimits(max_per_incident=10)
    defaults: EffectDefaults = EffectDefaults()
    limits: Limits = Limits()
    rules: list[Rule] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> Policy:
        seen: set[str] = set()
        for index, rule in enumerate(self.rules):
            if rule.name in seen:
                raise ValueError(f"rules.{index}.name: duplicate rule name {rule.name!r}")
            seen.add(rule.name)
        for effect in Effect:
            for candidate in (None, *self.rules):
                decision = self._resolve(effect, candidate)
                escalate = decision.escalate_after_minutes
                if escalate is not None and escalate >= decision.expiry_minutes:
                    where = (f"rule {candidate.name!r}" if candidate
                             else f"defaults.{effect.value}")
                    raise ValueError(f"{where}: escalate_after_minutes ({escalate}) must be "
                                     f"less than expiry_minutes ({decision.expiry_minutes})")
        return self

    # ----------------------------------------------------------------------- loading

    @classmethod
    def load(cls, path: Path | None = None) -> Policy:
        """Read and validate a policy file (default: policy.yaml next to this module)."""
        source = path or DEFAULT_POLICY_FILE
        try:
            text = source.read_text(encoding="utf-8")
        except OSError as exc:
            raise PolicyError(f"{source}: cannot read policy file: {exc}") from exc
        return cls.from_yaml(text, source=str(source))

    @classmethod
    def from_yaml(cls, text: str, *, source: str = "<policy>") -> Policy:
        try:
            data = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
        except yaml.YAMLError as exc:
            raise PolicyError(f"{source}: not valid YAML: {exc}") from exc
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise PolicyError(f"{source}: the policy must be a mapping at the top level")
        return cls.from_dict(data, source=source)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "<policy>") -> Policy:
        try:
            return cls.model_validate(dict(data))
        except ValidationError as exc:
            raise PolicyError(_describe_errors(exc, source)) from None

    # ----------------------------------------------------------------------- evaluation

    def evaluate(self, tool: str, effect: Effect | str, args: Mapping[str, Any],
                 ctx: PolicyContext) -> Decision:
        """Decide one proposed call; pass the tool's full validated args (`model_dump()`)."""
        eff = Effect(effect)
        rule = next((rule for rule in self.rules if rule.matches(tool, args)), None)
        decision = self._resolve(eff, rule)
        if decision.outcome == "deny":
            return decision
        if eff is not Effect.READ:
            violation = _limit_violation(tool, args, self._limits(rule), ctx)
            if violation is not None:
                return _denied(decision, violation)
        violation = self._rate_violation(tool, eff, rule, ctx)
        if violation is not None:
            return _denied(decision, violation)
        return decision

    def candidate_decisions(self, tool: str, effect: Effect | str) -> list[Decision]:
        """Every decision the rules and default could give `tool` before limits and rate limits,
        whatever its arguments, in rule order (useful to lint runbook overrides)."""
        eff = Effect(effect)
        decisions: list[Decision] = []
        for rule in self.rules:
            if fnmatchcase(tool, rule.tool):
                decisions.append(self._resolve(eff, rule))
                if not rule.when:
                    return decisions
        decisions.append(self._resolve(eff, None))
        return decisions

    def _resolve(self, effect: Effect, rule: Rule | None) -> Decision:
        default = self.defaults.for_effect(effect)
        layers: tuple[_Settings, ...] = (rule, default) if rule else (default,)

        def pick(name: str) -> Any:
            return next((getattr(layer, name) for layer in layers
                         if getattr(layer, name) is not None), None)

        outcome = layers[0].decision
        role: Role = pick("approver_role") or self.approver_role
        sod = pick("separation_of_duties")
        expiry: int = pick("expiry_minutes") or self.expiry_minutes
        escalate: int | None = pick("escalate_after_minutes") or self.escalate_after_minutes
        approvals = 0
        if outcome == "require_approval":
            approvals = (layers[0].required_approvals
                         or (default.required_approvals if default.decision == outcome else None)
                         or _BASE_APPROVALS[effect])
        name = rule.name if rule else f"default:{effect.value}"
        summary = _summary(outcome, approvals, role)
        if rule is None:
            reason = f"default for {effect.value} tools: {summary}"
        elif rule.reason:
            reason = f"rule {rule.name!r}: {rule.reason} ({summary})"
        else:
            reason = f"rule {rule.name!r}: {summary}"
        return Decision(
            outcome=outcome, rule=name, reason=reason, required_approvals=approvals,
            approver_role=role,
            separation_of_duties=self.separation_of_duties if sod is None else bool(sod),
            expiry_minutes=expiry, escalate_after_minutes=escalate,
        )

    def _limits(self, rule: Rule | None) -> Limits:
        if rule is None or rule.limits is None:
            return self.limits
        changed = {name: getattr(rule.limits, name) for name in rule.limits.model_fields_set}
        return self.limits.model_copy(update=changed)

    def _rate_violation(self, tool: str, effect: Effect, rule: Rule | None,
                        ctx: PolicyContext) -> str | None:
        counted = effect is not Effect.READ
        per_hour = rule.max_per_hour if rule and rule.max_per_hour is not None else (
            self.rate_limits.max_per_hour if counted else None)
        if per_hour is not None and ctx.actions_last_hour_for_tool >= per_hour:
            return (f"rate limit max_per_hour: {ctx.actions_last_hour_for_tool} {tool} actions "
                    f"in the last hour, limit {per_hour}")
        incident_cap = self.rate_limits.max_per_incident if counted else None
        if incident_cap is not None and ctx.actions_for_incident >= incident_cap:
            return (f"rate limit max_per_incident: {ctx.actions_for_incident} actions already "
                    f"in incident {ctx.incident_id}, limit {incident_cap}")
        if rule is not None and rule.max_per_incident is not None:
            count = ctx.actions_for_incident_for_tool
            if count is None:
                count = ctx.actions_for_incident
            if count >= rule.max_per_incident:
                return (f"rate limit max_per_incident (rule {rule.name!r}): {count} {tool} "
                        f"actions already in incident {ctx.incident_id}, "
                        f"limit {rule.max_per_incident}")
        return None


# --------------------------------------------------------------------------- limits

# (tool glob, argument, limit): the argument's value must be one of the limit's strings.
_MEMBERSHIP: Final[tuple[tuple[str, str, str], ...]] = (
    ("gitops.*", "flag", "allowed_flags"),
    ("gitops.*", "alias", "allowed_aliases"),
    ("gitops.*", "target", "allowed_alias_targets"),
    ("kube.*", "namespace", "allowed_namespaces"),
    ("cache.*", "prefix", "allowed_cache_prefixes"),
)


def _limit_violation(tool: str, args: Mapping[str, Any], limits: Limits,
                     ctx: PolicyContext) -> str | None:
    for pattern, arg, name in _MEMBERSHIP:
        allowed: list[str] | None = getattr(limits, name)
        if allowed is None or not fnmatchcase(tool, pattern):
            continue
        if arg not in args:
            if arg == "namespace":
                return f"limit {name}: {tool} names no namespace (allowed: {_list(allowed)})"
            continue
        value = args[arg]
        if not (isinstance(value, str) and value in allowed):
            return (f"limit {name}: {arg} {_show(value)} is not allowed "
                    f"(allowed: {_list(allowed)})")
    # Post-mortems have their own folder, fixed by the tool's argument schema.
    if (limits.allowed_prompts is not None and fnmatchcase(tool, "gitops.*") and "path" in args
            and tool != "gitops.publish_postmortem"):
        path = args["path"]
        if not (isinstance(path, str) and _prompt_allowed(path, limits.allowed_prompts)):
            return (f"limit allowed_prompts: path {_show(path)} is not allowed "
                    f"(allowed: {_list(limits.allowed_prompts)})")
    if fnmatchcase(tool, "kube.*") and "replicas" in args:
        return _replica_violation(args["replicas"], limits, ctx)
    return None


def _replica_violation(replicas: Any, limits: Limits, ctx: PolicyContext) -> str | None:
    if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
        return f"limit max_replicas: replicas {_show(replicas)} is not a non-negative integer"
    if replicas == 0 and not limits.allow_scale_to_zero:
        return "limit allow_scale_to_zero: scaling to 0 replicas is not allowed"
    if limits.max_replicas is not None and replicas > limits.max_replicas:
        return (f"limit max_replicas: replicas {replicas} exceeds the maximum of "
                f"{limits.max_replicas}")
    if limits.max_total_gpus is not None:
        if ctx.gpus_per_pod is None:
            return (f"limit max_total_gpus: GPUs per pod unknown, cannot check {replicas} "
                    f"replicas against the maximum of {limits.max_total_gpus} GPUs")
        total = replicas * ctx.gpus_per_pod
        if total > limits.max_total_gpus:
            return (f"limit max_total_gpus: {replicas} replicas × {ctx.gpus_per_pod} GPUs = "
                    f"{total} GPUs exceeds the maximum of {limits.max_total_gpus}")
    return None


def _unsafe_path(path: str) -> bool:
    return (path.startswith("/") or "\\" in path or "\x00" in path
            or any(part in ("", ".", "..") for part in path.split("/")))


def _prompt_allowed(path: str, patterns: list[str]) -> bool:
    if _unsafe_path(path):
        return False
    parts = path.split("/")
    for pattern in patterns:
        pattern_parts = pattern.split("/")
        if len(pattern_parts) == len(parts) and all(
                fnmatchcase(part, glob) for part, glob in zip(parts, pattern_parts, strict=True)):
            return True
    return False


# --------------------------------------------------------------------------- helpers


def _denied(decision: Decision, reason: str) -> Decision:
    return decision.model_copy(update={"outcome": "deny", "reason": reason,
                                       "required_approvals": 0})


def _summary(outcome: Outcome, approvals: int, role: str) -> str:
    if outcome == "allow":
        return "allowed without approval"
    if outcome == "deny":
        return "denied"
    plural = "approval" if approvals == 1 else "distinct approvals"
    return f"needs {approvals} {plural} (role {role} or above)"


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _same(value: Any, expected: Any) -> bool:
    """Type-aware equality: bools only equal bools, numbers numbers, strings strings."""
    if expected is None or value is None:
        return value is None and expected is None
    if isinstance(expected, bool) or isinstance(value, bool):
        return isinstance(value, bool) and isinstance(expected, bool) and value is expected
    if _is_number(expected):
        return _is_number(value) and bool(value == expected)
    return isinstance(value, str) and isinstance(expected, str) and value == expected


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 1] + "…"


def _list(items: list[str]) -> str:
    return ", ".join(items) if items else "none"


def _describe_errors(exc: ValidationError, source: str) -> str:
    lines = [f"{source}: invalid policy"]
    for error in exc.errors():
        loc = [str(part) for part in error["loc"]]
        if error["type"] == "extra_forbidden":
            where = ".".join(loc[:-1]) or "the top level"
            lines.append(f"  unknown key {loc[-1]!r} at {where}")
        else:
            msg = error["msg"].removeprefix("Value error, ")
            lines.append(f"  {'.'.join(loc)}: {msg}" if loc else f"  {msg}")
    return "\n".join(lines)


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys and reads only true/false as booleans, so that
    `variant: off` stays the string "off" (YAML 1.2 behaviour)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, Hashable):
                continue  # SafeLoader reports unhashable keys itself
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


_BOOL_TAG: Final = "tag:yaml.org,2002:bool"
_StrictLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != _BOOL_TAG]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_StrictLoader.add_implicit_resolver(
    _BOOL_TAG, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))
