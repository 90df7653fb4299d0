"""Deterministic chat command grammar (Slack, web chat): one line of text in, a typed command."""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, ClassVar, Final, TypeAlias

from pydantic import BaseModel, TypeAdapter, ValidationError

from guardrails.redaction import redact_text
from guardrails.tokens import Principal
from tools.gitops import write_tools as gitops_write
from tools.gitops.args import (
    BlockUserArgs,
    PromptPath,
    RollbackPromptArgs,
    SetFlagArgs,
    SetModelAliasArgs,
)
from tools.kube import scale as kube_scale
from tools.kube.args import ScaleDeploymentArgs

__all__ = [
    "COMMANDS",
    "MAX_TEXT",
    "MAX_WINDOW",
    "Actions",
    "Approve",
    "BlockUser",
    "Command",
    "Cost",
    "Help",
    "Incidents",
    "Logs",
    "Postmortem",
    "Proposal",
    "Reject",
    "RollbackPrompt",
    "Scale",
    "SetAlias",
    "SetFlag",
    "ShowIncident",
    "Status",
    "Unknown",
    "allowed",
    "help_text",
    "parse",
    "usage",
]

MAX_TEXT: Final = 2000
MAX_WINDOW: Final = timedelta(days=7)
MIN_WINDOW: Final = timedelta(minutes=1)
MAX_INCIDENT: Final = 2**31 - 1  # the incidents table's id is a 32-bit integer
MAX_REASON: Final = 2000  # what POST /actions/{id}/reject accepts
# Unknown.text is echoed back into a channel: short, and never a whole pasted blob.
_EXCERPT: Final = 200
# Error messages quote the offending value; a long one would drown the message.
_QUOTE: Final = 60

# The action-id pattern of api.params.ActionId; tools.logs.tools.Name is the same for services.
_ID_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:/-]{0,199}")
# [0-9] rather than \d: \d would accept other scripts' digits, which int() then converts.
_INCIDENT_RE: Final = re.compile(r"#?([0-9]{1,10})")
_REPLICAS_RE: Final = re.compile(r"[0-9]{1,6}")
_WINDOW_RE: Final = re.compile(r"([0-9]{1,5})([mhd])", re.IGNORECASE)
_UNITS: Final = {"m": timedelta(minutes=1), "h": timedelta(hours=1), "d": timedelta(days=1)}

# Invisible characters (controls, zero-width and bidi formatting) can make a line read
# differently from what it is, so a line holding one is refused rather than cleaned.
_BAD_CATEGORIES: Final = frozenset({"Cc", "Cf", "Cs"})
_ALLOWED_CONTROLS: Final = frozenset("\t")

# Slack markup (https://docs.slack.dev/messaging/formatting-message-text). parse() cuts the
# first line before reading markup; no group crosses a line break either, so even a reordering
# could never let markup pull a second line into the first.
_NL: Final = r"\n\r\v\f\x1c-\x1e\x85\u2028\u2029"
_MENTION_RE: Final = rf"<@[UW][A-Z0-9]{{1,40}}(?:\|[^<>{_NL}]*)?>"
# "@bot: status" arrives as "<@U1>: status"; the punctuation belongs to the mention.
_LEADING_MENTIONS: Final = re.compile(rf"^(?:\s*{_MENTION_RE}\s*[:,]?)+")
_MENTION: Final = re.compile(_MENTION_RE)
_SPECIAL: Final = re.compile(rf"<![^<>{_NL}]*>")  # <!here>, <!channel>, <!subteam^S1|@team>
_LINK: Final = re.compile(rf"<([^<>|\s]+)(?:\|([^<>{_NL}]*))?>")
_ENTITY: Final = re.compile(r"&(amp|lt|gt);")
_ENTITIES: Final = {"amp": "&", "lt": "<", "gt": ">"}


class _BadArgs(ValueError):
    """Arguments that do not fit the command; the message says what was wrong."""


def _quote(value: object) -> str:
    text = str(value)
    return repr(text if len(text) <= _QUOTE else text[:_QUOTE] + "…")


