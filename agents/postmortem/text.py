"""Text for the post-mortem's Markdown: safe free text, citations, times, durations and values."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any, Final

from agents.postmortem.events import Event
from guardrails.redaction import redact_text

# Free text (summaries, notes, reasons) is cut at a word boundary past this many characters.
MAX_TEXT: Final = 400


def clean(value: Any, limit: int = MAX_TEXT) -> str:
    """Free text made safe for one Markdown line: redacted again (defence in depth), on one
    line, cut at a word boundary, and unable to forge a citation or open a comment."""
    text = " ".join(redact_text(str(value))[0].split())
    if len(text) > limit:
        head = text[:limit]
        # Never end inside a word: a cut number would be a number nobody said.
        head = head.rsplit(" ", 1)[0] if text[limit] != " " and " " in head else head
        text = head.rstrip() + " …"
    return (text.replace("[ev:", "(ev:").replace("<!--", "&lt;!--").replace("-->", "--&gt;"))


def cell(value: str) -> str:
    return value.replace("|", "\\|")


def cite(*events: Event | None) -> str:
    seqs = dict.fromkeys(int(e["seq"]) for e in events if e is not None)
    return "".join(f"[ev:{s}]" for s in seqs)


def hms(when: datetime) -> str:
    return f"{when:%H:%M:%S} UTC"


def fmt_duration(seconds: float) -> str:
    """Whole seconds, largest units first: `4 min 12 s`, `1 h 3 min`, `0 s` (what the
    validator reads back as a difference between two cited timestamps)."""
    sign = "-" if seconds < 0 else ""
    total = int(abs(seconds))
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{n} {unit}" for n, unit in ((days, "d"), (hours, "h"), (minutes, "min")) if n]
    if secs or not parts:
        parts.append(f"{secs} s")
    return sign + " ".join(parts)


def code(value: Any, limit: int = 120) -> str:
    """Inline code; a backtick inside would end it early, so it becomes a quote."""
    text = clean(value, limit).replace("`", "'")
    return f"`{text}`"


def fmt_value(value: Any) -> str:
    if isinstance(value, str):
        return code(value)
    if isinstance(value, bool) or value is None:
        return "true" if value is True else "false" if value is False else "null"
    if isinstance(value, int | float):
        return repr(value)
    return code(json.dumps(value, sort_keys=True, ensure_ascii=False))


def fmt_args(args: Any) -> str:
    if not isinstance(args, dict) or not args:
        return "no arguments"
    return ", ".join(f"{clean(k, 60)}={fmt_value(args[k])}" for k in sorted(args))


def money(value: Any) -> str:
    return f"${float(value):,.2f}"


def pct(share: Any) -> str:
    return f"{float(share) * 100:.0f} %"


def join_names(names: Iterable[str]) -> str:
    items = [clean(n, 80) for n in names]
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def reason(body: dict[str, Any], *keys: str) -> str:
    for key in keys:
        value = body.get(key)
        if value:
            return clean(value, 240)
    return ""


def with_detail(text: str, extra: str, sep: str = ": ") -> str:
    return f"{text}{sep}{extra}" if extra else text
