"""The READ tools logs.search and logs.count_by over any LogSource (JSONL or Loki)."""

from __future__ import annotations

from collections import Counter
from typing import Annotated, Any, Generic, Literal, Self, TypeVar

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from tools.base import Effect, ReadTool, ToolResult, ToolSpec
from tools.logs.records import LogQuery, LogSource, LogSourceError

Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,199}$")]
Level = Annotated[str, Field(pattern=r"^[A-Za-z]{1,20}$")]
MISSING = "(missing)"


class _FilterArgs(BaseModel):
    """`services` (or `service`) and `levels` (or `level`) accept one value or a list."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    services: list[Name] | None = Field(default=None, alias="service", max_length=50)
    levels: list[Level] | None = Field(default=None, alias="level", max_length=10)
    contains: str | None = Field(default=None, min_length=1, max_length=500)
    start: AwareDatetime
    end: AwareDatetime

    @field_validator("services", "levels", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @model_validator(mode="after")
    def _window(self) -> Self:
        if self.start >= self.end:
            raise ValueError("start must be before end")
        return self

    def to_query(self, limit: int | None) -> LogQuery:
        return LogQuery(start=self.start, end=self.end, services=self.services,
                        levels=self.levels, contains=self.contains, limit=limit)


class SearchArgs(_FilterArgs):
    limit: int = Field(default=200, ge=1, le=1000)


class CountByArgs(_FilterArgs):
    field: Literal["level", "service", "event_type"]


A = TypeVar("A", bound=_FilterArgs)


class _LogTool(Generic[A]):
    spec: ToolSpec
    args_model: type[A]

    def __init__(self, source: LogSource) -> None:
        self.source = source

    def run(self, args: BaseModel | dict[str, Any]) -> ToolResult:
        try:
            raw = args.model_dump(by_alias=True) if isinstance(args, BaseModel) else args
            parsed = args if isinstance(args, self.args_model) else \
                self.args_model.model_validate(raw)
        except ValidationError as exc:
            return ToolResult.fail(f"{self.spec.name}: invalid arguments: {exc}")
        try:
            return self._run(parsed)
        except LogSourceError as exc:
            return ToolResult.fail(f"{self.spec.name}: {self.source.name}: {exc}",
                                   source=self.source.name, query=exc.query,
                                   upstream=exc.message, status=exc.status)

    def _run(self, args: A) -> ToolResult:
        raise NotImplementedError


def _echo(args: _FilterArgs) -> dict[str, Any]:
    return {"services": args.services, "levels": args.levels, "contains": args.contains,
            "start": args.start.isoformat(), "end": args.end.isoformat()}


class Search(_LogTool[SearchArgs]):
    spec = ToolSpec("logs.search",
                    "Log lines in [start, end) filtered by service(s), level(s) and a message "
                    "substring, oldest first / newest last, at most `limit` (<= 1000). Messages "
                    "are raw (not redacted).", SearchArgs, Effect.READ)
    args_model = SearchArgs

    def _run(self, args: SearchArgs) -> ToolResult:
        # Ask for one more than the limit to tell the caller whether there was more.
        records = list(self.source.query(args.to_query(args.limit + 1)))
        truncated = len(records) > args.limit
        records = sorted(records[:args.limit], key=lambda r: r.ts)
        data = {"source": self.source.name, "filters": _echo(args), "count": len(records),
                "truncated": truncated, "records": [r.to_dict() for r in records],
                "stats": dict(self.source.stats)}
        if not records:
            return ToolResult("no_data", data, "no log lines match the filters in the window")
        return ToolResult.ok(**data)


class CountBy(_LogTool[CountByArgs]):
    spec = ToolSpec("logs.count_by",
                    "Count log lines in [start, end) matching the filters, grouped by level, "
                    "service or event_type (most frequent first).", CountByArgs, Effect.READ)
    args_model = CountByArgs

    def __init__(self, source: LogSource, max_records: int = 5_000_000) -> None:
        super().__init__(source)
        self.max_records = max_records

    def _run(self, args: CountByArgs) -> ToolResult:
        counts: Counter[str] = Counter()
        for record in self.source.query(args.to_query(self.max_records)):
            value = record.get(args.field)
            counts[MISSING if value in (None, "") else str(value)] += 1
        total = sum(counts.values())
        data = {"source": self.source.name, "field": args.field, "filters": _echo(args),
                "counts": dict(counts.most_common()), "total": total,
                "capped": total >= self.max_records, "stats": dict(self.source.stats)}
        if not total:
            return ToolResult("no_data", data, "no log lines match the filters in the window")
        return ToolResult.ok(**data)


def logs_tools(source: LogSource) -> list[ReadTool]:
    """The log READ tools bound to `source` (a JsonlSource or a LokiSource)."""
    # patterns.py builds on this module's argument models, so it is imported here, not on top.
    from tools.logs.patterns import Patterns  # noqa: PLC0415

    return [Search(source), CountBy(source), Patterns(source)]