# --- argument checks shared by the commands' __post_init__ --------------------------------

# What a value must look like, in words: pydantic's own message is the raw regex.
_HINTS: Final = {
    "NAME(prompt)": "a .md file under prompts/, no segment starting with '.'",
    "NAME(flag)": "letters, digits and _.:/- starting with a letter or digit",
    "NAME(alias)": "letters, digits and _.:/- starting with a letter or digit",
    "TARGET": "provider/model, e.g. azure/gpt-4-turbo",
    "USER": "letters, digits and _.@:+- starting with a letter or digit",
    "NAMESPACE": "lowercase letters, digits and '-' (a DNS label, at most 63)",
    "DEPLOYMENT": "lowercase letters, digits, '-' and '.'",
    "COMMIT": "a commit id: 4 to 64 hex digits",
}


def _explain(exc: ValidationError, labels: Mapping[str, str]) -> str:
    parts = []
    for err in exc.errors():
        msg = err["msg"].removeprefix("Value error, ")
        if not err["loc"]:  # a whole-model rule, e.g. RollbackPromptArgs' exactly-one
            parts.append(msg)
            continue
        field = str(err["loc"][0])
        label = labels.get(field, field.upper())
        # "NAME(flag)" picks the hint; the user only ever sees "NAME".
        shown = f"{label.split('(', 1)[0]} {_quote(err['input'])}"
        if err["type"] == "string_pattern_mismatch" and label in _HINTS:
            parts.append(f"{shown} should be {_HINTS[label]}")
        else:
            parts.append(f"{shown}: {msg}")
    return "; ".join(parts)


def _validate(model: type[BaseModel], values: dict[str, Any], labels: Mapping[str, str]) -> None:
    """Check `values` with the tool's own argument model, so chat accepts exactly what it does."""
    try:
        model.model_validate(values)
    except ValidationError as exc:
        raise _BadArgs(_explain(exc, labels)) from None


_PROMPT_PATH: Final[TypeAdapter[str]] = TypeAdapter(PromptPath)


def _check_action_id(action_id: str) -> None:
    if not isinstance(action_id, str) or _ID_RE.fullmatch(action_id) is None:
        raise _BadArgs(f"ACTION_ID {_quote(action_id)} should be letters, digits and _.:/- "
                       "(at most 200), e.g. incident-12:runbook:step")


def _check_incident(incident_id: int) -> None:
    # bool is an int subclass; True is not incident 1.
    if type(incident_id) is not int or not 0 < incident_id <= MAX_INCIDENT:
        raise _BadArgs(f"N {_quote(incident_id)} should be an incident number from 1 to "
                       f"{MAX_INCIDENT}")


def _check_window(window: timedelta) -> None:
    if not isinstance(window, timedelta) or window % MIN_WINDOW:
        raise _BadArgs("WINDOW should be a whole number of minutes")
    if window < MIN_WINDOW:
        raise _BadArgs("WINDOW should be at least 1m")
    if window > MAX_WINDOW:
        raise _BadArgs(f"WINDOW {_fmt_window(window)} is longer than the maximum "
                       f"{_fmt_window(MAX_WINDOW)}")


def _fmt_window(window: timedelta) -> str:
    minutes = window // MIN_WINDOW
    for unit, size in (("d", 24 * 60), ("h", 60)):
        if minutes % size == 0:
            return f"{minutes // size}{unit}"
    return f"{minutes}m"


def _bad_char(char: str) -> bool:
    return unicodedata.category(char) in _BAD_CATEGORIES and char not in _ALLOWED_CONTROLS


