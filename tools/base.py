"""The tool contract: specs, results, previews and preconditions shared by every tool family."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel


class Effect(StrEnum):
    """What running a tool does to the world; policy keys its defaults on this."""

    READ = "read"
    WRITE = "write"
    DESTRUCTIVE = "destructive"


@dataclass(frozen=True, slots=True)
class ToolSpec:
    name: str
    description: str
    args: type[BaseModel]
    effect: Effect


@dataclass(frozen=True, slots=True)
class ToolResult:
    """status ok | error | no_data; an error names the exact query and the upstream message."""

    status: Literal["ok", "error", "no_data"]
    data: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    @classmethod
    def ok(cls, **data: Any) -> ToolResult:
        return cls("ok", data)

    @classmethod
    def fail(cls, error: str, **data: Any) -> ToolResult:
        return cls("error", data, error)


@dataclass(frozen=True, slots=True)
class Preview:
    """What a write will change: words for humans, a diff, and current -> proposed values."""

    summary: str
    diff: str = ""
    current: Any = None
    proposed: Any = None


@runtime_checkable
class ReadTool(Protocol):
    spec: ToolSpec

    def run(self, args: BaseModel) -> ToolResult: ...


@runtime_checkable
class WriteTool(Protocol):
    """A WRITE or DESTRUCTIVE tool. Every method is synchronous and safe to retry."""

    spec: ToolSpec

    def preview(self, args: BaseModel) -> Preview: ...

    def snapshot(self, args: BaseModel) -> str:
        """The precondition: an opaque token that changes whenever the target changes."""
        ...

    def execute(self, args: BaseModel, *, action_id: str, approved_by: list[str],
                snapshot: str) -> ToolResult:
        """Apply the change once; refuse (error 'stale: ...') if the snapshot no longer holds."""
        ...

    def reconcile(self, action_id: str) -> bool | None:
        """After a crash: True if the change of `action_id` is in place, False if not, None if
        the tool cannot tell."""
        ...

    def inverse(self, args: BaseModel, before: Preview) -> tuple[str, dict[str, Any]] | None:
        """The (tool, args) that undoes this change, recorded before it runs; None if none."""
        ...
