"""The chat dispatcher: one line of chat in, a reply with text for people and data for programs."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Final

from sqlalchemy import func, select

from agents.chat import grammar
from api.slack.blocks import action_target, escape
from api.state import AppState
from api.views import action_view, approvals_for, incident_detail, incident_view
from core.errors import Conflict, Forbidden, MetaopsError, NotFound, ValidationFailed
from core.models import Action, Incident
from guardrails import audit
from guardrails.actions import PENDING
from guardrails.executor import kill_switch_on
from guardrails.tokens import Principal

__all__ = ["ChatReply", "run_chat"]

_LIST_LIMIT: Final = 20  # incidents and actions listed in one reply; data says how many more
_TOP: Final = 5  # patterns, users and models named in a reply's text
_POSTMORTEM_LINES: Final = 12
_PREFIX: Final[tuple[tuple[type[MetaopsError], str], ...]] = (
    (Forbidden, "Refused"), (NotFound, "Not found"), (Conflict, "Not possible"),
    (ValidationFailed, "Invalid"))


@dataclass(frozen=True, slots=True)
class ChatReply:
    """`command` is the parsed command's canonical text (None when the line was not one);
    `text` is Slack mrkdwn whose interpolated values are already escaped."""

    command: str | None
    ok: bool
    text: str
    data: dict[str, Any] | None = None
    action_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"command": self.command, "ok": self.ok, "text": self.text, "data": self.data,
                "action_id": self.action_id}


# --- formatting ------------------------------------------------------------------------------


def _code(value: object) -> str:
    """Inline code; a backtick inside would end the span early, so it becomes a look-alike."""
    return f"`{escape(value).replace('`', 'ˋ')}`"


def _plural(n: int, word: str, many: str | None = None) -> str:
    return f"{n:,} {word if n == 1 else many or word + 's'}"


def _span(window: timedelta) -> str:
    minutes = int(window.total_seconds() // 60)
    for unit, size in (("d", 24 * 60), ("h", 60)):
        if minutes % size == 0:
            return f"{minutes // size}{unit}"
    return f"{minutes}m"


def _money(value: Any) -> str:
    return "n/a" if not isinstance(value, int | float) else f"${value:,.2f}"


def _pct(share: Any) -> str:
    return f"{float(share or 0) * 100:.0f} %"


def _bullets(lines: Iterable[str]) -> list[str]:
    return [f"• {line}" for line in lines]


def _role_needed(principal: Principal, name: str, role: str) -> str:
    return (f"{_code(name)} needs the {role} role or higher; you have the {escape(principal.role)} "
            f"role.\n\n{grammar.help_text(principal.role)}")


# --- reads -----------------------------------------------------------------------------------


def _help(principal: Principal, command: grammar.Help) -> ChatReply:
    if command.topic is None:
        return ChatReply(command.canonical(), True, grammar.help_text(principal.role))
    cls = next(c for c in grammar.COMMANDS if c.name == command.topic)
    if not grammar.allowed(principal.role, cls.name):
        return ChatReply(command.canonical(), False,
                         _role_needed(principal, cls.name, cls.min_role))
    return ChatReply(command.canonical(), True, f"`{cls.usage}` — {cls.summary}")


async def _status(state: AppState, command: grammar.Status) -> ChatReply:
    async with state.db.read() as session:
        incidents = int(await session.scalar(select(func.count()).select_from(Incident).where(
            Incident.status == "open")) or 0)
        pending = int(await session.scalar(select(func.count()).select_from(Action).where(
            Action.status == PENDING)) or 0)
        kill = await kill_switch_on(session)
    switch = ("*on*: nothing executes, approved actions wait" if kill
              else "off: approved actions execute")
    text = (f"*Status*: {_plural(incidents, 'open incident')}, "
            f"{_plural(pending, 'action')} waiting for approval; kill switch {switch}.")
    return ChatReply(command.canonical(), True, text, {
        "open_incidents": incidents, "pending_actions": pending, "kill_switch": kill})


async def _incidents(state: AppState, command: grammar.Incidents) -> ChatReply:
    async with state.db.read() as session:
        total = int(await session.scalar(select(func.count()).select_from(Incident).where(
            Incident.status == "open")) or 0)
        rows = list(await session.scalars(select(Incident).where(Incident.status == "open")
                                          .order_by(Incident.id.desc()).limit(_LIST_LIMIT)))
    if not rows:
        return ChatReply(command.canonical(), True, "No open incidents.",
                         {"incidents": [], "total": 0})
    lines = [f"*{_plural(total, 'open incident')}*", *_bullets(
        f"#{r.id} [{escape(r.severity)}] {escape(r.title)} — {escape(r.status)}, "
        f"investigation {escape(r.investigation)}" for r in rows)]
    if total > len(rows):
        lines.append(f"… and {total - len(rows):,} older")
    return ChatReply(command.canonical(), True, "\n".join(lines),
                     {"incidents": [incident_view(r) for r in rows], "total": total})


async def _show_incident(state: AppState, command: grammar.ShowIncident) -> ChatReply:
    async with state.db.read() as session:
        detail = await incident_detail(session, command.incident_id)
    services = ", ".join(escape(s) for s in detail["services"]) or "-"
    lines = [f"*Incident #{detail['id']}: {escape(detail['title'])}*",
             f"Severity {escape(detail['severity'])} · status {escape(detail['status'])} · "
             f"investigation {escape(detail['investigation'])} · services: {services}"]
    if detail["findings"]:
        lines.append("*Findings*")
        lines += _bullets(f"{escape(f['specialist'])}: {escape(f['summary'])}"
                          for f in detail["findings"])
    else:
        lines.append("No findings yet.")
    if detail["actions"]:
        lines.append("*Actions*")
        lines += _bullets(f"{_code(a['id'])} {escape(a['tool'])} — {escape(a['status'])}"
                          for a in detail["actions"])
    return ChatReply(command.canonical(), True, "\n".join(lines), detail)


async def _logs(state: AppState, command: grammar.Logs) -> ChatReply:
    data = await state.runtime.chat_logs(command.service, command.window)
    where = f"*Logs of {escape(command.service)}*, last {_span(command.window)}"
    patterns: list[dict[str, Any]] = data.get("patterns") or []
    if data.get("status") == "no_data" or not patterns:
        return ChatReply(command.canonical(), True,
                         f"{where}: no error or warning lines.", data)
    totals: dict[str, int] = data.get("totals") or {}
    distinct: dict[str, int] = data.get("distinct") or {}
    counts = [f"{_plural(totals.get(cls, 0), f'{cls} line')} in "
              f"{_plural(distinct.get(cls, 0), 'pattern')}"
              for cls in ("error", "warning") if totals.get(cls)]
    lines = [f"{where}: {'; '.join(counts)}."]
    lines += _bullets(f"{_pct(p.get('share'))} ({p.get('count', 0):,}) [{escape(p.get('level'))}] "
                      f"{escape(p.get('label'))}" for p in patterns[:_TOP])
    if len(patterns) > _TOP:
        lines.append(f"… and {len(patterns) - _TOP:,} more patterns in the data")
    return ChatReply(command.canonical(), True, "\n".join(lines), data)


def _ranked(rows: list[dict[str, Any]], key: str) -> str:
    return ", ".join(f"{escape(r.get(key))} {_money(r.get('cost_usd'))} "
                     f"({_plural(int(r.get('requests') or 0), 'request')})" for r in rows[:_TOP])


async def _cost(state: AppState, command: grammar.Cost) -> ChatReply:
    data = await state.runtime.chat_cost(command.window)
    where = f"*LLM spend*, last {_span(command.window)}"
    totals: dict[str, Any] = data.get("totals") or {}
    if data.get("status") == "no_data" or not totals.get("requests"):
        return ChatReply(command.canonical(), True, f"{where}: no LLM requests.", data)
    budget = data.get("budget_usd_per_hour")
    rate = f"burn rate {_money(data.get('burn_rate_usd_per_hour'))}/h"
    if budget is not None:
        rate += f", budget {_money(budget)}/h"
    lines = [f"{where}: {_money(totals.get('cost_usd'))} over "
             f"{_plural(int(totals['requests']), 'request')} ({rate})."]
    if data.get("top_users"):
        lines.append(f"Top users: {_ranked(data['top_users'], 'user_id')}")
    if data.get("top_models"):
        lines.append(f"Top models: {_ranked(data['top_models'], 'model')}")
    for user in data.get("runaway_users") or []:
        lines.append(f"Runaway: {escape(user.get('user_id'))} "
                     f"({escape('; '.join(user.get('reasons') or []))})")
    return ChatReply(command.canonical(), True, "\n".join(lines), data)


async def _actions(state: AppState, command: grammar.Actions) -> ChatReply:
    async with state.db.read() as session:
        total = int(await session.scalar(select(func.count()).select_from(Action).where(
            Action.status == PENDING)) or 0)
        rows = list(await session.scalars(select(Action).where(Action.status == PENDING)
                                          .order_by(Action.created_at).limit(_LIST_LIMIT)))
        approvals = await approvals_for(session, [r.id for r in rows])
    views = [action_view(r, approvals[r.id]) for r in rows]
    if not views:
        return ChatReply(command.canonical(), True, "No actions are waiting for approval.",
                         {"actions": [], "total": 0})
    lines = [f"*{_plural(total, 'action')} waiting for approval*"]
    for a in views:
        approved = sum(1 for v in a["approvals"] if v["decision"] == "approve")
        lines.append(f"• {_code(a['id'])} {escape(a['tool'])} on {escape(action_target(a['args']))}"
                     f": {escape(a['preview'].get('summary'))} — {approved} of "
                     f"{a['required_approvals']} approvals ({escape(a['approver_role'])}+), "
                     f"asked by {escape(a['requested_by'])}, expires {escape(a['expires_at'])}")
    if total > len(views):
        lines.append(f"… and {total - len(views):,} more")
    return ChatReply(command.canonical(), True, "\n".join(lines),
                     {"actions": views, "total": total})


async def _postmortem(state: AppState, command: grammar.Postmortem) -> ChatReply:
    found = await state.runtime.postmortem(command.incident_id)
    if found is None:
        return ChatReply(command.canonical(), False,
                         f"Incident #{command.incident_id} has no post-mortem yet (it is drafted "
                         "when the incident resolves).")
    lines = [line for line in found["markdown"].splitlines() if line.strip()]
    head = [f"*Post-mortem of incident #{command.incident_id}*, revision {found['revision']} "
            f"by {escape(found['author'])}"]
    head += [escape(line) for line in lines[:_POSTMORTEM_LINES]]
    if len(lines) > _POSTMORTEM_LINES:
        head.append(f"… {len(lines) - _POSTMORTEM_LINES:,} more lines")
    return ChatReply(command.canonical(), True, "\n".join(head), found)


# --- decisions and proposals -----------------------------------------------------------------


async def _runs(state: AppState) -> str:
    """What happens next to an approved action: it runs, unless the kill switch holds it."""
    async with state.db.read() as session:
        if await kill_switch_on(session):
            return "the kill switch is on, so it waits until the switch is off"
    return "it executes now"


async def _decide(state: AppState, principal: Principal, command: grammar.Approve | grammar.Reject,
                  via: audit.Via) -> ChatReply:
    if isinstance(command, grammar.Reject):
        result = await state.runtime.decide(command.action_id, principal, "reject", via,
                                            command.reason)
    else:
        result = await state.runtime.decide(command.action_id, principal, "approve", via)
    data = {"id": command.action_id, "status": result.status, "approvals": result.approvals,
            "required": result.needed}
    which = _code(command.action_id)
    tally = f"{result.approvals} of {result.needed}"
    if isinstance(command, grammar.Reject):
        text = f"Rejected {which}: {escape(command.reason)}"
    elif result.already:
        text = f"You had already approved {which}; it is {escape(result.status)} ({tally})."
    elif result.status == "approved":
        text = f"Approved {which} ({tally}); {await _runs(state)}."
    else:
        text = (f"Approval recorded for {which} ({tally}); waiting for "
                f"{_plural(result.needed - result.approvals, 'more approval')}.")
    return ChatReply(command.canonical(), True, text, data, command.action_id)


async def _propose(state: AppState, principal: Principal, command: grammar.Proposal,
                   via: audit.Via, incident_id: int | None) -> ChatReply:
    action_id = await state.runtime.chat_propose(command, principal, via, incident_id)
    async with state.db.read() as session:
        action = await session.get(Action, action_id)
        if action is None:  # written by chat_propose a moment ago
            raise NotFound(f"no action {action_id}", {"field": "action_id"})
        view = action_view(action, (await approvals_for(session, [action_id]))[action_id])
    what = f"{escape(action.tool)} on {escape(action_target(action.args))}"
    policy = action.decision
    if action.status == "rejected":
        return ChatReply(command.canonical(), False,
                         f"Policy denied {what}: {escape(policy.get('reason'))} "
                         f"(action {_code(action_id)} is rejected).", view, action_id)
    text = (f"Proposed {what}: {escape(action.preview.get('summary'))}; action "
            f"{_code(action_id)} is {escape(action.status)} (policy: "
            f"{escape(policy.get('reason'))}).")
    if action.status == "approved":
        text += f" Policy allows it without approval: {await _runs(state)}."
    elif action.separation_of_duties:
        text += " You asked for it, so someone else must approve it."
    return ChatReply(command.canonical(), True, text, view, action_id)


# --- dispatch --------------------------------------------------------------------------------


async def _dispatch(state: AppState, principal: Principal, command: grammar.Command,
                    via: audit.Via, incident_id: int | None) -> ChatReply:
    match command:
        case grammar.Help():
            return _help(principal, command)
        case grammar.Status():
            return await _status(state, command)
        case grammar.Incidents():
            return await _incidents(state, command)
        case grammar.ShowIncident():
            return await _show_incident(state, command)
        case grammar.Logs():
            return await _logs(state, command)
        case grammar.Cost():
            return await _cost(state, command)
        case grammar.Actions():
            return await _actions(state, command)
        case grammar.Postmortem():
            return await _postmortem(state, command)
        case grammar.Approve() | grammar.Reject():
            return await _decide(state, principal, command, via)
        case _:
            return await _propose(state, principal, command, via, incident_id)


async def run_chat(state: AppState, principal: Principal, text: str, *, via: audit.Via,
                   incident_id: int | None = None,
                   conversation: str | None = None) -> ChatReply:
    """Parse `text` and run it as `principal`: unknown input gets the help, a command above the
    principal's role is refused, and a typed error (core.errors) becomes a reply with ok False.
    `incident_id` is the incident a proposal belongs to (a Slack thread's, say), if any."""
    command = grammar.parse(text)
    if isinstance(command, grammar.Unknown):
        # LLM mode: a question the grammar does not know goes to the model (READ tools only;
        # a change it suggests is a proposal like any other). Without an answer: the help.
        answer = await state.runtime.chat_freeform(
            text, principal, via, incident_id=incident_id,
            conversation=conversation or f"{via}:{principal.name}")
        if answer is not None:
            return ChatReply(None, True, escape(answer.text),
                             {"tools": answer.tools_used, "action_ids": answer.action_ids,
                              "flagged": answer.flagged},
                             answer.action_ids[0] if answer.action_ids else None)
        return ChatReply(None, False,
                         f"{escape(command.reason)}\n\n{grammar.help_text(principal.role)}")
    canonical = command.canonical()
    if not grammar.allowed(principal.role, command):
        return ChatReply(canonical, False,
                         _role_needed(principal, command.name, type(command).min_role))
    try:
        return await _dispatch(state, principal, command, via, incident_id)
    except MetaopsError as exc:
        prefix = next((p for cls, p in _PREFIX if isinstance(exc, cls)), "Failed")
        return ChatReply(canonical, False, f"{prefix}: {escape(exc.message)}",
                         {"error": {"code": exc.code, "message": exc.message}})
