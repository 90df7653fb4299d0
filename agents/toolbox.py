"""Builds the tool registry from settings (the tool families that are configured)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from core.settings import Settings
from tools.cache import cache_tools
from tools.gitops import gitops_tools
from tools.gitops.bootstrap import open_gitops_repo
from tools.kube import KubeClient, kube_tools
from tools.logs.jsonl import JsonlSource
from tools.logs.loki import LokiSource
from tools.logs.records import LogQuery, LogSource
from tools.logs.tools import logs_tools
from tools.metrics.cost import cost_tools
from tools.metrics.prometheus import PrometheusClient
from tools.metrics.tools import metrics_tools
from tools.registry import ToolRegistry


def build_registry(settings: Settings) -> ToolRegistry:
    repo = open_gitops_repo(settings.data_dir, remote=settings.gitops_repo,
                            branch=settings.gitops_branch)
    registry = ToolRegistry(gitops_tools(repo))
    if settings.redis_url:
        for tool in cache_tools(settings.redis_url):
            registry.register(tool)
    for kube_tool in kube_tools(kube_client(settings)):
        registry.register(kube_tool)
    source = log_source(settings)
    if source is not None:
        for log_tool in logs_tools(source):
            registry.register(log_tool)
    prometheus = PrometheusClient.from_url(settings.prometheus_url)
    # Golden signals prefer Prometheus and fall back to the JSONL request log; spend by user
    # and model is only ever in the request log (too many series for Prometheus).
    provider = request_log(source) if isinstance(source, JsonlSource) else None
    for metric_tool in metrics_tools(prometheus, provider):
        registry.register(metric_tool)
    if source is not None:
        for cost_tool in cost_tools(request_log(source)):
            registry.register(cost_tool)
    return registry


def log_source(settings: Settings) -> LogSource | None:
    """Loki when configured, else the JSONL globs, else none."""
    if settings.loki_url:
        return LokiSource(settings.loki_url)
    if settings.logs_path:
        return JsonlSource(settings.logs_path)
    return None


def request_log(source: LogSource) -> Any:
    """The structured request log (llm_completion events) as the embedded metrics read it."""

    def events(start: datetime, end: datetime) -> Iterator[dict[str, Any]]:
        for record in source.query(LogQuery(start=start, end=end)):
            yield {**record.fields, "timestamp": record.ts.isoformat(), "level": record.level,
                   "service": record.service, "message": record.message}

    return events


def kube_client(settings: Settings) -> KubeClient | None:
    """The cluster from METAOPS_KUBECONFIG (a path, or "in-cluster"); None when unset."""
    if not settings.kubeconfig:
        return None
    if settings.kubeconfig == "in-cluster":
        return KubeClient.in_cluster()
    return KubeClient.from_kubeconfig(settings.kubeconfig, context=settings.kube_context)
