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

# Patterns that could re-match their own output refuse to start at a marker.
_MARK_START: Final = re.escape(REDACTED.split("{", 1)[0])
_SECRET_MARK: Final = REDACTED.format(kind="secret")

# Shorter strings cannot hold anything worth redacting ("::1" is the only casualty).
_MIN_LEN: Final = 6
# Bounds the fixed-point loop; in practice the second pass never changes anything.
_MAX_PASSES: Final = 4


@dataclass(frozen=True, slots=True)
class RedactionResult:
    """Redacted deep copy of the input, the JSON paths that changed and the kinds found."""

    value: Any
    paths: tuple[str, ...]
    kinds: tuple[str, ...]


# (text, lowered text) -> may this rule match at all?  Cheaper than the rule's own scan.
_Gate = Callable[[str, str], bool]
# Pseudo-triggers for characters the word scan does not look for.
_DIGIT_HIT: Final = "<digit>"
# Card, SSN, national phone and IPv4 all need a digit group (see _DIGIT_GROUP).
_GROUP_HIT: Final = "<digit-group>"
_AT_HIT: Final = "@"


@dataclass(frozen=True, slots=True)
class _Rule:
    kind: str
    apply: Callable[[str], str]
    # The rule runs only if _triggers() found one of these in the text.
    triggers: frozenset[str]
    gate: _Gate | None = None


def _mark(kind: str) -> str:
    return REDACTED.format(kind=kind)


def _keep(kind: str, *groups: str) -> str:
    """Replacement template that keeps the named groups and masks the rest of the match."""
    return "".join(rf"\g<{g}>" for g in groups) + _mark(kind)


def _sub(
    pattern: str, repl: str | Callable[[re.Match[str]], str], flags: int = 0
) -> Callable[[str], str]:
    # ASCII: \d, \w and (?i) must not widen to Unicode look-alikes the gates never saw.
    return functools.partial(re.compile(pattern, flags | re.ASCII).sub, repl)


def _on(*needles: str) -> frozenset[str]:
    return frozenset(needles)


def _in_lower(pattern: str) -> _Gate:
    search = re.compile(pattern).search
    return lambda _text, low: search(low) is not None


# --- callbacks: reject look-alikes a regex alone cannot tell apart ---------------------------

_DIGIT = re.compile(r"\d", re.ASCII)
# Loose necessary condition for card, SSN, national phone and IPv4: a digit run not glued to a
# word, with a separator after its first 2-4 digits, two dots, or 13+ digits. URL-encoded
# queries, clock times and version strings fail it, so the exact patterns rarely run.
_DIGIT_GROUP = re.compile(
    r"\d(?<![0-9A-Za-z]\d)(?:\d{1,3}[ .-]\d|\d{0,2}\.\d{1,3}\.|\d{12})", re.ASCII
)
_NON_DIGIT = re.compile(r"\D", re.ASCII)


def _looks_like_credential(cred: str) -> bool:
    # "Bearer authentication" is prose; real credentials carry digits, symbols or mixed case.
    return not (cred.isalpha() and (cred.islower() or cred[1:].islower()))


def _bearer_repl(m: re.Match[str]) -> str:
    if not _looks_like_credential(m["cred"]):
        return m[0]
    return f"{m['scheme']}{m['sp']}{_mark('bearer')}"


def _kv_repl(m: re.Match[str]) -> str:
    # Keep the quoting around the value so JSON embedded in a log line stays parseable.
    val = m["val"]
    lead = val[:2] if val.startswith("\\") else val[:1] if val[:1] in "\"'" else ""
    close = lead if lead and len(val) >= 2 * len(lead) and val.endswith(lead) else ""
    return f"{m['key']}{m['sep']}{lead}{_mark('secret')}{close}"


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
    return _mark("credit_card") if _luhn_ok(_NON_DIGIT.sub("", m[0])) else m[0]


def _phone_repl(m: re.Match[str]) -> str:
    # E.164 caps numbers at 15 digits; an international form needs 8+ to be more than a count.
    n = len(_NON_DIGIT.sub("", m[0]))
    low = 8 if m[0].startswith("+") else 7
    return _mark("phone") if low <= n <= 15 else m[0]


def _ipv4_repl(m: re.Match[str]) -> str:
    ok = all(p == "0" or (p[0] != "0" and int(p) <= 255) for p in m[0].split("."))
    return _mark("ip") if ok else m[0]


def _ipv6_repl(m: re.Match[str]) -> str:
    # "Abc::Def" (C++/Rust paths) is hex-only; real addresses almost always carry a digit.
    return _mark("ip") if _DIGIT.search(m[0]) else m[0]