def _escape(text: str) -> str:
    """Slack's own escaping, so free text survives a round trip through parse()."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# --- the commands ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Command:
    """Every command is valid once constructed: __post_init__ raises ValueError otherwise."""

    name: ClassVar[str]
    usage: ClassVar[str]
    summary: ClassVar[str]
    min_role: ClassVar[str] = "viewer"

    def canonical(self) -> str:
        """The command as text; parse(c.canonical()) == c."""
        return self.name


@dataclass(frozen=True, slots=True)
class Help(_Command):
    name: ClassVar[str] = "help"
    usage: ClassVar[str] = "help [COMMAND]"
    summary: ClassVar[str] = "the commands you can run, or one command's usage"
    topic: str | None = None

    def __post_init__(self) -> None:
        if self.topic is not None and self.topic not in _BY_NAME:
            raise _BadArgs(f"COMMAND {_quote(self.topic)} is not a command")

    def canonical(self) -> str:
        return "help" if self.topic is None else f"help {self.topic}"


@dataclass(frozen=True, slots=True)
class Status(_Command):
    name: ClassVar[str] = "status"
    usage: ClassVar[str] = "status"
    summary: ClassVar[str] = "overall health: open incidents and actions waiting for approval"


@dataclass(frozen=True, slots=True)
class Incidents(_Command):
    name: ClassVar[str] = "incidents"
    usage: ClassVar[str] = "incidents"
    summary: ClassVar[str] = "the open incidents"


@dataclass(frozen=True, slots=True)
class ShowIncident(_Command):
    name: ClassVar[str] = "incident"
    usage: ClassVar[str] = "incident N"
    summary: ClassVar[str] = "one incident: summary, findings and actions"
    incident_id: int

    def __post_init__(self) -> None:
        _check_incident(self.incident_id)

    def canonical(self) -> str:
        return f"incident {self.incident_id}"


@dataclass(frozen=True, slots=True)
class Logs(_Command):
    name: ClassVar[str] = "logs"
    usage: ClassVar[str] = "logs SERVICE [WINDOW]"
    summary: ClassVar[str] = "a service's error log patterns over WINDOW (default 1h, max 7d)"
    default_window: ClassVar[timedelta] = timedelta(hours=1)
    service: str
    window: timedelta = timedelta(hours=1)

    def __post_init__(self) -> None:
        if not isinstance(self.service, str) or _ID_RE.fullmatch(self.service) is None:
            raise _BadArgs(f"SERVICE {_quote(self.service)} should be letters, digits and "
                           "_.:/- starting with a letter or digit")
        _check_window(self.window)

    def canonical(self) -> str:
        return f"logs {self.service} {_fmt_window(self.window)}"


@dataclass(frozen=True, slots=True)
class Cost(_Command):
    name: ClassVar[str] = "cost"
    usage: ClassVar[str] = "cost [WINDOW]"
    summary: ClassVar[str] = "LLM spend over WINDOW (default 24h, max 7d)"
    default_window: ClassVar[timedelta] = timedelta(hours=24)
    window: timedelta = timedelta(hours=24)

    def __post_init__(self) -> None:
        _check_window(self.window)

    def canonical(self) -> str:
        return f"cost {_fmt_window(self.window)}"


@dataclass(frozen=True, slots=True)
class Actions(_Command):
    name: ClassVar[str] = "actions"
    usage: ClassVar[str] = "actions"
    summary: ClassVar[str] = "the actions waiting for approval"


@dataclass(frozen=True, slots=True)
class Postmortem(_Command):
    name: ClassVar[str] = "postmortem"
    usage: ClassVar[str] = "postmortem N"
    summary: ClassVar[str] = "an incident's post-mortem"
    incident_id: int

    def __post_init__(self) -> None:
        _check_incident(self.incident_id)

    def canonical(self) -> str:
        return f"postmortem {self.incident_id}"


@dataclass(frozen=True, slots=True)
class Approve(_Command):
    name: ClassVar[str] = "approve"
    usage: ClassVar[str] = "approve ACTION_ID"
    summary: ClassVar[str] = "approve an action waiting for approval"
    min_role: ClassVar[str] = "approver"
    action_id: str

    def __post_init__(self) -> None:
        _check_action_id(self.action_id)

    def canonical(self) -> str:
        return f"approve {self.action_id}"


@dataclass(frozen=True, slots=True)
class Reject(_Command):
    name: ClassVar[str] = "reject"
    usage: ClassVar[str] = "reject ACTION_ID REASON..."
    summary: ClassVar[str] = "reject an action waiting for approval (the reason is required)"
    min_role: ClassVar[str] = "approver"
    action_id: str
    reason: str  # redacted by parse(): it is kept in the actions table and the audit trail

    def __post_init__(self) -> None:
        _check_action_id(self.action_id)
        if not isinstance(self.reason, str) or not self.reason.strip():
            raise _BadArgs("a REASON is required to reject")
        if len(self.reason) > MAX_REASON:
            raise _BadArgs(f"REASON is longer than {MAX_REASON} characters")
        if any(_bad_char(c) for c in self.reason) or len(self.reason.splitlines()) != 1:
            raise _BadArgs("REASON should be one line without control characters")

    def canonical(self) -> str:
        return f"reject {self.action_id} {_escape(self.reason)}"


@dataclass(frozen=True, slots=True)
class _Proposal(_Command):
    """A change for policy and approval to decide on: the asker becomes its requester."""

    min_role: ClassVar[str] = "approver"
    tool: ClassVar[str]

    @property
    def args(self) -> dict[str, Any]:
        """The tool's arguments, as its argument model names them."""
        raise NotImplementedError

    @property
    def complete(self) -> bool:
        """False when the caller must still fill in an argument (see RollbackPrompt)."""
        return True


