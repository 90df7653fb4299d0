"""Redaction of personal data and secrets from untrusted text and nested JSON before it is kept."""

from __future__ import annotations

import copy
import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

__all__ = ["REDACTED", "RedactionResult", "redact", "redact_text"]

REDACTED: Final = "[REDACTED:{kind}]"

# Every pattern that could re-match its own output refuses to start at a marker.
_MARK_START: Final = re.escape(REDACTED.split("{", 1)[0])
_SECRET_MARK: Final = REDACTED.format(kind="secret")

# Shorter strings cannot hold anything we redact that matters ("::1" is the only casualty).
_MIN_LEN: Final = 6
# Bounds the fixed-point loop; in practice a second pass never changes anything.
_MAX_PASSES: Final = 4


@dataclass(frozen=True, slots=True)
class RedactionResult:
    """Redacted deep copy of the input, the JSON paths that changed and the kinds found."""

    value: Any
    paths: tuple[str, ...]
    kinds: tuple[str, ...]


_Repl = str | Callable[[re.Match[str]], str]


@dataclass(frozen=True, slots=True)
class _Rule:
    kind: str
    pattern: re.Pattern[str]
    repl: _Repl
    # Cheap gate: the rule runs only if one needle occurs (in the lowered text if `lower`).
    needles: tuple[str, ...] = ()
    lower: bool = False
    digits: bool = False


def _mark(kind: str) -> str:
    return REDACTED.format(kind=kind)


def _keep_prefix(kind: str, *groups: str) -> str:
    """Replacement template keeping the named groups and masking the rest of the match."""
    return "".join(rf"\g<{g}>" for g in groups) + _mark(kind)


# --- callbacks: reject look-alikes the regex alone cannot tell apart -------------------------


def _looks_like_credential(cred: str) -> bool:
    # "Bearer authentication" is prose; real credentials carry digits, symbols or mixed case.
    return not (cred.isalpha() and (cred.islower() or cred[1:].islower()))


def _bearer_repl(m: re.Match[str]) -> str:
    if not _looks_like_credential(m["cred"]):
        return m[0]
    return f"{m['scheme']}{m['sp']}{_mark('bearer')}"


def _luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def _card_repl(m: re.Match[str]) -> str:
    digits = m[0].replace(" ", "").replace("-", "")
    return _mark("credit_card") if _luhn_ok(digits) else m[0]


_NON_DIGIT = re.compile(r"\D")


def _phone_repl(m: re.Match[str]) -> str:
    # E.164 allows at most 15 digits; fewer than 7 is a count, not a number to call.
    n = len(_NON_DIGIT.sub("", m[0]))
    if m[0].startswith("+") and n < 8:
        return m[0]
    return _mark("phone") if 7 <= n <= 15 else m[0]


_DIGIT = re.compile(r"\d")


def _ipv6_repl(m: re.Match[str]) -> str:
    # "Abc::Def" (C++/Rust paths) is hex-only; real addresses almost always carry a digit.
    return _mark("ip") if _DIGIT.search(m[0]) else m[0]


# --- patterns -------------------------------------------------------------------------------

_H = "[0-9A-Fa-f]{1,4}"
_IPV6 = (
    rf"(?:{_H}:){{7}}{_H}"
    rf"|(?:{_H}:){{1,7}}:"
    rf"|(?:{_H}:){{1,6}}:{_H}"
    rf"|(?:{_H}:){{1,5}}(?::{_H}){{1,2}}"
    rf"|(?:{_H}:){{1,4}}(?::{_H}){{1,3}}"
    rf"|(?:{_H}:){{1,3}}(?::{_H}){{1,4}}"
    rf"|(?:{_H}:){{1,2}}(?::{_H}){{1,5}}"
    rf"|{_H}:(?::{_H}){{1,6}}"
    rf"|:(?::{_H}){{1,7}}"
)
_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"

