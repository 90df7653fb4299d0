"""The READ tool logs.patterns: a window's error and warning lines mined into patterns."""

from __future__ import annotations

from typing import Self

from pydantic import Field, model_validator

from tools.base import Effect, ToolResult, ToolSpec
from tools.logs.mining import PatternMiner
from tools.logs.records import LogQuery, LogSource, norm_level
from tools.logs.tools import _echo, _FilterArgs, _LogTool

DEFAULT_LEVELS = ["ERROR", "CRITICAL", "WARNING"]
_MINABLE = frozenset({"ERROR", "CRITICAL", "WARNING"})  # after norm_level (FATAL -> CRITICAL)


class PatternsArgs(_FilterArgs):
    top: int = Field(default=10, ge=1, le=50)

    @model_validator(mode="after")
    def _minable_levels(self) -> Self:
        # Patterns are reported per level class (error, warning): other levels have no class.
        bad = [lv for lv in self.levels or [] if norm_level(lv) not in _MINABLE]
        if bad:
            raise ValueError(f"levels must be error, critical/fatal or warning, not {bad}")
        return self


class Patterns(_LogTool[PatternsArgs]):
    spec = ToolSpec("logs.patterns",
                    "Error and warning log lines in [start, end) (filtered by service(s), "
                    "level(s) and a message substring; default levels ERROR, CRITICAL, WARNING) "
                    "mined into message patterns: per pattern its template, level class, count, "
                    "share of its class's lines, first/last seen, services and one exemplar; "
                    "errors first, then warnings, at most `top` (<= 50) of each. Templates and "
                    "exemplars are raw (not redacted).", PatternsArgs, Effect.READ)
    args_model = PatternsArgs

    def __init__(self, source: LogSource, max_records: int = 20_000_000) -> None:
        super().__init__(source)
        self.max_records = max_records

    def _run(self, args: PatternsArgs) -> ToolResult:
        levels = args.levels or DEFAULT_LEVELS
        query = LogQuery(start=args.start, end=args.end, services=args.services, levels=levels,
                         contains=args.contains, limit=self.max_records)
        miner = PatternMiner(levels=levels)
        seen = miner.add_all(self.source.query(query))
        mined = miner.result(args.top)
        filters = {**_echo(args), "levels": levels}
        data = {"source": self.source.name, "filters": filters, **mined,
                "capped": seen >= self.max_records, "stats": dict(self.source.stats)}
        if not any(mined["totals"].values()):
            return ToolResult("no_data", data,
                              "no error or warning log lines match the filters in the window")
        return ToolResult.ok(**data)