@dataclass(frozen=True, slots=True)
class RollbackPrompt(_Proposal):
    """`to_commit` None means "the previous version": which commit that is needs the Git
    history, so the caller resolves it (gitops.list_prompt_versions) and adds `to_commit`
    before proposing; `args` then lacks the version and RollbackPromptArgs would refuse it."""

    name: ClassVar[str] = "rollback"
    usage: ClassVar[str] = "rollback prompt NAME [to COMMIT]"
    summary: ClassVar[str] = ("propose restoring a prompt as of its previous version "
                              "(or as of COMMIT); NAME is prompts/NAME.md")
    tool: ClassVar[str] = gitops_write.RollbackPrompt.spec.name
    path: str
    to_commit: str | None = None

    def __post_init__(self) -> None:
        labels = {"path": "NAME(prompt)", "to_commit": "COMMIT"}
        if self.to_commit is None:
            try:
                _PROMPT_PATH.validate_python(self.path)
            except ValidationError as exc:
                raise _BadArgs(f"NAME {_quote(self.path)} should be "
                               f"{_HINTS['NAME(prompt)']}") from exc
        else:
            _validate(RollbackPromptArgs, {"path": self.path, "to_commit": self.to_commit},
                      labels)

    @property
    def args(self) -> dict[str, Any]:
        if self.to_commit is None:
            return {"path": self.path}
        return {"path": self.path, "to_commit": self.to_commit}

    @property
    def complete(self) -> bool:
        return self.to_commit is not None

    def canonical(self) -> str:
        tail = "" if self.to_commit is None else f" to {self.to_commit}"
        return f"rollback prompt {self.path}{tail}"


@dataclass(frozen=True, slots=True)
class SetFlag(_Proposal):
    name: ClassVar[str] = "flag"
    usage: ClassVar[str] = "flag NAME on|off"
    summary: ClassVar[str] = "propose turning a feature flag on or off"
    tool: ClassVar[str] = gitops_write.SetFlag.spec.name
    flag: str
    enabled: bool

    def __post_init__(self) -> None:
        if not isinstance(self.enabled, bool):
            raise _BadArgs("the flag's state should be on or off")
        _validate(SetFlagArgs, self.args, {"flag": "NAME(flag)", "variant": "STATE"})

    @property
    def args(self) -> dict[str, Any]:
        # The flags file's boolean flags name their variants "on" and "off".
        return {"flag": self.flag, "variant": "on" if self.enabled else "off"}

    def canonical(self) -> str:
        return f"flag {self.flag} {'on' if self.enabled else 'off'}"