# Domain first: "@" is a literal the engine can skip to, whereas a leading local-part run
# would rescan every position of a long token (quadratic on a base64 blob with an "@").
_EMAIL_DOMAIN = re.compile(r"@(?:[A-Za-z0-9-]{1,63}\.){1,8}[A-Za-z]{2,63}(?![A-Za-z0-9-])")
_EMAIL_LOCAL = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._%+-")


def _redact_emails(text: str) -> str:
    out: list[str] = []
    last = 0
    for m in _EMAIL_DOMAIN.finditer(text):
        start = i = m.start()
        while i > last and text[i - 1] in _EMAIL_LOCAL:
            i -= 1
        if i == start:
            continue
        out += (text[last:i], _mark("email"))
        last = m.end()
    if not out:
        return text
    out.append(text[last:])
    return "".join(out)


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

# Most specific first, so a vendor key is never half-eaten by the phone or card patterns.
# Digit patterns open with a character class (boundary look-behind moved after it) so the
# regex engine can skip non-candidate positions in C instead of trying a match at each one.
_RULES: Final[tuple[_Rule, ...]] = (
    _Rule(
        "private_key",
        _sub(
            r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY[A-Z ]*-----"
            r"(?:.*?-----END [A-Z0-9 ]*PRIVATE KEY[A-Z ]*-----|.*\Z)",  # truncated: mask to end
            _mark("private_key"),
            re.DOTALL,
        ),
        _on("private key"),
    ),
    _Rule(
        "url_credentials",
        _sub(
            rf"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.\-]{{0,31}}://)(?!{_MARK_START})"
            r"(?P<cred>[^\s/?#@:\[\]]{0,256}:[^\s/?#]{0,512})@",  # greedy: passwords may hold '@'
            _keep("url_credentials", "scheme") + "@",
        ),
        _on(_AT_HIT),
    ),
    _Rule(
        "jwt",
        _sub(
            r"eyJ(?<![A-Za-z0-9_-]eyJ)[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*",
            _mark("jwt"),
        ),
        _on("eyj"),
    ),
    _Rule(
        # In a header any credential goes, however short or word-like.
        "bearer",
        _sub(
            r"(?P<head>\b(?i:authorization)\\?[\"']?\s*[:=]\s*\\?[\"']?"
            # Possessive: never retry with the scheme word itself taken as the credential.
            r"(?:(?i:bearer|basic|token|digest|negotiate)\s+)?+)"
            rf"(?!{_MARK_START})(?P<cred>[^\s\"',;\\]+)",
            _keep("bearer", "head"),
        ),
        _on("authorization"),
    ),
    _Rule(
        "bearer",
        _sub(
            rf"\b(?P<scheme>(?i:bearer|basic))(?P<sp>\s+)(?!{_MARK_START})"
            r"(?P<cred>[A-Za-z0-9._~+/=-]{6,})",
            _bearer_repl,
        ),
        _on("bearer", "basic"),
    ),
    _Rule(
        "openai_key",
        _sub(r"sk-(?<![A-Za-z0-9_-]sk-)[A-Za-z0-9_-]{20,}", _mark("openai_key")),
        _on("sk-"),
    ),
    _Rule(
        "aws_key",
        _sub(
            r"(?:AKIA|ASIA)(?<![A-Za-z0-9]....)[A-Z0-9]{16}(?![A-Za-z0-9])",
            _mark("aws_key"),
        ),
        _on("akia", "asia"),
    ),
    _Rule(
        "aws_key",
        _sub(
            r"(?P<key>\b(?i:(?:aws_?)?secret_?access_?key|aws_?secret_?key))"
            r"(?P<sep>[\"']?\s*[:=]\s*[\"']?)[A-Za-z0-9/+=]{40}(?![A-Za-z0-9/+=])",
            _keep("aws_key", "key", "sep"),
        ),
        _on("secret"),
    ),
    _Rule(
        "slack_token",
        _sub(
            r"(?:xox[abposr]|xapp)(?<![A-Za-z0-9]xox.|[A-Za-z0-9]xapp)-[A-Za-z0-9-]{10,}",
            _mark("slack_token"),
        ),
        _on("xox", "xapp-"),
    ),
    _Rule(
        "slack_token",
        _sub(
            r"(?P<host>hooks\.slack\.com/(?:services|workflows|triggers)/)[A-Za-z0-9_/-]+",
            _keep("slack_token", "host"),
        ),
        _on("hooks.slack"),
    ),
    _Rule(
        "github_token",
        _sub(
            r"(?<![A-Za-z0-9_])(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255})",
            _mark("github_token"),
        ),
        _on("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"),
    ),
    _Rule(
        # The word must touch the separator, so "max_tokens: 512" and "token_usage=" stay.
        "secret",
        _sub(
            r"(?P<key>(?i:passw(?:or)?d|secret|token|api[_-]?key|access[_-]?key))"
            r"(?P<sep>\\?[\"']?\s*[:=]\s*)"
            rf"(?P<val>\"(?!{_MARK_START})[^\"\n]*\"|'(?!{_MARK_START})[^'\n]*'"
            rf"|\\\"(?!{_MARK_START})[^\n]*?\\\""
            # Unquoted, unterminated or JSON-escaped (\"...) values end at the next delimiter.
            rf"|(?:\\?[\"'])?(?!{_MARK_START})[^\s\"',;&\\]+)",
            _kv_repl,
        ),
        _on("passw", "secret", "token", "key"),
        _in_lower(r"(?:passw(?:or)?d|secret|token|api[_-]?key|access[_-]?key)\\?[\"']?\s*[:=]"),
    ),
    _Rule(
        "credit_card",
        _sub(
            # IIN 2-6 keeps epoch-millisecond timestamps (they start with 1) out.
            r"[2-6](?<![0-9A-Za-z.].)"
            r"(?:\d{12,18}"
            r"|\d{3}(?P<s>[ -])\d{4}(?P=s)\d{4}(?P=s)\d{1,7}"
            r"|(?<=3)\d{3}[ -]\d{6}[ -]\d{5})"  # Amex 4-6-5
            r"(?![0-9A-Za-z]|\.\d)",
            _card_repl,
        ),
        _on(_GROUP_HIT),
    ),
    _Rule(
        "ssn",
        _sub(
            r"[0-8](?<![\w.-].)\d\d(?<!000)(?<!666)-(?!00)\d\d-(?!0000)\d{4}(?![\w-]|\.\d)",
            _mark("ssn"),
        ),
        _on(_GROUP_HIT),
    ),
    _Rule(
        "phone",
        _sub(
            r"\+(?<![\w+.-]\+)\d{1,3}[ .-]?(?:\(\d{1,4}\)|\d{1,4})(?:[ .-]?\d{2,4}){1,6}"
            r"(?![\w-]|\.\d)",
            _phone_repl,
        ),
        _on(_DIGIT_HIT),
        lambda text, _low: "+" in text,
    ),
    _Rule(
        "phone",
        _sub(r"\((?<![\w+.-]\()\d{3}\)[ .-]?\d{3}[ .-]\d{4}(?![\w-]|\.\d)", _mark("phone")),
        _on(_GROUP_HIT),
        lambda text, _low: "(" in text,
    ),
    _Rule(
        "phone",
        _sub(
            r"\d(?<![\w+.-]\d)(?:"
            r"(?<=1)[ .-]?\d{3}(?P<s1>[ .-])\d{3}(?P=s1)\d{4}"  # 1-800-555-0142
            r"|\d\d(?P<s2>[ .-])\d{3}(?P=s2)\d{4}"  # 415-555-0142, 415.555.0142
            r"|\d\d-\d{4}"  # local 7-digit; the dash is required so bare numbers stay
            r")(?![\w-]|\.\d)",
            _mark("phone"),
        ),
        _on(_GROUP_HIT),
    ),
    _Rule(
        "ip",
        _sub(r"\d(?<![\w.]\d)\d{0,2}(?:\.\d{1,3}){3}(?!\w|\.\d)", _ipv4_repl),
        _on(_GROUP_HIT),
    ),
    _Rule(
        # Needs "::" or eight groups, so clock times like "10:02:00" never qualify.
        "ip",
        _sub(rf"(?<![\w:.])(?:{_IPV6})(?![\w:]|\.\d)", _ipv6_repl),
        _on(_DIGIT_HIT),
        lambda text, _low: "::" in text or text.count(":") >= 7,
    ),
    _Rule("email", _redact_emails, _on(_AT_HIT)),
)

