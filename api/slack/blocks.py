"""Block Kit messages (chat.postMessage / chat.update payloads) built from the API's views."""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, Final
from urllib.parse import urlsplit

from core.timeutil import as_utc, parse_ts

Block = dict[str, Any]

# Slack's Block Kit limits (the same numbers slack_sdk's validators use). One value over a
# limit and Slack answers invalid_blocks: the whole card is lost, so every text is cut to fit.
MAX_BLOCKS: Final = 50
SECTION_TEXT: Final = 3000
FIELD_TEXT: Final = 2000
MAX_FIELDS: Final = 10
CONTEXT_TEXT: Final = 3000
MAX_CONTEXT_ELEMENTS: Final = 10
HEADER_TEXT: Final = 150
BUTTON_TEXT: Final = 75
BUTTON_VALUE: Final = 2000
CONFIRM_TITLE: Final = 100
CONFIRM_TEXT: Final = 300
CONFIRM_BUTTON: Final = 30
ID_LENGTH: Final = 255
# Slack cuts a message's top-level text at 40,000 characters but advises at most 4,000; it is
# the notification and screen-reader text, so shorter is better anyway.
FALLBACK_TEXT: Final = 4000

APPROVE_ACTION: Final = "metaops_approve"
REJECT_ACTION: Final = "metaops_reject"
PENDING: Final = "pending_approval"

ELLIPSIS: Final = "…"
_ZWSP: Final = "\u200b"
# Bare @here/@channel/@everyone are linkified when a message is posted with link_names or
# parsed in full: a zero-width space after the @ keeps the word readable but inert.
_BROADCAST = re.compile(r"@(?=(?:here|channel|everyone)\b)", re.IGNORECASE)
# C0 controls (tab and newline kept) and the bidi overrides that can make an alert title
# display as something other than what it says.
_INVISIBLE = re.compile("[\x00-\x08\x0b-\x1f\x7f\u202a-\u202e\u2066-\u2069]")
_CITATION = re.compile(r"[ \t]*\[ev:\d+\]")
_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)

_SEVERITY: Final[dict[str, tuple[str, str]]] = {
    # severity -> (header emoji, colour dot): Block Kit has no colour bar outside legacy
    # attachments, so the colour is carried by an emoji.
    "critical": (":rotating_light:", ":red_circle:"),
    "page": (":rotating_light:", ":red_circle:"),
    "error": (":exclamation:", ":large_orange_circle:"),
    "warning": (":warning:", ":large_yellow_circle:"),
    "info": (":information_source:", ":large_blue_circle:"),
}
_UNKNOWN_SEVERITY: Final = (":grey_question:", ":white_circle:")

_OUTCOME: Final[dict[str, tuple[str, str]]] = {
    "proposed": (":hourglass_flowing_sand:", "Proposed"),
    PENDING: (":hourglass_flowing_sand:", "Waiting for approval"),
    "approved": (":white_check_mark:", "Approved"),
    "executing": (":gear:", "Executing"),
    "succeeded": (":white_check_mark:", "Succeeded"),
    "failed": (":boom:", "Failed"),
    "stale": (":warning:", "Not executed (stale)"),
    "rejected": (":x:", "Rejected"),
    "expired": (":hourglass:", "Expired"),
    "cancelled": (":no_entry_sign:", "Cancelled"),
}

# Argument keys that name what a write tool touches, in the order they are tried.
_TARGET_KEYS: Final = (("path", ""), ("flag", "flag "), ("alias", "alias "),
                       ("user_id", "user "), ("prefix", "keys "), ("name", ""))


# --- text safety -------------------------------------------------------------------------


def escape(value: object) -> str:
    """Untrusted text made inert for Slack: &, <, > as entities (no <!channel>, <@U..>,
    <url|label>), broadcast words defused, invisible control characters dropped."""
    text = "" if value is None else str(value)
    text = _INVISIBLE.sub("", text)
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _BROADCAST.sub("@" + _ZWSP, text)