@dataclass(frozen=True, slots=True)
class SetAlias(_Proposal):
    name: ClassVar[str] = "alias"
    usage: ClassVar[str] = "alias NAME PROVIDER/MODEL"
    summary: ClassVar[str] = "propose pointing a model alias at another provider/model"
    tool: ClassVar[str] = gitops_write.SetModelAlias.spec.name
    alias: str
    target: str

    def __post_init__(self) -> None:
        _validate(SetModelAliasArgs, self.args, {"alias": "NAME(alias)", "target": "TARGET"})

    @property
    def args(self) -> dict[str, Any]:
        return {"alias": self.alias, "target": self.target}

    def canonical(self) -> str:
        return f"alias {self.alias} {self.target}"


@dataclass(frozen=True, slots=True)
class BlockUser(_Proposal):
    name: ClassVar[str] = "block"
    usage: ClassVar[str] = "block USER"
    summary: ClassVar[str] = "propose blocking one end user of the LLM app"
    tool: ClassVar[str] = gitops_write.BlockUser.spec.name
    user_id: str

    def __post_init__(self) -> None:
        _validate(BlockUserArgs, self.args, {"user_id": "USER"})

    @property
    def args(self) -> dict[str, Any]:
        return {"user_id": self.user_id}

    def canonical(self) -> str:
        return f"block {self.user_id}"


@dataclass(frozen=True, slots=True)
class Scale(_Proposal):
    name: ClassVar[str] = "scale"
    usage: ClassVar[str] = "scale NAMESPACE/DEPLOYMENT REPLICAS"
    summary: ClassVar[str] = "propose setting a deployment's replica count"
    tool: ClassVar[str] = kube_scale.ScaleDeployment.spec.name
    namespace: str
    deployment: str
    replicas: int

    def __post_init__(self) -> None:
        _validate(ScaleDeploymentArgs, self.args,
                  {"namespace": "NAMESPACE", "name": "DEPLOYMENT", "replicas": "REPLICAS"})

    @property
    def args(self) -> dict[str, Any]:
        return {"namespace": self.namespace, "name": self.deployment, "replicas": self.replicas}

    def canonical(self) -> str:
        return f"scale {self.namespace}/{self.deployment} {self.replicas}"


Proposal: TypeAlias = RollbackPrompt | SetFlag | SetAlias | BlockUser | Scale
Command: TypeAlias = (Help | Status | Incidents | ShowIncident | Logs | Cost | Actions
                      | Postmortem | Approve | Reject | Proposal)

# Help order: reads first, then decisions, then proposals.
COMMANDS: Final[tuple[type[_Command], ...]] = (
    Help, Status, Incidents, ShowIncident, Logs, Cost, Actions, Postmortem,
    Approve, Reject, RollbackPrompt, SetFlag, SetAlias, BlockUser, Scale,
)
_BY_NAME: Final[dict[str, type[_Command]]] = {c.name: c for c in COMMANDS}


@dataclass(frozen=True, slots=True)
class Unknown:
    """Not a command. `text` is the parsed line, redacted and shortened, safe to echo back;
    `suggestion` is the closest command's name (unknown verb) or the command's usage line
    (bad arguments)."""

    text: str
    reason: str
    suggestion: str | None = None


# --- parsing ---------------------------------------------------------------------------------


def _take(words: list[str], required: tuple[str, ...], optional: int = 0) -> None:
    if len(words) < len(required):
        raise _BadArgs(f"missing {required[len(words)]}")
    limit = len(required) + optional
    if len(words) > limit:
        raise _BadArgs(f"unexpected {_quote(' '.join(words[limit:]))}")


def _drop_to(words: list[str], at: int) -> list[str]:
    """Allow an optional "to" before the last argument ("scale a/b to 3")."""
    if len(words) > at + 1 and words[at].lower() == "to":
        return words[:at] + words[at + 1:]
    return words


def _incident(word: str) -> int:
    m = _INCIDENT_RE.fullmatch(word)
    if m is None:
        raise _BadArgs(f"N {_quote(word)} should be an incident number, e.g. 12")
    return int(m[1])


