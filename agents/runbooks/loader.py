"""Loads and validates `runbooks/*.yaml`; errors name the file and the offending field.

YAML is read with a strict safe loader: duplicate keys are refused, and only true/false are
booleans (YAML 1.1 would turn `variant: off` into False, a classic flag-toggle bug).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from agents.runbooks.errors import RunbookLoadError
from agents.runbooks.schema import Runbook
from agents.runbooks.templates import check_runbook

_BOOL_TAG = "tag:yaml.org,2002:bool"


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 booleans and duplicate keys refused."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


_StrictLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != _BOOL_TAG]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_StrictLoader.add_implicit_resolver(
    _BOOL_TAG, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))


def default_runbooks_dir() -> Path:
    """The repository's `runbooks/` folder (next to the `agents` package)."""
    return Path(__file__).resolve().parents[2] / "runbooks"


def _field(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _describe(err: Any) -> str:
    if err["type"] == "extra_forbidden":
        return f"unknown key {err['loc'][-1]!r}"
    return str(err["msg"])


def load_runbook_file(path: Path | str) -> Runbook:
    """Parse, validate and check one runbook file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RunbookLoadError(path, f"cannot read: {exc}") from exc
    try:
        data = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise RunbookLoadError(path, f"invalid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise RunbookLoadError(path, "a runbook file holds one mapping (name, match, steps, ...)")
    try:
        runbook = Runbook.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        first = _field(tuple(errors[0]["loc"]))
        detail = "; ".join(f"{_field(tuple(e['loc']))}: {_describe(e)}" for e in errors)
        raise RunbookLoadError(path, detail if len(errors) > 1 else _describe(errors[0]),
                               field=first) from exc
    problems = check_runbook(runbook)
    if problems:
        field, _ = problems[0]
        detail = "; ".join(f"{f}: {m}" for f, m in problems)
        raise RunbookLoadError(path, detail if len(problems) > 1 else problems[0][1],
                               field=field)
    return runbook


def load_runbooks(directory: Path | str | None = None) -> list[Runbook]:
    """Every `*.yaml` runbook in `directory` (default: the repo's `runbooks/`), in file-name
    order; two runbooks with the same name are refused."""
    folder = Path(directory) if directory is not None else default_runbooks_dir()
    if not folder.is_dir():
        raise RunbookLoadError(folder, "runbooks folder not found")
    runbooks: list[Runbook] = []
    origin: dict[str, Path] = {}
    for path in sorted(folder.glob("*.yaml")):
        runbook = load_runbook_file(path)
        if runbook.name in origin:
            raise RunbookLoadError(path, f"duplicate runbook name {runbook.name!r} "
                                         f"(also in {origin[runbook.name].name})", field="name")
        origin[runbook.name] = path
        runbooks.append(runbook)
    return runbooks
