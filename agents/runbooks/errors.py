"""Typed runbook errors: each names the file or the runbook, step and arg it is about."""

from __future__ import annotations

from pathlib import Path


class RunbookError(Exception):
    """Base of every runbook error."""


class RunbookLoadError(RunbookError):
    """A runbook file could not be read, parsed or validated; `field` is a dotted path."""

    def __init__(self, path: Path | str, message: str, field: str | None = None) -> None:
        self.path = str(path)
        self.field = field
        self.message = message
        where = f"{self.path}: {field}" if field else self.path
        super().__init__(f"{where}: {message}")


class TemplateRenderError(RunbookError):
    """A step's arg (or its `when`) failed to render; `arg` is a dotted path or "when"."""

    def __init__(self, runbook: str, step: str, arg: str, message: str) -> None:
        self.runbook = runbook
        self.step = step
        self.arg = arg
        self.message = message
        super().__init__(f"runbook {runbook!r} step {step!r} {arg}: {message}")


class TemplateSecurityError(TemplateRenderError):
    """The template tried something the sandbox forbids (private attributes, unsafe calls)."""
