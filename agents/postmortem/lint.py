"""Blameless lint: no person or role as the cause of anything, no loaded words the events lack."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any, Final

from agents.postmortem.model import Problem

# People are named by role too: as the subject of a causal verb these blame just as well.
ROLE_WORDS: Final[tuple[str, ...]] = (
    "on-call engineer", "on call engineer", "oncall engineer", "team member", "on-call",
    "oncall", "engineers?", "operators?", "developers?", "admins?", "administrators?", "SREs?",
    "interns?", "someone", "somebody", "employees?", "contractors?", "colleagues?",
)
_CAUSAL: Final = (r"caused|causes|cause|broke|breaks|triggered|triggers|was responsible"
                  r"|were responsible|is responsible|are responsible|responsible for"
                  r"|screwed up|messed up|forgot|neglected|failed to|fault|blamed?|mistakes?")
# Words that claim intent or a legal finding; fine only when the incident's own events say so.
LOADED: Final[dict[str, re.Pattern[str]]] = {
    "breach": re.compile(r"\bbreach(?:es|ed|ing)?\b", re.IGNORECASE),
    "unauthorized": re.compile(r"\bunauthori[sz]ed\b", re.IGNORECASE),
    "leak": re.compile(r"\bleak(?:s|ed|ing|age)?\b", re.IGNORECASE),
    "violation": re.compile(r"\bviolat(?:ion|ions|e|es|ed|ing)\b", re.IGNORECASE),
    "unlawful": re.compile(r"\bunlawful(?:ly)?\b", re.IGNORECASE),
    "illegal": re.compile(r"\billegal(?:ly)?\b", re.IGNORECASE),
}
_HUMAN_ERROR: Final = re.compile(r"\bhuman errors?\b", re.IGNORECASE)
# Who acts on behalf of the system, not a person: never linted as a name.
_NOT_PEOPLE: Final = ("runbook:", "policy:", "rollback:", "agent:", "system")


def _names(people: Iterable[str]) -> list[str]:
    names = {p.strip() for p in people if p and p.strip()}
    keep = [n for n in names if len(n) >= 2 and not n.lower().startswith(_NOT_PEOPLE)]
    # Longest first, so "alice.smith" wins over "alice" in the alternation.
    return sorted(keep, key=lambda n: (-len(n), n))


def _patterns(people: Iterable[str]) -> list[re.Pattern[str]]:
    names = [re.escape(n) for n in _names(people)]
    subject = "|".join([*names, *ROLE_WORDS])
    # A name glued to a longer token (alice@x, alice_bot) is another name.
    s = rf"(?<![\w@.])(?:the\s+|an?\s+|our\s+)?(?P<who>{subject})(?![\w@])"
    gap = r"(?:[\s'’]+[\w’'-]+){0,3}?"  # up to three words, never across punctuation
    return [re.compile(p, re.IGNORECASE) for p in (
        rf"{s}(?:'s|’s)?{gap}\s+(?:{_CAUSAL})\b",
        rf"\b(?:caused|broken|triggered|introduced|made)\s+by\s+{s}",
        rf"\bbecause\s+(?:of\s+)?{s}",
        rf"\b(?:fault|mistakes?|errors?|blame)\s+(?:of|by|on)\s+{s}",
        rf"\bblamed?\s+{s}",
    )]


def _lines(markdown: str) -> Iterable[tuple[int, str]]:
    inside = False
    for number, raw in enumerate(markdown.splitlines(), start=1):
        text = raw
        # Comments hold bookkeeping for the writer and merge, never prose.
        if inside:
            end = text.find("-->")
            if end < 0:
                continue
            text, inside = text[end + 3:], False
        while "<!--" in text:
            start = text.find("<!--")
            end = text.find("-->", start + 4)
            if end < 0:
                text, inside = text[:start], True
                break
            text = text[:start] + " " + text[end + 3:]
        if text.strip():
            yield number, text


def lint(markdown: str, events: list[dict[str, Any]], people: Iterable[str]) -> list[Problem]:
    """Blameless-tone problems by line: a person (from `people`: approvers, requesters, note
    authors) or a role named as the cause of something, "human error", and loaded words
    (breach, unauthorized, leak, violation, unlawful, illegal) the incident's events never use."""
    patterns = _patterns(people)
    event_text = "\n".join(json.dumps(e, ensure_ascii=False, default=str) for e in events)
    allowed = {word for word, pattern in LOADED.items() if pattern.search(event_text)}
    problems: list[Problem] = []
    for number, text in _lines(markdown):
        for pattern in patterns:
            m = pattern.search(text)
            if m is not None:
                problems.append(Problem(
                    number, f"names {m.group('who')!r} as the cause (“{m.group(0).strip()}”); "
                            f"blameless: describe what the system did and which decision it "
                            f"allowed, not who"))
                break
        m = _HUMAN_ERROR.search(text)
        if m is not None:
            problems.append(Problem(number, f"“{m.group(0)}” blames people; name the system "
                                            f"condition that let the error through"))
        for word, pattern in LOADED.items():
            found = pattern.search(text)
            if found is not None and word not in allowed:
                problems.append(Problem(
                    number, f"loaded word “{found.group(0)}” appears in no event of this "
                            f"incident; say plainly what happened"))
    return sorted(problems)