def _units(text: str) -> int:
    # Slack counts UTF-16 code units (its clients are JavaScript): an emoji outside the BMP
    # counts twice, so measuring code points could still overflow a limit.
    return len(text.encode("utf-16-le")) // 2


def truncate(text: str, limit: int) -> str:
    """`text` (already escaped) cut to `limit` UTF-16 units with an ellipsis, never inside an
    entity such as &amp; (half an entity would show as raw text)."""
    if _units(text) <= limit:
        return text
    budget, used = limit - _units(ELLIPSIS), 0
    out: list[str] = []
    for ch in text:
        width = 2 if ord(ch) > 0xFFFF else 1
        if used + width > budget:
            break
        out.append(ch)
        used += width
    cut = "".join(out)
    amp = cut.rfind("&")
    if amp != -1 and ";" not in cut[amp:]:
        cut = cut[:amp]
    return cut + ELLIPSIS


def _code(value: object, limit: int = 300) -> str:
    """Inline code; a backtick inside would end the span early, so it becomes a look-alike."""
    text = escape(value).replace("\n", " ").replace("`", "ˋ").strip()
    return f"`{truncate(text, limit)}`" if text else "-"


def _code_block(value: object, limit: int) -> str:
    """A fenced block of at most `limit` units; a ``` inside would close the fence early."""
    body = escape(value).replace("```", "``" + _ZWSP + "`").strip("\n")
    fence = "```"
    return f"{fence}\n{truncate(body, limit - 2 * len(fence) - 2)}\n{fence}"


def _compact(value: Any) -> str:
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False, separators=(", ", ": "), default=str)
    except (TypeError, ValueError):  # circular or otherwise unserializable
        return str(value)


def _safe_url(url: str | None) -> str | None:
    """An http(s) URL fit for <url|label>, or None: | or > inside would end the link early
    and let the rest be read as markup."""
    if not url or len(url) > 2000 or any(c in url for c in "<>| \t\r\n\"'") \
            or _INVISIBLE.search(url):
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    return url.replace("&", "&amp;")


# --- numbers and times -------------------------------------------------------------------


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def _money(value: Any) -> str:
    number = _number(value)
    return "-" if number is None else f"${number:,.2f}"


def _count(value: Any) -> str:
    number = _number(value)
    return "-" if number is None else f"{int(number):,}"


def _percent(share: Any) -> str:
    number = _number(share)
    return "-" if number is None else f"{number * 100:.1f} %"


