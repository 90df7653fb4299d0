"""Sandboxed rendering of step args and `when` expressions (Jinja2, immutable sandbox).

What a template can read is only the context built here::

    alert    {name, severity, service, labels}   -- never annotations (untrusted free text)
    labels   the alert's labels (shorthand for alert.labels)
    findings {step_id: data returned by that earlier step,
              log_summarizer / cost_investigator: the finding of that specialist, when it ran}
    vars     the runbook's own literal `vars`

There are no globals (no range, dict, lipsum, cycler, ...), only a few pure filters, no loader
(no include/import/extends), no string or list repetition and no `**`; private and unsafe
attributes (`''.__class__`) raise `TemplateSecurityError`; an undefined name raises. On a mapping,
`a.b` means the key "b" when there is one (so `findings.x.items` is data, not `dict.items`).

Alert text is *data*: a label or finding value is substituted as a string and never parsed or
evaluated as a template itself.

Typing rule for args. A string arg is a template; anything else (number, bool, null, and the
non-string leaves of lists and dicts) is a literal and passes through unchanged.
  * A string with no `{{`, `{%` or `{#` is returned as is.
  * A string that is exactly one `{{ expression }}` (surrounding whitespace ignored) gives the
    expression's own value if it is a string, an int, a float or a bool (so
    `replicas: "{{ vars.replicas }}"` yields 4, not "4"). Any other result (None, a list, a dict,
    an object) is an error.
  * Every other template renders to a string. Printing None, a list or a dict inside it is an
    error, so no Python repr ever leaks into an arg.
A `when` is a bare expression (no braces) that must evaluate to a real bool, not merely truthy.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from jinja2 import StrictUndefined, TemplateError, Undefined, UndefinedError, nodes
from jinja2.exceptions import SecurityError
from jinja2.filters import FILTERS
from jinja2.meta import find_undeclared_variables
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment
from pydantic import JsonValue

from agents.runbooks.context import AlertContext, AlertLike
from agents.runbooks.errors import TemplateRenderError, TemplateSecurityError
from agents.runbooks.schema import Runbook, Step
from agents.specialist_names import FINDING_SPECIALISTS

CONTEXT_NAMES = frozenset({"alert", "labels", "findings", "vars"})

SAFE_FILTERS = (
    "abs", "d", "default", "first", "float", "int", "join", "last", "length", "lower",
    "replace", "round", "string", "trim", "upper",
)

Scalar = str | int | float | bool

_SINGLE_EXPRESSION = re.compile(r"^\{\{[-+]?(?P<expr>.*?)[-+]?\}\}$", re.DOTALL)


class _Sandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox, minus the operators that let a short template allocate a lot."""

    intercepted_binops = frozenset({"*", "**"})

    def getattr(self, obj: Any, attribute: str) -> Any:
        # Data first: `findings.x.items` is the key "items", not the dict method.
        if isinstance(obj, Mapping) and attribute in obj:
            return obj[attribute]
        return super().getattr(obj, attribute)

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "**":
            raise SecurityError("the ** operator is not allowed in runbook templates")
        if isinstance(left, str | list | tuple) or isinstance(right, str | list | tuple):
            raise SecurityError("repeating strings or lists is not allowed in runbook templates")
        return super().call_binop(context, operator, left, right)


def _finalize(value: Any) -> Any:
    if isinstance(value, str | int | float | bool | Undefined):
        return value  # an Undefined raises when printed, with its own (security) error
    kind = "None" if value is None else type(value).__name__
    raise TemplateError(f"cannot print a {kind} inside a string template")


def _make_env() -> _Sandbox:
    env = _Sandbox(undefined=StrictUndefined, autoescape=False, finalize=_finalize)
    env.globals.clear()
    env.filters = {name: FILTERS[name] for name in SAFE_FILTERS}
    return env


ENV = _make_env()


def is_template(source: str) -> bool:
    return "{{" in source or "{%" in source or "{#" in source


