"""What every specialist node needs: database, tools, policy, reasoner, executor, config."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel
from sqlalchemy import select

from agents.reasoner import RuleReasoner
from agents.specialists.config import SpecialistConfig
from core.database import Database
from core.models import Alert
from core.telemetry import start_span, tracer
from guardrails.executor import Executor
from guardrails.policy import Policy
from tools.base import ReadTool, ToolResult
from tools.registry import ToolRegistry

if TYPE_CHECKING:
    from opentelemetry.trace import TracerProvider

    from agents.llm import LLM


@dataclass
class GraphDeps:
    db: Database
    registry: ToolRegistry
    policy: Policy
    reasoner: RuleReasoner
    executor: Executor
    config: SpecialistConfig = field(default_factory=SpecialistConfig)
    llm: LLM | None = None  # LLM mode; None: the rules decide everything
    tracer_provider: TracerProvider | None = None  # None: the global one (setup_tracing)

    async def read(self, tool_name: str, args: dict[str, Any]) -> ToolResult | None:
        """Run a READ tool off the event loop; None when the tool is not configured here."""
        if tool_name not in self.registry.names():
            return None
        tool = self.registry.get(tool_name)
        assert isinstance(tool, ReadTool)
        return await self.run_read(tool, tool.spec.args.model_validate(args))

    async def run_read(self, tool: ReadTool, args: BaseModel) -> ToolResult:
        """Run a READ tool off the event loop, in a span (a child of the graph node's)."""
        spans = tracer("metaops.tools", self.tracer_provider)
        with start_span(spans, f"tool {tool.spec.name}", attributes={
                "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": tool.spec.name,
                "metaops.tool.effect": "read"}) as span:
            result = await asyncio.to_thread(tool.run, args)
            span.set_attribute("metaops.tool.status", result.status)
            return result

    async def alert_rows(self, incident_id: int) -> list[Alert]:
        async with self.db.read() as session:
            return list((await session.scalars(
                select(Alert).where(Alert.incident_id == incident_id).order_by(Alert.id))).all())