# One scan of the lowered text finds every rule trigger word; most labels, enum values and
# names hit nothing. Each alternative opens with a literal so the engine can skip positions in
# C; hits are a superset of the case-sensitive needles the rules themselves require.
_WORD_TRIGGER: Final = re.compile(
    r"e(?:yj)|s(?:k-|ecret)|x(?:ox|app-)|g(?:h[pousr]_|ithub_pat_)|p(?:rivate key|assw)"
    r"|a(?:kia|sia|uthorization)|h(?:ooks\.slack)|b(?:earer|asic)|t(?:oken)|k(?:ey)"
)


def _triggers(low: str) -> set[str]:
    hits = set(_WORD_TRIGGER.findall(low))
    if _DIGIT.search(low) is not None:
        hits.add(_DIGIT_HIT)
        if _DIGIT_GROUP.search(low) is not None:
            hits.add(_GROUP_HIT)
    if _AT_HIT in low:
        hits.add(_AT_HIT)
    return hits


def _redact_once(text: str, low: str, hits: set[str], found: set[str]) -> str:
    # Hits stay valid while rules rewrite: a marker, bracketed, cannot create a new trigger.
    for rule in _RULES:
        if hits.isdisjoint(rule.triggers) or (rule.gate is not None and not rule.gate(text, low)):
            continue
        new = rule.apply(text)
        if new != text:
            found.add(rule.kind)
            text = new
            low = text.lower()
    return text