# Most specific first, so a vendor key is never half-eaten by the phone or card patterns.
_RULES: Final[tuple[_Rule, ...]] = (
    _Rule(
        "private_key",
        re.compile(
            r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY[A-Z ]*-----"
            r"(?:.*?-----END [A-Z0-9 ]*PRIVATE KEY[A-Z ]*-----|.*\Z)",  # truncated: mask to end
            re.DOTALL,
        ),
        _mark("private_key"),
        needles=("PRIVATE KEY",),
    ),
    _Rule(
        "url_credentials",
        re.compile(
            rf"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.\-]*://)(?!{_MARK_START})"
            r"(?P<cred>[^\s/?#@:\[\]]*:[^\s/?#]*)@"  # greedy: a password may contain '@'
        ),
        _keep_prefix("url_credentials", "scheme") + "@",
        needles=("://",),
    ),
    _Rule(
        "jwt",
        re.compile(r"(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"),
        _mark("jwt"),
        needles=("eyJ",),
    ),
    _Rule(
        # In a header any credential goes, however short or word-like.
        "bearer",
        re.compile(
            r"(?P<head>\b(?i:authorization)[\"']?\s*[:=]\s*[\"']?"
            # Possessive: never retry with the scheme word itself taken as the credential.
            r"(?:(?i:bearer|basic|token|digest|negotiate)\s+)?+)"
            rf"(?!{_MARK_START})(?P<cred>[^\s\"',;]+)"
        ),
        _keep_prefix("bearer", "head"),
        needles=("authorization",),
        lower=True,
    ),
    _Rule(
        "bearer",
        re.compile(
            rf"\b(?P<scheme>(?i:bearer|basic))(?P<sp>\s+)(?!{_MARK_START})"
            r"(?P<cred>[A-Za-z0-9._~+/=-]{6,})"
        ),
        _bearer_repl,
        needles=("bearer", "basic"),
        lower=True,
    ),
    _Rule(
        "openai_key",
        re.compile(r"(?<![A-Za-z0-9_-])sk-[A-Za-z0-9_-]{20,}"),
        _mark("openai_key"),
        needles=("sk-",),
    ),
    _Rule(
        "aws_key",
        re.compile(r"(?<![A-Za-z0-9])(?:AKIA|ASIA)[A-Z0-9]{16}(?![A-Za-z0-9])"),
        _mark("aws_key"),
        needles=("AKIA", "ASIA"),
    ),
    _Rule(
        "aws_key",
        re.compile(
            r"(?P<key>\b(?i:(?:aws_?)?secret_?access_?key|aws_?secret_?key))"
            r"(?P<sep>[\"']?\s*[:=]\s*[\"']?)(?P<val>[A-Za-z0-9/+=]{40})(?![A-Za-z0-9/+=])"
        ),
        _keep_prefix("aws_key", "key", "sep"),
        needles=("secret",),
        lower=True,
    ),
    _Rule(
        "slack_token",
        re.compile(r"(?<![A-Za-z0-9])(?:xox[abposr]|xapp)-[A-Za-z0-9-]{10,}"),
        _mark("slack_token"),
        needles=("xox", "xapp-"),
    ),
    _Rule(
        "slack_token",
        re.compile(r"(?P<host>hooks\.slack\.com/(?:services|workflows|triggers)/)[A-Za-z0-9_/-]+"),
        _keep_prefix("slack_token", "host"),
        needles=("hooks.slack.com",),
    ),
    _Rule(
        "github_token",
        re.compile(
            r"(?<![A-Za-z0-9_])(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255})"
        ),
        _mark("github_token"),
        needles=("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"),
    ),
    _Rule(
        # Key must end in the word and touch the separator, so "max_tokens: 512" is left alone.
        "secret",
        re.compile(
            r"(?P<key>\b[\w.-]*?(?i:password|passwd|secret|token|api[_-]?key|access[_-]?key))"
            rf"(?P<sep>[\"']?\s*[:=]\s*[\"']?)(?!{_MARK_START})(?P<val>[^\s\"',;&]+)"
        ),
        _keep_prefix("secret", "key", "sep"),
        needles=("passw", "secret", "token", "key"),
        lower=True,
    ),
    _Rule(
        "credit_card",
        re.compile(
            r"(?<![0-9A-Za-z.])"
            r"(?:[2-6]\d{12,18}"  # IIN 2-6 keeps epoch-millisecond timestamps (1...) out
            r"|[2-6]\d{3}(?P<s>[ -])\d{4}(?P=s)\d{4}(?P=s)\d{1,7}"
            r"|3\d{3}[ -]\d{6}[ -]\d{5})"  # Amex 4-6-5
            r"(?![0-9A-Za-z]|\.\d)"
        ),
        _card_repl,
        digits=True,
    ),
    _Rule(
        "ssn",
        re.compile(r"(?<![\w.-])(?!000|666|9)\d{3}-(?!00)\d{2}-(?!0000)\d{4}(?![\w-]|\.\d)"),
        _mark("ssn"),
        digits=True,
    ),
    _Rule(
        "phone",
        re.compile(
            r"(?<![\w+.-])(?:"
            r"\+\d{1,3}[ .-]?(?:\(\d{1,4}\)|\d{1,4})(?:[ .-]?\d{2,4}){1,4}"
            r"|(?:1[ .-]?)?(?:\(\d{3}\)[ .-]?|\d{3}(?P<sep>[ .-]))\d{3}(?(sep)(?P=sep)|[ .-])\d{4}"
            r"|\d{3}-\d{4}"  # local 7-digit; dash required so bare numbers stay
            r")(?![\w-]|\.\d)"
        ),
        _phone_repl,
        digits=True,
    ),
    _Rule(
        "ip",
        re.compile(rf"(?<![\w.])(?:{_OCTET}\.){{3}}{_OCTET}(?!\w|\.\d)"),
        _mark("ip"),
        needles=(".",),
        digits=True,
    ),
    _Rule(
        # Needs "::" or eight groups, so clock times like "10:02:00" never qualify.
        "ip",
        re.compile(rf"(?<![\w:.])(?:{_IPV6})(?![\w:]|\.\d)"),
        _ipv6_repl,
        needles=(":",),
        digits=True,
    ),
    _Rule(
        "email",
        re.compile(r"[A-Za-z0-9._%+-]+@(?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,63}(?![A-Za-z0-9-])"),
        _mark("email"),
        needles=("@",),
    ),
)

