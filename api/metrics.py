"""Prometheus metrics of one app instance (own registry, so tests can build many apps)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram

if TYPE_CHECKING:
    from agents.llm import CallRecord


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.webhook_requests = Counter(
            "metaops_webhook_requests", "Webhook requests by source and HTTP status",
            ["source", "status"], registry=self.registry,
        )
        self.alerts_received = Counter(
            "metaops_alerts_received", "Alerts in accepted webhook deliveries",
            ["source"], registry=self.registry,
        )
        self.ingest_seconds = Histogram(
            "metaops_ingest_seconds", "Webhook handling time, request to durable commit",
            ["source"], registry=self.registry,
            buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
        )
        # Model calls: labels are configured names only (provider, model, purpose), never text.
        self.llm_calls = Counter(
            "metaops_llm_calls", "Model calls by provider, model, purpose and outcome",
            ["provider", "model", "purpose", "outcome"], registry=self.registry,
        )
        self.llm_tokens = Counter(
            "metaops_llm_tokens", "Tokens the providers reported, by direction",
            ["provider", "model", "direction"], registry=self.registry,
        )
        self.llm_cost = Counter(
            "metaops_llm_cost_usd", "Cost of model calls at the configured prices",
            ["provider", "model"], registry=self.registry,
        )
        self.llm_seconds = Histogram(
            "metaops_llm_call_seconds", "Model call latency", ["provider"],
            registry=self.registry, buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
        )

    def observe_llm(self, call: CallRecord) -> None:
        """agents.llm.LLM's observe hook."""
        self.llm_calls.labels(call.provider, call.model, call.purpose, call.outcome).inc()
        if call.outcome in ("ok", "error"):
            self.llm_seconds.labels(call.provider).observe(call.latency_seconds)
        self.llm_tokens.labels(call.provider, call.model, "input").inc(call.input_tokens)
        self.llm_tokens.labels(call.provider, call.model, "output").inc(call.output_tokens)
        if call.cost_usd is not None:
            self.llm_cost.labels(call.provider, call.model).inc(float(call.cost_usd))
