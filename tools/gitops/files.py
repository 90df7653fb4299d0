"""The config file formats: parse flags.json, models.yaml, limits.yaml and edit them minimally."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import yaml

from tools.gitops.errors import GitOpsRefused

FLAGS_PATH = "flags/flags.json"
MODELS_PATH = "config/models.yaml"
LIMITS_PATH = "config/limits.yaml"
LIMIT_KEYS = ("global_rpm", "per_user_rpm")


def decode(path: str, content: bytes | None) -> str:
    if content is None:
        raise GitOpsRefused(f"{path} does not exist in the GitOps repository")
    try:
        return content.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise GitOpsRefused(f"{path} is not UTF-8 text: {exc}") from None


# -- flags/flags.json (flagd) -----------------------------------------------------------------


def parse_flags(text: str) -> dict[str, dict[str, Any]]:
    """The `flags` object of a flagd file: flag key -> flag definition."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise GitOpsRefused(f"{FLAGS_PATH} is not valid JSON: {exc}") from None
    flags = doc.get("flags") if isinstance(doc, dict) else None
    if not isinstance(flags, dict) or not all(isinstance(f, dict) for f in flags.values()):
        raise GitOpsRefused(f"{FLAGS_PATH}: 'flags' must be an object of flag definitions")
    return flags


def flag_variants(flags: dict[str, dict[str, Any]], flag: str) -> dict[str, Any]:
    if flag not in flags:
        raise GitOpsRefused(f"unknown flag {flag!r} in {FLAGS_PATH} "
                            f"(known flags: {', '.join(sorted(flags)) or 'none'})")
    variants = flags[flag].get("variants")
    return variants if isinstance(variants, dict) else {}


def set_default_variant(text: str, flag: str, variant: str) -> str:
    """Set flags[flag].defaultVariant, refusing an unknown flag or variant."""
    flags = parse_flags(text)
    variants = flag_variants(flags, flag)
    if variant not in variants:
        raise GitOpsRefused(f"flag {flag!r} has no variant {variant!r} "
                            f"(variants: {', '.join(variants) or 'none'})")
    doc = json.loads(text)
    doc["flags"][flag]["defaultVariant"] = variant
    return _dump_json_like(text, doc)


def _dump_json_like(original: str, doc: Any) -> str:
    """Re-serialise keeping the original's indentation, ASCII-ness and final newline."""
    m = re.search(r"\n([ \t]+)\S", original)
    indent: int | str | None = None
    if m:
        indent = m.group(1) if "\t" in m.group(1) else len(m.group(1))
    out = json.dumps(doc, indent=indent, ensure_ascii=original.isascii())
    return out + "\n" if original.endswith("\n") else out


# -- YAML: edit a line in place when we can, re-dump when we cannot ----------------------------


def load_yaml(path: str, text: str) -> dict[str, Any]:
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise GitOpsRefused(f"{path} is not valid YAML: {exc}") from None
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise GitOpsRefused(f"{path} must hold a mapping at the top level")
    return doc


def _yaml_line(key: str, value: Any, indent: str = "") -> str:
    """`key: value` as YAML would write it (quoting where needed), one line."""
    dumped = yaml.safe_dump({key: value}, default_flow_style=True, sort_keys=False,
                            allow_unicode=True, width=1 << 30).strip()
    return indent + dumped[1:-1].strip()  # strip the braces of the flow mapping


def _edit_yaml(path: str, text: str, want: dict[str, Any],
               edit: Callable[[list[str]], bool]) -> str:
    """Apply a line edit if it yields exactly `want`; otherwise re-dump `want` (losing comments)."""
    lines = text.splitlines(keepends=True)
    if edit(lines):
        candidate = "".join(lines)
        try:
            if yaml.safe_load(candidate) == want:
                return candidate
        except yaml.YAMLError:
            pass
    return yaml.safe_dump(want, sort_keys=False, default_flow_style=False, allow_unicode=True)


def _replace_scalar(lines: list[str], key: str, value: Any, indent_re: str) -> bool:
    """Replace `<indent>key: old  # comment` with the new value, keeping indent and comment."""
    pat = re.compile(rf"^({indent_re}){re.escape(key)}[ \t]*:"
                     r"(?:[ \t]+[^#\n]*?)?([ \t]+#.*?)?(\r?\n)?$")
    for i, line in enumerate(lines):
        m = pat.match(line)
        if m:
            lines[i] = _yaml_line(key, value, m.group(1)) + (m.group(2) or "") + (m.group(3) or "")
            return True
    return False