# Necessary condition for any rule above; lets most labels and enum-like values skip everything.
_TRIGGER: Final = re.compile(
    r"[0-9@]|eyJ|sk-|xox|xapp-|gh[pousr]_|github_pat_|PRIVATE KEY|AKIA|ASIA|hooks\.slack"
    r"|(?i:bearer|basic|authorization|passw|secret|token|key)"
)


def _redact_once(text: str, found: set[str]) -> str:
    low = text.lower()
    has_digit = _DIGIT.search(text) is not None
    for rule in _RULES:
        if rule.digits and not has_digit:
            continue
        if rule.needles:
            hay = low if rule.lower else text
            if not any(n in hay for n in rule.needles):
                continue
        new, n = rule.pattern.subn(rule.repl, text)
        if n and new != text:
            found.add(rule.kind)
            text = new
            low = text.lower()
    return text


def _redact_str(text: str) -> tuple[str, set[str]]:
    found: set[str] = set()
    if len(text) < _MIN_LEN or _TRIGGER.search(text) is None:
        return text, found
    # Iterate to a fixed point: a marker can border text a later rule then sees differently,
    # and redact(redact(x)) must be a no-op.
    for _ in range(_MAX_PASSES):
        new = _redact_once(text, found)
        if new == text:
            break
        text = new
    return text, found


def redact_text(text: str) -> tuple[str, tuple[str, ...]]:
    """Returns (redacted text, sorted distinct kinds found)."""
    new, found = _redact_str(text)
    return new, tuple(sorted(found))


_SENSITIVE_SUFFIXES: Final = (
    "password",
    "passwd",
    "secret",
    "token",
    "apikey",
    "accesskey",
    "secretkey",
    "privatekey",
    "authorization",
    "cookie",
    "setcookie",
    "credentials",
    "credential",
    "routingkey",
    "clientsecret",
    "sessionid",
    "bearer",
)
# LLM telemetry counts tokens; these names describe numbers, not credentials.
_TOKEN_COUNT_KEYS: Final = frozenset(
    {
        "tokenusage",
        "tokens",
        "inputtokens",
        "outputtokens",
        "prompttokens",
        "completiontokens",
        "totaltokens",
        "maxtokens",
        "inputtoken",
        "outputtoken",
        "prompttoken",
        "completiontoken",
        "totaltoken",
        "maxtoken",
        "tokencount",
        "numtokens",
    }
)
_KEY_STRIP: Final = str.maketrans("", "", "-_ ")
_KEY_CACHE_MAX_LEN: Final = 64


def _key_is_sensitive(key: str) -> bool:
    norm = key.lower().translate(_KEY_STRIP)
    if norm in _TOKEN_COUNT_KEYS:
        return False
    return norm.endswith(_SENSITIVE_SUFFIXES)


_key_is_sensitive_cached = functools.lru_cache(maxsize=2048)(_key_is_sensitive)


def _is_sensitive_key(key: str) -> bool:
    # Only short keys are cached: field names repeat, arbitrary long keys would churn the cache.
    if len(key) > _KEY_CACHE_MAX_LEN:
        return _key_is_sensitive(key)
    return _key_is_sensitive_cached(key)


def _walk(value: Any, path: str, paths: list[str], kinds: set[str]) -> Any:
    if isinstance(value, str):
        new, found = _redact_str(value)
        if found:
            paths.append(path)
            kinds.update(found)
        return new
    if isinstance(value, dict):
        out: dict[Any, Any] = {}
        for key, child in value.items():
            child_path = f"{path}.{key}" if path else str(key)
            if isinstance(key, str) and _is_sensitive_key(key):
                # The whole subtree goes, whatever its type; an existing marker stays put.
                if child != _SECRET_MARK:
                    paths.append(child_path)
                    kinds.add("secret")
                out[key] = _SECRET_MARK
            else:
                out[key] = _walk(child, child_path, paths, kinds)
        return out
    if isinstance(value, list | tuple):
        items = [_walk(item, f"{path}[{i}]", paths, kinds) for i, item in enumerate(value)]
        return items if isinstance(value, list) else tuple(items)
    if value is None or isinstance(value, bool | int | float):
        return value
    # Not JSON; copy rather than share so callers can never mutate the input through us.
    return copy.deepcopy(value)


def redact(obj: Any) -> RedactionResult:
    """Nested JSON (dict/list/str/int/float/bool/None). Redacts by key and by value."""
    paths: list[str] = []
    kinds: set[str] = set()
    value = _walk(obj, "", paths, kinds)
    return RedactionResult(value=value, paths=tuple(paths), kinds=tuple(sorted(kinds)))