# Whole-string shapes that no rule can match but that fill webhook bodies: RFC 3339 times
# (startsAt/endsAt) and hex ids with at least one letter (fingerprints, trace ids).
_SAFE_SHAPE: Final = re.compile(
    r"\d{4}-\d\d-\d\d(?:[T ]\d\d:\d\d(?::\d\d(?:\.\d{1,9})?)?(?:Z|[+-]\d\d:?\d\d)?)?"
    r"|(?=[0-9a-f]*[a-f])[0-9a-f]{8,64}",
    re.ASCII,
)


def _redact_str(text: str) -> tuple[str, set[str]]:
    found: set[str] = set()
    if len(text) < _MIN_LEN or _SAFE_SHAPE.fullmatch(text) is not None:
        return text, found
    low = text.lower()
    hits = _triggers(low)
    if not hits:
        return text, found
    # Iterate to a fixed point: a marker can border text that a rule then reads differently,
    # and redact(redact(x)) must be a no-op.
    for _ in range(_MAX_PASSES):
        new = _redact_once(text, low, hits, found)
        if new == text:
            break
        text, low = new, new.lower()
        hits = _triggers(low)
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
    return norm not in _TOKEN_COUNT_KEYS and norm.endswith(_SENSITIVE_SUFFIXES)


_key_is_sensitive_cached = functools.lru_cache(maxsize=2048)(_key_is_sensitive)


def _is_sensitive_key(key: str) -> bool:
    # Field names repeat, so cache them; long keys are likely junk and would churn the cache.
    if len(key) > _KEY_CACHE_MAX_LEN:
        return _key_is_sensitive(key)
    return _key_is_sensitive_cached(key)


class _Walk:
    """State of one redact() call. The string memo lives only as long as the call, so no
    redacted or original text outlives it; webhook bodies repeat labels and URLs a lot."""

    __slots__ = ("kinds", "memo", "paths")

    def __init__(self) -> None:
        self.paths: list[str] = []
        self.kinds: set[str] = set()
        self.memo: dict[str, tuple[str, set[str]]] = {}


def _walk(value: Any, path: str, st: _Walk) -> Any:
    if isinstance(value, str):
        hit = st.memo.get(value)
        if hit is None:
            hit = st.memo[value] = _redact_str(value)
        new, found = hit
        if found:
            st.paths.append(path)
            st.kinds.update(found)
        return new
    if isinstance(value, dict):
        out: dict[Any, Any] = {}
        for key, child in value.items():
            child_path = f"{path}.{key}" if path else str(key)
            if isinstance(key, str) and _is_sensitive_key(key):
                # The whole subtree goes, whatever its type; an existing marker stays put.
                if child != _SECRET_MARK:
                    st.paths.append(child_path)
                    st.kinds.add("secret")
                out[key] = _SECRET_MARK
            else:
                out[key] = _walk(child, child_path, st)
        return out
    if isinstance(value, list | tuple):
        items = [_walk(item, f"{path}[{i}]", st) for i, item in enumerate(value)]
        return items if isinstance(value, list) else tuple(items)
    if value is None or isinstance(value, bool | int | float):
        return value
    # Not JSON; copy rather than share so callers can never mutate the input through us.
    return copy.deepcopy(value)


def redact(obj: Any) -> RedactionResult:
    """Nested JSON (dict/list/str/int/float/bool/None). Redacts by key and by value."""
    st = _Walk()
    value = _walk(obj, "", st)
    return RedactionResult(value=value, paths=tuple(st.paths), kinds=tuple(sorted(st.kinds)))
