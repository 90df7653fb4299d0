"""Prometheus metrics of one app instance (own registry, so tests can build many apps)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram


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