# -- config/models.yaml -----------------------------------------------------------------------


def parse_aliases(text: str) -> dict[str, str]:
    aliases = load_yaml(MODELS_PATH, text).get("aliases") or {}
    if not isinstance(aliases, dict):
        raise GitOpsRefused(f"{MODELS_PATH}: 'aliases' must be a mapping of name -> provider/model")
    return {str(k): str(v) for k, v in aliases.items()}


def set_alias(text: str, alias: str, target: str) -> str:
    """Point an existing alias at `target`, refusing an unknown alias."""
    aliases = parse_aliases(text)
    if alias not in aliases:
        raise GitOpsRefused(f"unknown model alias {alias!r} in {MODELS_PATH} "
                            f"(known aliases: {', '.join(sorted(aliases)) or 'none'})")
    want = load_yaml(MODELS_PATH, text)
    want["aliases"] = {**want["aliases"], alias: target}
    return _edit_yaml(MODELS_PATH, text, want,
                      lambda lines: _replace_scalar(lines, alias, target, r"[ \t]+"))


# -- config/limits.yaml -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Limits:
    global_rpm: int | None = None
    per_user_rpm: int | None = None
    blocked_users: list[str] = field(default_factory=list)


def parse_limits(text: str) -> Limits:
    doc = load_yaml(LIMITS_PATH, text)
    values: dict[str, int | None] = {}
    for key in LIMIT_KEYS:
        value = doc.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            raise GitOpsRefused(f"{LIMITS_PATH}: {key} must be an integer, not {value!r}")
        values[key] = value
    blocked = doc.get("blocked_users") or []
    if not isinstance(blocked, list):
        raise GitOpsRefused(f"{LIMITS_PATH}: blocked_users must be a list")
    return Limits(values["global_rpm"], values["per_user_rpm"], [str(u) for u in blocked])


def set_limits(text: str, updates: dict[str, int]) -> str:
    want = {**load_yaml(LIMITS_PATH, text), **updates}

    def edit(lines: list[str]) -> bool:
        for key, value in updates.items():
            if not _replace_scalar(lines, key, value, ""):
                lines.append(("" if not lines or lines[-1].endswith("\n") else "\n")
                             + _yaml_line(key, value) + "\n")
        return True

    return _edit_yaml(LIMITS_PATH, text, want, edit)


def add_blocked_user(text: str, user_id: str) -> str:
    """Append `user_id` to blocked_users unless it is there already (then: unchanged)."""
    if user_id in parse_limits(text).blocked_users:
        return text
    doc = load_yaml(LIMITS_PATH, text)
    want = {**doc, "blocked_users": [*(doc.get("blocked_users") or []), user_id]}
    return _edit_yaml(LIMITS_PATH, text, want, lambda lines: _append_item(lines, user_id))


def _append_item(lines: list[str], item: str) -> bool:
    """Add `- item` to the top-level blocked_users list (block style, or `[]` turned into it)."""
    item_text = _yaml_line("x", item)[len("x: "):]
    head = next((i for i, line in enumerate(lines) if re.match(r"^blocked_users[ \t]*:", line)),
                None)
    if head is None:
        lines.append(("" if not lines or lines[-1].endswith("\n") else "\n")
                     + f"blocked_users:\n- {item_text}\n")
        return True
    m = re.match(r"^blocked_users[ \t]*:[ \t]*(?:\[[ \t]*\]|null|~)?[ \t]*(#.*)?(\r?\n)?$",
                 lines[head])
    if m is None:  # a non-empty flow list or something stranger: the caller re-dumps
        return False
    last = None
    for i in range(head + 1, len(lines)):
        if re.match(r"^[ \t]*-(?:[ \t]|\r?\n|$)", lines[i]):
            last = i
        elif lines[i].strip() and not lines[i].lstrip().startswith("#"):
            break
    if last is None:
        comment = f" {m.group(1)}" if m.group(1) else ""
        lines[head] = f"blocked_users:{comment}\n- {item_text}\n"
    else:
        indent = lines[last][: len(lines[last]) - len(lines[last].lstrip(" \t"))]
        if not lines[last].endswith("\n"):
            lines[last] += "\n"
        lines.insert(last + 1, f"{indent}- {item_text}\n")
    return True