def _window(word: str) -> timedelta:
    m = _WINDOW_RE.fullmatch(word)
    if m is None:
        raise _BadArgs(f"WINDOW {_quote(word)} should be minutes, hours or days, "
                       "e.g. 15m, 1h, 24h or 7d")
    return int(m[1]) * _UNITS[m[2].lower()]


def _no_args(cls: type[Status | Incidents | Actions]) -> Callable[[list[str]], Command]:
    def build(words: list[str]) -> Command:
        _take(words, ())
        return cls()
    return build


def _help(words: list[str]) -> Command:
    _take(words, (), 1)
    return Help(words[0].lower() if words else None)


def _show_incident(words: list[str]) -> Command:
    _take(words, ("N",))
    return ShowIncident(_incident(words[0]))


def _postmortem(words: list[str]) -> Command:
    _take(words, ("N",))
    return Postmortem(_incident(words[0]))


def _logs(words: list[str]) -> Command:
    _take(words, ("SERVICE",), 1)
    if len(words) == 1 and _WINDOW_RE.fullmatch(words[0]):
        raise _BadArgs("missing SERVICE (the window comes after it)")
    return Logs(words[0], _window(words[1]) if len(words) > 1 else Logs.default_window)


def _cost(words: list[str]) -> Command:
    _take(words, (), 1)
    return Cost(_window(words[0]) if words else Cost.default_window)


def _approve(words: list[str]) -> Command:
    _take(words, ("ACTION_ID",))
    return Approve(words[0])


def _reject(words: list[str]) -> Command:
    if len(words) == 1:
        raise _BadArgs("missing REASON: a rejection always says why")
    _take(words, ("ACTION_ID", "REASON"), len(words))
    _check_action_id(words[0])
    # The reason is kept (actions table, audit trail): no secrets or personal data in it.
    return Reject(words[0], redact_text(" ".join(words[1:]))[0])


def _prompt_path(word: str) -> str:
    path = word if word.startswith("prompts/") else f"prompts/{word}"
    return path if path.endswith(".md") else f"{path}.md"


def _rollback(words: list[str]) -> Command:
    if not words or words[0].lower() != "prompt":
        raise _BadArgs("only prompts can be rolled back from chat")
    words = _drop_to(words[1:], 1)
    _take(words, ("NAME",), 1)
    return RollbackPrompt(_prompt_path(words[0]), words[1] if len(words) > 1 else None)


def _flag(words: list[str]) -> Command:
    _take(words, ("NAME", "on|off"))
    state = words[1].lower()
    if state not in ("on", "off"):
        raise _BadArgs(f"the flag's state {_quote(words[1])} should be on or off")
    return SetFlag(words[0], state == "on")


def _alias(words: list[str]) -> Command:
    words = _drop_to(words, 1)
    _take(words, ("NAME", "PROVIDER/MODEL"))
    return SetAlias(words[0], words[1])


def _block(words: list[str]) -> Command:
    _take(words, ("USER",))
    return BlockUser(words[0])


def _scale(words: list[str]) -> Command:
    words = _drop_to(words, 1)
    _take(words, ("NAMESPACE/DEPLOYMENT", "REPLICAS"))
    namespace, slash, deployment = words[0].partition("/")
    if not (namespace and slash and deployment):
        raise _BadArgs(f"{_quote(words[0])} should be NAMESPACE/DEPLOYMENT, "
                       "e.g. llm-serving/vllm-llama3-70b")
    if _REPLICAS_RE.fullmatch(words[1]) is None:
        raise _BadArgs(f"REPLICAS {_quote(words[1])} should be a whole number from 0 to 10000")
    return Scale(namespace, deployment, int(words[1]))


_BUILDERS: Final[dict[str, Callable[[list[str]], Command]]] = {
    "help": _help, "status": _no_args(Status), "incidents": _no_args(Incidents),
    "incident": _show_incident, "logs": _logs, "cost": _cost, "actions": _no_args(Actions),
    "postmortem": _postmortem, "approve": _approve, "reject": _reject, "rollback": _rollback,
    "flag": _flag, "alias": _alias, "block": _block, "scale": _scale,
}
assert _BUILDERS.keys() == _BY_NAME.keys()


