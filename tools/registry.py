"""The tool registry: every tool the agents may call, by name."""

from __future__ import annotations

from collections.abc import Iterable

from tools.base import ReadTool, ToolSpec, WriteTool

Tool = ReadTool | WriteTool


class ToolRegistry:
    def __init__(self, tools: Iterable[Tool] = ()) -> None:
        self._tools: dict[str, Tool] = {}
        for tool in tools:
            self.register(tool)

    def register(self, tool: Tool) -> None:
        if tool.spec.name in self._tools:
            raise ValueError(f"tool {tool.spec.name} registered twice")
        self._tools[tool.spec.name] = tool

    def get(self, name: str) -> Tool:
        try:
            return self._tools[name]
        except KeyError:
            raise KeyError(f"no tool named {name!r}") from None

    def specs(self) -> dict[str, ToolSpec]:
        return {name: tool.spec for name, tool in self._tools.items()}

    def names(self) -> list[str]:
        return sorted(self._tools)
