"""A small synchronous client for Prometheus' /api/v1/query and /api/v1/query_range."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx


class PrometheusError(Exception):
    """A failed query: the PromQL, Prometheus' errorType (or `connection`/`http`) and message."""

    def __init__(self, query: str, error_type: str, message: str,
                 status_code: int | None = None) -> None:
        self.query = query
        self.error_type = error_type
        self.message = message
        self.status_code = status_code
        code = f" HTTP {status_code}" if status_code is not None else ""
        super().__init__(f"prometheus {error_type}{code}: {message} (query: {query})")


@dataclass(frozen=True, slots=True)
class Series:
    """One series: its labels and (unix seconds, value) points; one point for vector/scalar."""

    labels: dict[str, str]
    points: list[tuple[float, float]]

    @property
    def value(self) -> float:
        return self.points[-1][1]


@dataclass(frozen=True, slots=True)
class QueryResult:
    """A successful query: resultType, its series, and any warnings/infos Prometheus attached."""

    query: str
    result_type: str
    series: list[Series]
    warnings: list[str] = field(default_factory=list)

    def values(self) -> list[float]:
        return [s.value for s in self.series if s.points]


def _ts(value: datetime | float) -> str:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("naive datetime: give a timezone")
        return f"{value.timestamp():.3f}"
    return f"{float(value):.3f}"


def _point(raw: Any) -> tuple[float, float]:
    ts, val = raw
    return float(ts), float(val)


def _parse(query: str, body: dict[str, Any]) -> QueryResult:
    data = body.get("data") or {}
    rtype = str(data.get("resultType", ""))
    raw: Any = data.get("result") or []
    warnings = [str(w) for w in (body.get("warnings") or []) + (body.get("infos") or [])]
    try:
        if rtype in ("scalar", "string"):
            if rtype == "string":
                raise PrometheusError(query, "unsupported", "string results are not numeric")
            series = [Series({}, [_point(raw)])]
        elif rtype == "vector":
            series = [Series(dict(r.get("metric") or {}), [_point(r["value"])])
                      for r in raw if "value" in r]
        elif rtype == "matrix":
            series = [Series(dict(r.get("metric") or {}), [_point(p) for p in r["values"]])
                      for r in raw if "values" in r]
        else:
            raise PrometheusError(query, "bad_response", f"unknown resultType {rtype!r}")
    except (KeyError, TypeError, ValueError) as exc:
        raise PrometheusError(query, "bad_response", f"malformed result: {exc}") from exc
    return QueryResult(query, rtype, series, warnings)


def finite(value: float) -> float | None:
    """`value`, or None for NaN/±Inf (what histogram_quantile returns on empty buckets)."""
    return value if math.isfinite(value) else None


class PrometheusClient:
    """Instant and range queries; every failure raises PrometheusError naming the query."""

    def __init__(self, base_url: str, *, timeout: float = 10.0,
                 headers: dict[str, str] | None = None,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout, headers=headers,
                                  transport=transport, trust_env=False)

    @classmethod
    def from_url(cls, url: str | None, timeout: float = 10.0) -> PrometheusClient | None:
        """A client on `url` (settings' METAOPS_PROMETHEUS_URL), or None when it is unset."""
        url = (url or "").strip()
        return cls(url, timeout=timeout) if url else None

    def close(self) -> None:
        self._http.close()

    def query(self, promql: str, at: datetime | float | None = None) -> QueryResult:
        """Instant query at `at` (server now if None)."""
        params = {"query": promql, "timeout": f"{self.timeout:g}s"}
        if at is not None:
            params["time"] = _ts(at)
        return self._post("/api/v1/query", promql, params)

    def query_range(self, promql: str, start: datetime | float, end: datetime | float,
                    step: float) -> QueryResult:
        """Range query from `start` to `end` every `step` seconds (always a matrix)."""
        params = {"query": promql, "start": _ts(start), "end": _ts(end), "step": f"{step:g}",
                  "timeout": f"{self.timeout:g}s"}
        return self._post("/api/v1/query_range", promql, params)

    def _post(self, path: str, promql: str, params: dict[str, str]) -> QueryResult:
        try:
            resp = self._http.post(path, data=params)
        except httpx.TimeoutException as exc:
            raise PrometheusError(promql, "timeout",
                                  f"no answer from {self.base_url} within {self.timeout:g}s: "
                                  f"{type(exc).__name__}") from exc
        except httpx.HTTPError as exc:
            raise PrometheusError(promql, "connection",
                                  f"cannot reach Prometheus at {self.base_url}: "
                                  f"{type(exc).__name__}: {exc}") from exc
        body: Any = None
        if "json" in resp.headers.get("content-type", ""):
            try:
                body = resp.json()
            except ValueError:
                body = None
        if not isinstance(body, dict):
            text = resp.text.strip()[:500] or resp.reason_phrase
            raise PrometheusError(promql, "http", text, resp.status_code)
        if body.get("status") != "success":
            raise PrometheusError(promql, str(body.get("errorType") or "unknown"),
                                  str(body.get("error") or resp.text[:500]), resp.status_code)
        return _parse(promql, body)
