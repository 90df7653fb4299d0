"""READ tools `metrics.query` and `metrics.golden_signals` on Prometheus or the request log."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Generic, Self, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from tools.base import Effect, ToolResult, ToolSpec
from tools.metrics.catalog import DEFAULT_METRICS, MetricNames, Signal, default_catalog, render
from tools.metrics.embedded import embedded_signals
from tools.metrics.prometheus import PrometheusClient, PrometheusError, QueryResult, finite
from tools.registry import Tool

# (start, end) -> the request-log events of that window (more is fine: they are filtered again).
RequestLogProvider = Callable[[datetime, datetime], Iterable[Mapping[str, Any]]]

A = TypeVar("A", bound=BaseModel)
ServiceName = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^\r\n\x00]+$")]
MAX_SERIES = 200


def _aware(value: datetime | None) -> datetime | None:
    return value if value is None or value.tzinfo else value.replace(tzinfo=UTC)


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MetricsQueryArgs(_Args):
    """An instant query at `time` (default now), or a range query when `start` and `end` are set."""

    query: str = Field(min_length=1, max_length=20_000)
    time: datetime | None = None
    start: datetime | None = None
    end: datetime | None = None
    step_seconds: float = Field(default=60.0, gt=0, le=86_400)

    @model_validator(mode="after")
    def _range(self) -> Self:
        if (self.start is None) != (self.end is None):
            raise ValueError("give both start and end for a range query, or neither")
        if self.start is not None and self.time is not None:
            raise ValueError("give time (instant) or start/end (range), not both")
        if self.start and self.end and _aware(self.end) <= _aware(self.start):  # type: ignore[operator]
            raise ValueError("end must be after start")
        return self


class GoldenSignalsArgs(_Args):
    """Signals over [start, end], or over the `window_seconds` before `at` (default now)."""

    service: ServiceName
    at: datetime | None = None
    window_seconds: float = Field(default=300.0, gt=0, le=31 * 86_400)
    start: datetime | None = None
    end: datetime | None = None

    @model_validator(mode="after")
    def _window(self) -> Self:
        if (self.start is None) != (self.end is None):
            raise ValueError("give both start and end, or neither")
        if self.start is not None and self.at is not None:
            raise ValueError("give at (with window_seconds) or start/end, not both")
        if self.start and self.end and _aware(self.end) <= _aware(self.start):  # type: ignore[operator]
            raise ValueError("end must be after start")
        return self

    def window(self, now: datetime) -> tuple[datetime | None, datetime, float]:
        """(evaluation time or None for server now, window end, window length in seconds)."""
        if self.start is not None and self.end is not None:
            start, end = _aware(self.start), _aware(self.end)
            assert start is not None and end is not None
            return end, end, (end - start).total_seconds()
        at = _aware(self.at)
        return at, at or now, self.window_seconds


def _coerce(model: type[A], args: BaseModel | Mapping[str, Any]) -> A:
    if isinstance(args, model):
        return args
    return model.model_validate(args.model_dump() if isinstance(args, BaseModel) else dict(args))


def _series_json(result: QueryResult) -> list[dict[str, Any]]:
    return [{"labels": s.labels,
             "points": [[ts, finite(v)] for ts, v in s.points]}
            for s in result.series[:MAX_SERIES]]


def _error_data(exc: PrometheusError) -> dict[str, Any]:
    return {"query": exc.query, "error_type": exc.error_type, "upstream_error": exc.message,
            "http_status": exc.status_code}


class _Tool(Generic[A]):
    spec: ToolSpec
    args_model: type[A]

    def run(self, args: BaseModel | Mapping[str, Any]) -> ToolResult:
        try:
            parsed = _coerce(self.args_model, args)
        except ValidationError as exc:
            return ToolResult.fail(f"{self.spec.name}: invalid arguments: {exc}")
        return self._run(parsed)

    def _run(self, args: A) -> ToolResult:
        raise NotImplementedError


class MetricsQuery(_Tool[MetricsQueryArgs]):
    spec = ToolSpec("metrics.query",
                    "Run a PromQL query on Prometheus: instant (at `time`, default now) or range "
                    "(`start`, `end`, `step_seconds`). Returns the series with labels and points; "
                    "NaN/Inf become null.", MetricsQueryArgs, Effect.READ)
    args_model = MetricsQueryArgs

    def __init__(self, client: PrometheusClient) -> None:
        self.client = client

    def _run(self, args: MetricsQueryArgs) -> ToolResult:
        try:
            if args.start is not None and args.end is not None:
                result = self.client.query_range(args.query, _aware(args.start),  # type: ignore[arg-type]
                                                 _aware(args.end), args.step_seconds)  # type: ignore[arg-type]
            else:
                result = self.client.query(args.query, _aware(args.time))
        except PrometheusError as exc:
            return ToolResult.fail(f"{self.spec.name}: {exc}", **_error_data(exc))
        data = {"query": args.query, "result_type": result.result_type,
                "series": _series_json(result), "series_count": len(result.series),
                "truncated": len(result.series) > MAX_SERIES, "warnings": result.warnings}
        if not result.series:
            return ToolResult("no_data", data, f"{self.spec.name}: no series matched: "
                                               f"{args.query}")
        return ToolResult.ok(**data)


class GoldenSignals(_Tool[GoldenSignalsArgs]):
    spec = ToolSpec("metrics.golden_signals",
                    "The LLM golden signals of a service: TTFT p50/p99, inter-token latency p99 "
                    "(seconds), error rate by type, input/output tokens per second, burn rate "
                    "(USD/h), KV-cache usage and GPU utilisation; at a time over a window "
                    "(default the last 5 minutes) or over [start, end]. Each signal is a value or "
                    "null with the reason.", GoldenSignalsArgs, Effect.READ)
    args_model = GoldenSignalsArgs

    def __init__(self, client: PrometheusClient | None = None,
                 request_log: RequestLogProvider | None = None,
                 catalog: Mapping[str, Signal] | None = None,
                 names: MetricNames = DEFAULT_METRICS,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        if client is None and request_log is None:
            raise ValueError("golden signals need a Prometheus client or a request log")
        self.client = client
        self.request_log = request_log
        self.catalog = dict(catalog) if catalog is not None else default_catalog(names)
        self.label = names.service_label
        self.clock = clock

    def _run(self, args: GoldenSignalsArgs) -> ToolResult:
        at, end, seconds = args.window(self.clock())
        window = {"start": (end - timedelta(seconds=seconds)).isoformat(),
                  "end": end.isoformat(), "seconds": seconds}
        if self.client is None:
            assert self.request_log is not None
            start = end - timedelta(seconds=seconds)
            computed = embedded_signals(self.request_log(start, end), args.service, start, end)
            signals, meta = computed["signals"], computed["meta"]
            source = "request_log"
        else:
            try:
                signals = {name: self._signal(sig, args.service, at, seconds)
                           for name, sig in self.catalog.items()}
            except PrometheusError as exc:
                return ToolResult.fail(f"{self.spec.name}: {exc}", service=args.service,
                                       **_error_data(exc))
            meta, source = {}, "prometheus"
        data = {"service": args.service, "source": source, "window": window,
                "signals": signals, "meta": meta}
        if all(s["value"] is None for s in signals.values()):
            return ToolResult("no_data", data,
                              f"{self.spec.name}: no signal has data for {args.service!r}")
        return ToolResult.ok(**data)

    def _signal(self, sig: Signal, service: str, at: datetime | None,
                seconds: float) -> dict[str, Any]:
        query = render(sig.template, service, seconds, self.label)
        out: dict[str, Any] = {"value": None, "unit": sig.unit, "reason": None, "query": query}
        try:
            result = self.client.query(query, at)  # type: ignore[union-attr]
        except PrometheusError as exc:
            if exc.error_type in ("connection", "timeout", "http"):
                raise
            out["reason"] = f"query failed: {exc.error_type}: {exc.message}"
            return out
        if sig.by is not None:
            parts = {s.labels.get(sig.by, ""): finite(s.value) for s in result.series if s.points}
            out["by"] = parts
            known = [v for v in parts.values() if v is not None]
            if known:
                out["value"] = sum(known)
            else:
                out["reason"] = "no series matched (no such metric, or no requests/errors)"
            return out
        values = [v for v in (finite(x) for x in result.values()) if v is not None]
        if not values:
            out["reason"] = ("no series matched" if not result.series
                             else "no finite value (no samples in the window)")
        else:
            out["value"] = max(values)
            if len(values) > 1:
                out["series"] = len(values)
        return out


def metrics_tools(prom_client: PrometheusClient | None,
                  request_log_provider: RequestLogProvider | None) -> list[Tool]:
    """The metrics tools: `metrics.query` (needs Prometheus) and `metrics.golden_signals`
    (Prometheus, else the request log); none when neither source is given."""
    tools: list[Tool] = []
    if prom_client is not None:
        tools.append(MetricsQuery(prom_client))
    if prom_client is not None or request_log_provider is not None:
        tools.append(GoldenSignals(prom_client, request_log_provider))
    return tools