def _excerpt(line: str) -> str:
    line = "".join("\ufffd" if _bad_char(c) else c for c in line)
    line = redact_text(line)[0]  # before shortening, so no half-secret escapes the patterns
    return line if len(line) <= _EXCERPT else line[:_EXCERPT] + "…"


def _unmark(line: str) -> str:
    """Slack markup out: mentions go (a space, so they cannot join two words), links become
    their label or target, the three escaped characters come back."""
    line = _LEADING_MENTIONS.sub("", line)
    line = _MENTION.sub(" ", line)
    line = _SPECIAL.sub(" ", line)
    line = _LINK.sub(lambda m: m[2] if m[2] is not None else m[1], line)
    return _ENTITY.sub(lambda m: _ENTITIES[m[1]], line)


def _unknown(line: str, reason: str, suggestion: str | None = None) -> Unknown:
    # The reason quotes the user's values back: redacted like the text.
    return Unknown(_excerpt(line), redact_text(reason)[0], suggestion)


def parse(text: str) -> Command | Unknown:
    """The command on the first line of `text`, or why there is none. Never raises.

    Only the first line counts, so text pasted or quoted under a command is never read as one;
    there is no quoting, escaping or expansion of any kind: words are split on whitespace."""
    if not isinstance(text, str):
        return Unknown("", "not text")
    if len(text) > MAX_TEXT:
        return _unknown(text[: 4 * _EXCERPT].split("\n", 1)[0],
                        f"the message is longer than {MAX_TEXT} characters")
    # NFKC folds full-width and other look-alike forms onto the ASCII the grammar knows.
    lines = unicodedata.normalize("NFKC", text).strip().splitlines()
    line = lines[0] if lines else ""
    if len(line) > MAX_TEXT:
        return _unknown(line, f"the message is longer than {MAX_TEXT} characters")
    if any(_bad_char(c) for c in line):
        return _unknown(line, "the message holds control or invisible formatting characters")
    line = _unmark(line).strip()
    words = line.split()
    if not words:
        return _unknown(line, "there is no command on the first line", "help")
    verb = words[0].lower()
    build = _BUILDERS.get(verb)
    if build is None:
        close = difflib.get_close_matches(verb[:40], _BUILDERS, n=1, cutoff=0.6)
        if close:
            return _unknown(line, f"unknown command {_quote(words[0])}; did you mean "
                                  f"`{usage(close[0])}`?", close[0])
        return _unknown(line, f"unknown command {_quote(words[0])}; say `help` for the list")
    try:
        return build(words[1:])
    except ValueError as exc:  # _BadArgs, or a command's own __post_init__ check
        return _unknown(line, f"{verb}: {exc}", usage(verb))


# --- help ------------------------------------------------------------------------------------


def usage(name: str) -> str:
    """The usage line of the command called `name` (KeyError if there is none)."""
    return _BY_NAME[name].usage


def allowed(role: str, command: str | Command) -> bool:
    """May a principal with `role` run `command` (a command or a command's name)?"""
    cls = _BY_NAME[command] if isinstance(command, str) else type(command)
    return Principal("chat", role).at_least(cls.min_role)


def help_text(role: str) -> str:
    """The commands `role` may run, one usage line each; nothing about the others."""
    mine = [c for c in COMMANDS if allowed(role, c.name)]
    if not mine:
        return f"No chat commands are available to the {role!r} role."
    lines = [f"Commands for the {role} role:"]
    lines += [f"• `{c.usage}` — {c.summary}" for c in mine]
    if any(issubclass(c, _Proposal) for c in mine):
        lines.append("Proposals (rollback, flag, alias, block, scale) name you as the "
                     "requester; they run only once policy allows them and they are approved.")
    lines.append("WINDOW is like 15m, 1h, 24h or 7d.")
    return "\n".join(lines)
