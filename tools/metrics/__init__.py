"""Metrics tools: Prometheus queries and the LLM golden signals (or the request log without it)."""

from __future__ import annotations

from tools.metrics.catalog import DEFAULT_METRICS, MetricNames, Signal, default_catalog, render
from tools.metrics.embedded import embedded_signals
from tools.metrics.prometheus import PrometheusClient, PrometheusError, QueryResult, Series
from tools.metrics.tools import GoldenSignals, MetricsQuery, RequestLogProvider, metrics_tools

__all__ = [
    "DEFAULT_METRICS",
    "GoldenSignals",
    "MetricNames",
    "MetricsQuery",
    "PrometheusClient",
    "PrometheusError",
    "QueryResult",
    "RequestLogProvider",
    "Series",
    "Signal",
    "default_catalog",
    "embedded_signals",
    "metrics_tools",
    "render",
]