def build_context(runbook: Runbook, alert: AlertLike | AlertContext,
                  findings: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The only data a template sees. Annotations are not part of AlertContext at all."""
    ctx = AlertContext.of(alert)
    return {
        "alert": ctx.as_template_data(),
        "labels": dict(ctx.labels),
        "findings": dict(findings or {}),
        "vars": runbook.vars,
    }


def _single_expression(source: str) -> str | None:
    """The expression text if `source` is exactly one `{{ ... }}` output, else None."""
    stripped = source.strip()
    body = ENV.parse(stripped).body
    if (len(body) != 1 or not isinstance(body[0], nodes.Output) or len(body[0].nodes) != 1
            or isinstance(body[0].nodes[0], nodes.TemplateData)):
        return None
    found = _SINGLE_EXPRESSION.match(stripped)
    return found.group("expr") if found else None


def _raise_if_undefined(value: Any) -> None:
    if isinstance(value, Undefined):
        str(value)  # StrictUndefined raises its own UndefinedError or SecurityError here
        raise UndefinedError("expression is undefined")


def _scalar(value: Any) -> Scalar:
    _raise_if_undefined(value)
    if isinstance(value, bool | int | str):
        return value if type(value) in (bool, int, str) else str(value)  # Markup -> str
    if isinstance(value, float):
        if not math.isfinite(value):
            raise TemplateError(f"expression gives a non-finite number {value!r}")
        return value
    kind = "None" if value is None else type(value).__name__
    raise TemplateError(f"expression gives a {kind}, not a string, number or bool")


@contextmanager
def _errors(runbook: str, step: str, arg: str) -> Iterator[None]:
    """Translate Jinja errors into typed ones naming runbook, step and arg."""
    try:
        yield
    except SecurityError as exc:
        raise TemplateSecurityError(runbook, step, arg, f"unsafe template: {exc}") from exc
    except UndefinedError as exc:
        raise TemplateRenderError(runbook, step, arg, f"undefined: {exc}") from exc
    except TemplateError as exc:
        raise TemplateRenderError(runbook, step, arg, f"{type(exc).__name__}: {exc}") from exc
    except (ArithmeticError, LookupError, RecursionError, TypeError, ValueError) as exc:
        raise TemplateRenderError(runbook, step, arg, f"{type(exc).__name__}: {exc}") from exc


def render_value(source: str, context: Mapping[str, Any], *, runbook: str = "?",
                 step: str = "?", arg: str = "?") -> Scalar:
    """Render one string by the typing rule in this module's docstring."""
    if not is_template(source):
        return source
    with _errors(runbook, step, arg):
        expr = _single_expression(source)
        if expr is not None:
            return _scalar(ENV.compile_expression(expr, undefined_to_none=False)(**context))
        return ENV.from_string(source).render(**context)


def _render_json(value: JsonValue, context: Mapping[str, Any], runbook: str, step: str,
                 path: str) -> JsonValue:
    if isinstance(value, str):
        return render_value(value, context, runbook=runbook, step=step, arg=path)
    if isinstance(value, list):
        return [_render_json(v, context, runbook, step, f"{path}[{i}]")
                for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {k: _render_json(v, context, runbook, step, f"{path}.{k}")
                for k, v in value.items()}
    return value


def render_args(runbook: Runbook, step: Step, context: Mapping[str, Any]) -> dict[str, JsonValue]:
    """The step's args with every string leaf rendered (see the typing rule above)."""
    return {name: _render_json(value, context, runbook.name, step.id, f"args.{name}")
            for name, value in step.args.items()}


def evaluate_when(runbook: Runbook, step: Step, context: Mapping[str, Any]) -> bool:
    """True if the step has no `when`, else the sandboxed expression's value (a bool)."""
    if step.when is None:
        return True
    with _errors(runbook.name, step.id, "when"):
        value = ENV.compile_expression(step.when, undefined_to_none=False)(**context)
        _raise_if_undefined(value)
        if not isinstance(value, bool):
            raise TemplateError(f"`when` must give a bool, got {type(value).__name__}")
        return value


# ---------------------------------------------------------------------------------------------
# Load-time checks: syntax, the names a template may read, and findings of earlier steps only.


def _template_sources(value: JsonValue, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        if is_template(value):
            yield path, value
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _template_sources(v, f"{path}[{i}]")
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _template_sources(v, f"{path}.{k}")


def _findings_refs(tree: nodes.Node) -> Iterator[str]:
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        if isinstance(node, nodes.Getattr):
            if isinstance(node.node, nodes.Name) and node.node.name == "findings":
                yield node.attr
        elif (isinstance(node, nodes.Getitem) and isinstance(node.node, nodes.Name)
              and node.node.name == "findings" and isinstance(node.arg, nodes.Const)
              and isinstance(node.arg.value, str)):
            yield node.arg.value


def _check_tree(tree: nodes.Template, earlier: set[str], all_ids: set[str]) -> list[str]:
    problems: list[str] = []
    unknown = sorted(find_undeclared_variables(tree) - CONTEXT_NAMES)
    if unknown:
        problems.append(f"unknown name(s) {', '.join(unknown)}; templates can read only "
                        f"{', '.join(sorted(CONTEXT_NAMES))}")
    for ref in _findings_refs(tree):
        if ref in FINDING_SPECIALISTS:
            continue
        if ref not in all_ids:
            problems.append(f"findings.{ref}: there is no step {ref!r}")
        elif ref not in earlier:
            problems.append(f"findings.{ref}: step {ref!r} does not run before this one")
    return problems


def check_runbook(runbook: Runbook) -> list[tuple[str, str]]:
    """Problems as (field, message): bad syntax, unknown names, findings of later steps."""
    problems: list[tuple[str, str]] = []
    all_ids = {s.id for s in runbook.steps}
    earlier: set[str] = set()
    for i, step in enumerate(runbook.steps):
        where = f"steps[{i}]"
        if step.id in FINDING_SPECIALISTS:
            problems.append((f"{where}.id", f"{step.id!r} is a specialist's findings name; "
                                            "choose another step id"))
        checks: list[tuple[str, str]] = [
            (f"{where}.{path}", source) for path, source in _template_sources(
                dict(step.args), "args")]
        if step.when is not None:
            if is_template(step.when):
                problems.append((f"{where}.when", "`when` is a bare expression, without {{ }}"))
            else:
                checks.append((f"{where}.when", "{{ " + step.when + " }}"))
        for field, source in checks:
            try:
                tree = ENV.parse(source)
            except TemplateError as exc:
                problems.append((field, f"template syntax error: {exc}"))
                continue
            problems.extend((field, msg) for msg in _check_tree(tree, earlier, all_ids))
        earlier.add(step.id)
    return problems