def _moment(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return as_utc(value)
    if isinstance(value, str):
        try:
            return parse_ts(value)
        except ValueError:
            return None
    return None


def _utc(value: Any) -> str:
    """A timestamp as '2026-11-27 10:02 UTC' (escaped raw text when it does not parse)."""
    moment = _moment(value)
    if moment is None:
        return escape(value) if value else "-"
    return f"{moment:%Y-%m-%d %H:%M} UTC"


def _span(seconds: float) -> str:
    minutes = int(abs(seconds)) // 60
    if minutes < 1:
        return "under a minute"
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def _relative(moment: datetime, now: datetime) -> str:
    seconds = (moment - as_utc(now)).total_seconds()
    return f"in {_span(seconds)}" if seconds > 0 else f"{_span(seconds)} ago"


# --- blocks ------------------------------------------------------------------------------


def _plain(safe: str, limit: int) -> dict[str, Any]:
    # Slack requires at least one character in every text object.
    return {"type": "plain_text", "text": truncate(safe.strip(), limit) or "-", "emoji": True}


def _mrkdwn(safe: str, limit: int) -> dict[str, Any]:
    # verbatim: no automatic linking of URLs, #channels or names in text we did not write;
    # explicit <url|label> links (only ever ours) still work.
    return {"type": "mrkdwn", "text": truncate(safe.strip(), limit) or "-", "verbatim": True}


def _block_id(*parts: object) -> str:
    """A stable id; one longer than Slack's 255 keeps its head and gains a digest of it all."""
    text = ":".join(str(p) for p in parts)
    if len(text) <= ID_LENGTH:
        return text
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    return f"{text[:ID_LENGTH - len(digest) - 1]}~{digest}"


def _header(safe: str, block_id: str | None = None) -> Block:
    block: Block = {"type": "header", "text": _plain(safe, HEADER_TEXT)}
    if block_id:
        block["block_id"] = block_id
    return block


def _section(text: str | None = None, fields: Iterable[tuple[str, str]] = (),
             block_id: str | None = None) -> Block:
    """A section of mrkdwn `text` and up to ten (label, value) fields, all already safe."""
    block: Block = {"type": "section"}
    if block_id:
        block["block_id"] = block_id
    if text is not None:
        block["text"] = _mrkdwn(text, SECTION_TEXT)
    cells = [_mrkdwn(f"*{label}*\n{value}", FIELD_TEXT) for label, value in fields]
    if cells:
        block["fields"] = cells[:MAX_FIELDS]
    if "text" not in block and "fields" not in block:
        block["text"] = _mrkdwn("-", SECTION_TEXT)
    return block


def _context(parts: Iterable[str], block_id: str | None = None) -> Block:
    block: Block = {"type": "context", "elements": [
        _mrkdwn(p, CONTEXT_TEXT) for p in list(parts)[:MAX_CONTEXT_ELEMENTS]]}
    if not block["elements"]:
        block["elements"] = [_mrkdwn("-", CONTEXT_TEXT)]
    if block_id:
        block["block_id"] = block_id
    return block


def fit_blocks(blocks: list[Block]) -> list[Block]:
    """At most 50 blocks (Slack refuses more): the tail becomes one context line saying so."""
    if len(blocks) <= MAX_BLOCKS:
        return blocks
    dropped = len(blocks) - (MAX_BLOCKS - 1)
    return [*blocks[:MAX_BLOCKS - 1],
            _context([f"{ELLIPSIS} {dropped} more block{'s' if dropped != 1 else ''} not shown"])]


def _message(safe_text: str, blocks: list[Block]) -> dict[str, Any]:
    return {"text": truncate(safe_text.strip(), FALLBACK_TEXT) or "-",
            "blocks": fit_blocks(blocks)}


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _names(values: Any, limit: int = 20) -> str:
    """A list of names, escaped and joined; a long list ends with how many more there are."""
    items = [escape(v) for v in _list(values) if v not in (None, "")]
    shown = ", ".join(items[:limit])
    return f"{shown} and {len(items) - limit} more" if len(items) > limit else shown


# --- incidents and findings --------------------------------------------------------------


def incident_message(incident: Mapping[str, Any]) -> dict[str, Any]:
    """An incident card: title, severity (emoji and colour), services, status, investigation,
    id, and when it opened."""
    incident_id = incident.get("id")
    title = incident.get("title") or f"incident {incident_id}"
    severity = str(incident.get("severity") or "unknown")
    status = str(incident.get("status") or "unknown")
    icon, dot = _SEVERITY.get(severity.lower(), _UNKNOWN_SEVERITY)
    if status == "resolved":
        icon = ":white_check_mark:"
    investigation = str(incident.get("investigation") or "-").replace("_", " ")
    fields = [("Severity", f"{dot} {escape(severity)}"),
              ("Services", _names(incident.get("services")) or "-"),
              ("Status", escape(status)),
              ("Investigation", escape(investigation)),
              ("Incident", f"#{escape(incident_id)}")]
    if incident.get("source"):
        fields.append(("Source", escape(incident["source"])))
    when = [f"Opened {_utc(incident.get('created_at'))}"]
    if incident.get("resolved_at"):
        when.append(f"resolved {_utc(incident['resolved_at'])}")
    count = _number(incident.get("alert_count"))
    if count is not None:
        when.append(f"{int(count):,} alert{'s' if count != 1 else ''}")
    blocks = [_header(f"{icon} {escape(title)}", _block_id("incident", incident_id, "header")),
              _section(fields=fields, block_id=_block_id("incident", incident_id, "fields")),
              _context([" · ".join(when)], _block_id("incident", incident_id, "opened"))]
    text = f"[{escape(severity)}] {escape(title)} (incident #{escape(incident_id)}, " \
           f"{escape(status)})"
    return _message(text, blocks)


def _pattern_block(pattern: dict[str, Any]) -> Block:
    services = _names(pattern.get("services"), 5)
    lines = [f"*{_percent(pattern.get('share'))}* · {_count(pattern.get('count'))} lines · "
             f"{escape(pattern.get('level') or '?')}",
             _code(pattern.get("template") or "", 800)]
    seen = f"seen {_utc(pattern.get('first_seen'))} to {_utc(pattern.get('last_seen'))}"
    lines.append(seen + (f" in {services}" if services else ""))
    if pattern.get("exemplar"):
        lines.append(f"e.g. {_code(pattern['exemplar'], 400)}")
    return _section("\n".join(lines))


def _cost_blocks(data: dict[str, Any]) -> list[Block]:
    fields = [("Burn rate", f"{_money(data.get('burn_rate_usd_per_hour'))}/h"),
              ("Baseline", f"{_money(data.get('baseline_burn_rate_usd_per_hour'))}/h"),
              ("Budget", f"{_money(data.get('budget_usd_per_hour'))}/h")]
    ratio = _number(data.get("burn_rate_ratio"))
    if ratio is not None:
        fields.append(("Versus baseline", f"{ratio:.1f}x"))
    if data.get("cost_per_query_p50") is not None:
        fields.append(("Cost per query", f"p50 {_money(data.get('cost_per_query_p50'))}, "
                                         f"p99 {_money(data.get('cost_per_query_p99'))}"))
    blocks = [_section(fields=fields)]
    users = [u for u in _list(data.get("top_users")) if isinstance(u, dict)]
    if users:
        lines = [f"• {_code(u.get('user_id'), 100)} {_money(u.get('cost_usd'))} · "
                 f"{_count(u.get('tokens'))} tokens · {_count(u.get('requests'))} requests"
                 for u in users[:5]]
        blocks.append(_section("*Top users*\n" + "\n".join(lines)))
    runaway = [u for u in _list(data.get("runaway_users")) if isinstance(u, dict)]
    if runaway:
        lines = [f":warning: {_code(u.get('user_id'), 100)}: "
                 f"{escape('; '.join(str(r) for r in _list(u.get('reasons'))) or 'runaway')}"
                 for u in runaway[:10]]
        blocks.append(_section("*Runaway users*\n" + "\n".join(lines)))
    return blocks


def finding_message(finding: Mapping[str, Any]) -> dict[str, Any]:
    """A specialist's finding: who, the summary, then the top log patterns (template, share,
    count) or the cost figures (burn rate, top users, runaway users)."""
    specialist = finding.get("specialist") or "specialist"
    kind = finding.get("kind")
    summary = finding.get("summary") or "no summary"
    data = _dict(finding.get("data"))
    label = f"*{escape(specialist)}*" + (f" ({escape(str(kind).replace('_', ' '))})"
                                         if kind else "")
    blocks = [_section(f":mag: {label}\n{escape(summary)}")]
    if data.get("narrative"):  # LLM mode: prose held to the finding's own figures
        blocks.append(_section(f":speech_balloon: {escape(data['narrative'])}"))
    if kind == "log_patterns":
        patterns = [p for p in _list(data.get("patterns")) if isinstance(p, dict)]
        if patterns:
            blocks.append(_section(f"*Top {min(len(patterns), 10)} of {len(patterns)} "
                                   f"pattern{'s' if len(patterns) != 1 else ''}*"))
            blocks.extend(_pattern_block(p) for p in patterns[:10])
    elif kind == "cost_report":
        blocks.extend(_cost_blocks(data))
    notes = []
    if data.get("status") == "error" and data.get("error"):
        notes.append(f":x: {escape(data['error'])}")
    elif data.get("status") == "no_data" and data.get("reason"):
        notes.append(f"No data: {escape(data['reason'])}")
    if data.get("injection"):
        notes.append(":shield: Suspected prompt injection in this data: shown as text, "
                     "never followed.")
    if notes:
        blocks.append(_context(notes))
    return _message(f"{escape(specialist)}: {escape(summary)}", blocks)


# --- actions -----------------------------------------------------------------------------


def action_target(args: Mapping[str, Any]) -> str:
    """What a write touches, from its arguments (raw text: escape before display)."""
    namespace, name = args.get("namespace"), args.get("name")
    if namespace and name:
        return f"{namespace}/{name}"
    if namespace and args.get("label_selector"):
        return f"{namespace}, jobs {args['label_selector']}"
    for key, prefix in _TARGET_KEYS:
        value = args.get(key)
        if value not in (None, ""):
            return f"{prefix}{value}"
    scalars = [f"{k}={v}" for k, v in args.items() if isinstance(v, str | int | float | bool)]
    return ", ".join(scalars) or "-"


def _policy(action: Mapping[str, Any]) -> dict[str, Any]:
    # action_view() names the stored policy decision "policy"; accept "decision" as well.
    return _dict(action.get("policy")) or _dict(action.get("decision"))


def _votes(action: Mapping[str, Any], decision: str) -> list[dict[str, Any]]:
    return [a for a in _list(action.get("approvals"))
            if isinstance(a, dict) and a.get("decision") == decision]


def _required(action: Mapping[str, Any]) -> int:
    number = _number(action.get("required_approvals"))
    return 1 if number is None else int(number)


def _who(vote: dict[str, Any]) -> str:
    return (f"*{escape(vote.get('by') or '?')}* via {escape(vote.get('via') or '?')} "
            f"at {_utc(vote.get('at'))}")


def _approved_by(action: Mapping[str, Any]) -> str:
    approvers = _votes(action, "approve")
    if approvers:
        return "approved by " + "; ".join(_who(v) for v in approvers)
    policy = _policy(action)
    if policy.get("outcome") == "allow":
        return f"approved by policy rule {_code(policy.get('rule') or '?', 100)}"
    return "no approval recorded"


def _outcome(action: Mapping[str, Any]) -> tuple[str, str, str]:
    """(emoji, label, safe sentence) for the action's current status."""
    status = str(action.get("status") or "unknown")
    emoji, label = _OUTCOME.get(status, (":grey_question:", escape(status)))
    error = escape(action.get("error") or "") or "no error recorded"
    votes = f"{len(_votes(action, 'approve'))} of {_required(action)}"
    if status in (PENDING, "proposed"):
        text = f"*{label}*: {votes} approvals so far"
    elif status == "approved":
        text = f"*Approved*: {_approved_by(action)}. Waiting to execute."
    elif status == "executing":
        text = f"*Executing*: {_approved_by(action)}."
    elif status == "succeeded":
        text = f"*Succeeded* at {_utc(action.get('executed_at'))}; {_approved_by(action)}."
    elif status == "failed":
        approved = _approved_by(action)
        text = f"*Failed*: {error}\n{approved[:1].upper()}{approved[1:]}."
    elif status == "stale":
        text = ("*Not executed: stale*, the target changed after the preview that was "
                f"approved: {error}")
    elif status == "rejected":
        rejections = _votes(action, "reject")
        if rejections:
            vote = rejections[0]
            reason = escape(vote.get("reason") or "") or "no reason given"
            text = f"*Rejected* by {_who(vote)}: {reason}"
        else:
            policy = _policy(action)
            label = "Denied by policy"
            text = (f"*Denied by policy* rule {_code(policy.get('rule') or '?', 100)}: "
                    f"{escape(action.get('error') or policy.get('reason') or '')}")
    elif status == "expired":
        text = (f"*Expired* at {_utc(action.get('expires_at'))} with {votes} approvals: "
                "nothing was executed.")
    elif status == "cancelled":
        text = f"*Cancelled*: {error}"
    else:
        text = f"*{escape(status)}*"
    return emoji, label, text


def _change(preview: dict[str, Any]) -> str:
    """The preview's words, then current -> proposed when the tool gave them."""
    lines = [escape(preview.get("summary") or "")]
    current, proposed = preview.get("current"), preview.get("proposed")
    if current is not None or proposed is not None:
        lines.append(f"*Change:* {_code(_compact(current), 700)} → "
                     f"{_code(_compact(proposed), 700)}")
    return "\n".join(line for line in lines if line) or "No preview."


def _card(action: Mapping[str, Any], emoji: str, label: str) -> list[Block]:
    """The blocks an approval card keeps after the decision: what, where, change, policy."""
    action_id = action.get("id") or "?"
    tool = action.get("tool") or "?"
    args = _dict(action.get("args"))
    target = action_target(args)
    preview = _dict(action.get("preview"))
    policy = _policy(action)
    effect = str(action.get("effect") or "?")
    role = action.get("approver_role") or policy.get("approver_role") or "approver"
    votes = f"*{len(_votes(action, 'approve'))} of {_required(action)}*"
    fields = [("Tool", _code(tool, 200)), ("Target", escape(target) or "-"),
              ("Effect", f":warning: *{escape(effect)}*" if effect == "destructive"
               else escape(effect)),
              ("Incident", f"#{escape(action['incident_id'])}"
               if action.get("incident_id") is not None else "-"),
              ("Requested by", escape(action.get("requested_by") or "-")),
              ("Approvals", f"{votes} (role {escape(role)})")]
    blocks = [
        _header(f"{emoji} {label}: {escape(tool)} on {escape(target)}",
                _block_id("approval", action_id, "header")),
        _section(_change(preview), fields, _block_id("approval", action_id, "summary")),
    ]
    if preview.get("diff"):
        head = "*Diff*\n"
        blocks.append(_section(head + _code_block(preview["diff"], SECTION_TEXT - len(head)),
                               block_id=_block_id("approval", action_id, "diff")))
    approvers = _votes(action, "approve")
    policy_lines = [f"*Policy:* rule {_code(policy.get('rule') or '?', 200)}: "
                    f"{escape(policy.get('reason') or 'no reason recorded')}"]
    if approvers:
        policy_lines.append("*Approved so far:* " + "; ".join(_who(v) for v in approvers))
    blocks.append(_section("\n".join(policy_lines),
                           block_id=_block_id("approval", action_id, "policy")))
    blocks.append(_context([f"Arguments {_code(_compact(args), 1500)}"],
                           _block_id("approval", action_id, "args")))
    return blocks


def approval_card(action: Mapping[str, Any], *, now: datetime) -> dict[str, Any]:
    """A pending action with Approve and Reject buttons (value = action id; a destructive
    action asks for confirmation on both). An action no longer pending gets decided_card():
    buttons on it could only fail."""
    status = action.get("status")
    if status != PENDING:
        return decided_card(action, now=now)
    action_id = str(action.get("id") or "")
    if not action_id or len(action_id) > BUTTON_VALUE:
        # The value is how a click names its action: a cut or missing id would name another.
        raise ValueError(f"action id must be 1..{BUTTON_VALUE} characters")
    destructive = action.get("effect") == "destructive"
    emoji = ":warning:" if destructive else ":raised_hand:"
    label = "Destructive change needs approval" if destructive else "Approval needed"
    blocks = _card(action, emoji, label)
    expires = _moment(action.get("expires_at"))
    if expires is None:
        expiry = "No expiry"
    elif expires > as_utc(now):
        expiry = f":hourglass: Expires {_relative(expires, now)} ({_utc(expires)})"
    else:
        expiry = f":hourglass: Expired {_relative(expires, now)} ({_utc(expires)})"
    blocks.append(_context([f"{expiry} · action {_code(action_id, 220)}"],
                           _block_id("approval", action_id, "footer")))
    approve: Block = {"type": "button", "action_id": APPROVE_ACTION,
                      "text": _plain("Approve", BUTTON_TEXT), "style": "primary",
                      "value": action_id}
    reject: Block = {"type": "button", "action_id": REJECT_ACTION,
                     "text": _plain("Reject", BUTTON_TEXT), "style": "danger",
                     "value": action_id}
    if destructive:
        what = (f"{escape(action.get('tool') or '?')} on "
                f"{escape(action_target(_dict(action.get('args'))))}: "
                f"{escape(_dict(action.get('preview')).get('summary') or 'no preview')}")
        approve["confirm"] = {
            "title": _plain("Approve a destructive change?", CONFIRM_TITLE),
            "text": _plain(what, CONFIRM_TEXT),
            "confirm": _plain("Approve", CONFIRM_BUTTON),
            "deny": _plain("Cancel", CONFIRM_BUTTON), "style": "danger"}
        # Any rejection is final for the action, so a stray click costs as much as approving.
        reject["confirm"] = {
            "title": _plain("Reject this change?", CONFIRM_TITLE),
            "text": _plain(f"The rejection is final. {what}", CONFIRM_TEXT),
            "confirm": _plain("Reject", CONFIRM_BUTTON),
            "deny": _plain("Cancel", CONFIRM_BUTTON)}
    blocks.append({"type": "actions", "block_id": _block_id("approval", action_id),
                   "elements": [approve, reject]})
    tool, target = escape(action.get("tool") or "?"), escape(action_target(
        _dict(action.get("args"))))
    return _message(f"{label}: {tool} on {target} "
                    f"({len(_votes(action, 'approve'))} of {_required(action)} approvals)",
                    blocks)


def decided_card(action: Mapping[str, Any], *, now: datetime) -> dict[str, Any]:
    """The approval card once decided or executed: no buttons, one outcome line."""
    action_id = action.get("id") or "?"
    emoji, label, outcome = _outcome(action)
    blocks = _card(action, emoji, label)
    blocks.append(_section(f"{emoji} {outcome}", block_id=_block_id("approval", action_id,
                                                                      "outcome")))
    blocks.append(_context([f"Action {_code(action_id, 220)} · updated {_utc(now)}"],
                           _block_id("approval", action_id, "footer")))
    tool, target = escape(action.get("tool") or "?"), escape(action_target(
        _dict(action.get("args"))))
    return _message(f"{label}: {tool} on {target}", blocks)


def execution_message(action: Mapping[str, Any]) -> dict[str, Any]:
    """What running an action did (a thread reply): the outcome, the result or error."""
    action_id = action.get("id") or "?"
    emoji, label, outcome = _outcome(action)
    tool = action.get("tool") or "?"
    target = action_target(_dict(action.get("args")))
    blocks = [_section(f"{emoji} {_code(tool, 200)} on {escape(target)}\n{outcome}",
                       block_id=_block_id("execution", action_id, "outcome"))]
    notes = []
    if action.get("result") is not None:
        notes.append(f"Result {_code(_compact(action['result']), 1500)}")
    inverse = _dict(action.get("inverse"))
    if inverse:
        notes.append(f"Undo recorded: {_code(inverse.get('tool') or _compact(inverse), 200)}")
    notes.append(f"Action {_code(action_id, 220)}")
    blocks.append(_context(notes, _block_id("execution", action_id, "details")))
    return _message(f"{label}: {escape(tool)} on {escape(target)}", blocks)


# --- escalations, post-mortems, refusals ------------------------------------------------


def escalation_message(event: Mapping[str, Any]) -> dict[str, Any]:
    """An audit event asking for a human: incident.escalated (payload to, message, reason)
    or action.escalated (an approval waiting past its policy's limit)."""
    kind = str(event.get("type") or "escalation")
    payload = _dict(event.get("payload"))
    incident_id, action_id = event.get("incident_id"), event.get("action_id")
    where = f"incident #{escape(incident_id)}" if incident_id is not None else "no incident"
    if kind == "action.escalated":
        waiting = _count(payload.get("waiting_minutes"))
        needed = _count(payload.get("approvals_needed"))
        role = escape(payload.get("approver_role") or "approver")
        title = f":alarm_clock: Approval overdue ({where})"
        body = (f"Action {_code(action_id or '?', 220)} has waited *{waiting} min* for "
                f"{needed} approval(s) from role {role}.")
        text = f"Approval overdue: action {escape(action_id or '?')} waited {waiting} min"
    else:
        to = escape(payload.get("to") or "") or "a human"
        title = f":sos: Escalated to {to} ({where})"
        lines = [f"*Escalated to {to}*"]
        if payload.get("message"):
            lines.append(escape(payload["message"]))
        if payload.get("reason"):
            lines.append(f"*Why:* {escape(payload['reason'])}")
        if payload.get("rollback_unavailable"):
            lines.append("No rollback could be proposed.")
        body = "\n".join(lines)
        text = f"Escalated to {to}: {where}" + (f": {escape(payload['message'])}"
                                                 if payload.get("message") else "")
    details = [f"{escape(kind)} at {_utc(event.get('ts'))}"]
    if event.get("target"):
        details.append(f"target {_code(event['target'], 300)}")
    if action_id and kind != "action.escalated":
        details.append(f"action {_code(action_id, 220)}")
    if event.get("seq") is not None:
        details.append(f"audit event {escape(event['seq'])}")
    blocks = [_header(title), _section(body), _context([" · ".join(details)])]
    return _message(text, blocks)


def _postmortem_summary(markdown: str) -> tuple[str | None, str]:
    """(title, summary) of a post-mortem: the '# ' heading and the Summary section (or the
    first section with text), without HTML comments or [ev:N] citations, which only make
    sense next to the timeline in the full document."""
    title: str | None = None
    sections: dict[str, list[str]] = {}
    order: list[str] = []
    current = ""
    for line in _COMMENT.sub("", markdown).splitlines():
        if line.startswith("# ") and title is None:
            title = line[2:].strip()
        elif line.startswith("## "):
            current = line[3:].strip().lower()
            order.append(current)
        else:
            sections.setdefault(current, []).append(line)
    chosen = sections.get("summary") or next(
        (sections[name] for name in ["", *order] if "".join(sections.get(name, [])).strip()),
        [])
    text = _CITATION.sub("", "\n".join(chosen)).strip()
    return title, re.sub(r"\n{3,}", "\n\n", text)


def postmortem_message(incident_id: int, markdown: str, url: str | None) -> dict[str, Any]:
    """A post-mortem draft announced: its summary section and a link to the full text."""
    title, summary = _postmortem_summary(markdown)
    body = escape(summary)
    # Markdown bullets and bold to mrkdwn (after escaping: these characters are not special).
    body = re.sub(r"(?m)^(\s*)[-*] ", r"\1• ", body)
    body = re.sub(r"\*\*(.+?)\*\*", r"*\1*", body)
    heading = escape(title) if title else f"Post-mortem: incident #{incident_id}"
    link = _safe_url(url)
    blocks = [_header(f":memo: {heading}", _block_id("postmortem", incident_id, "header")),
              _section(body or "_No summary yet._",
                       block_id=_block_id("postmortem", incident_id, "summary"))]
    if link:
        blocks.append(_section(f"<{link}|Read the full post-mortem>",
                               block_id=_block_id("postmortem", incident_id, "link")))
    else:
        blocks.append(_context([f"Full text: {_code(f'metaops postmortem show {incident_id}')}"],
                               _block_id("postmortem", incident_id, "link")))
    blocks.append(_context([f"Incident #{incident_id} · a draft written from the audit trail; "
                            "every fact cites its event in the full text"],
                           _block_id("postmortem", incident_id, "about")))
    return _message(f"Post-mortem draft for incident #{incident_id}: {heading}", blocks)


def ephemeral_refusal(reason: str) -> dict[str, Any]:
    """Why a click or command was refused, shown only to the person who tried. Never
    replaces the original: the card must stay for the other approvers."""
    safe = escape(reason) or "not allowed"
    message = _message(f"Not done: {safe}", [_section(f":no_entry: *Not done:* {safe}")])
    return {**message, "response_type": "ephemeral", "replace_original": False}
