"""What every specialist node needs: database, tools, policy, reasoner, executor, config."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from agents.reasoner import RuleReasoner
from agents.specialists.config import SpecialistConfig
from core.database import Database
from core.models import Alert
from guardrails.executor import Executor
from guardrails.policy import Policy
from tools.base import ReadTool, ToolResult
from tools.registry import ToolRegistry

if TYPE_CHECKING:
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

    async def read(self, tool_name: str, args: dict[str, Any]) -> ToolResult | None:
        """Run a READ tool off the event loop; None when the tool is not configured here."""
        if tool_name not in self.registry.names():
            return None
        tool = self.registry.get(tool_name)
        assert isinstance(tool, ReadTool)
        parsed = tool.spec.args.model_validate(args)
        return await asyncio.to_thread(tool.run, parsed)

    async def alert_rows(self, incident_id: int) -> list[Alert]:
        async with self.db.read() as session:
            return list((await session.scalars(
                select(Alert).where(Alert.incident_id == incident_id).order_by(Alert.id))).all())
