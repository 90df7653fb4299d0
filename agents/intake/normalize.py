"""Turns each source's validated payload into source-neutral alerts grouped for one delivery."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from agents.intake.payloads import (
    AlertmanagerWebhook,
    GenericAlert,
    GrafanaAlert,
    GrafanaWebhook,
    PagerDutyEvent,
)

SEVERITY_RANK = {"info": 0, "warning": 1, "error": 2, "page": 3, "critical": 4}


@dataclass(slots=True)
class NormalizedAlert:
    """One alert in a source-neutral shape; all text is already redacted."""

    fingerprint: str
    status: str  # firing | resolved
    name: str
    title: str
    severity: str
    service: str | None
    labels: dict[str, str]
    annotations: dict[str, str]
    # Episodic sources (Alertmanager, Grafana) give a start time that is part of the identity;
    # PagerDuty/generic only have a dedup key, so the open episode is found by fingerprint.
    starts_at: datetime | None
    ends_at: datetime | None
    event_time: datetime | None
    generator_url: str | None
    payload: dict[str, Any]
    redacted_paths: list[str] = field(default_factory=list)
    acknowledge: bool = False


@dataclass(slots=True)
class Delivery:
    """One accepted webhook request: its alerts share one group key."""

    source: str
    group_key: str
    alerts: list[NormalizedAlert]
    principal: str
    meta: dict[str, Any] = field(default_factory=dict)


def _paths_under(paths: tuple[str, ...], prefix: str) -> list[str]:
    return [p[len(prefix):].lstrip(".") for p in paths if p.startswith(prefix)]


def _severity(value: str | None) -> str:
    v = (value or "warning").lower()
    return v if v in SEVERITY_RANK else "warning"


def _am_like(
    source: str, body: AlertmanagerWebhook | GrafanaWebhook, raw: dict[str, Any],
    paths: tuple[str, ...], principal: str,
) -> Delivery:
    alerts: list[NormalizedAlert] = []
    raw_alerts: list[dict[str, Any]] = raw.get("alerts", [])
    for i, a in enumerate(body.alerts):
        labels = dict(a.labels)
        name = labels.get("alertname") or "unnamed"
        link = a.generatorURL or None
        if isinstance(a, GrafanaAlert):
            link = a.panelURL or a.dashboardURL or link
        alerts.append(
            NormalizedAlert(
                fingerprint=a.fingerprint,
                status=a.status,
                name=name,
                title=a.annotations.get("summary") or name,
                severity=_severity(labels.get("severity")),
                service=labels.get("service") or body.commonLabels.get("service")
                or labels.get("job"),
                labels=labels,
                annotations=dict(a.annotations),
                starts_at=a.startsAt,
                ends_at=a.endsAt,
                event_time=a.startsAt,
                generator_url=link,
                payload=raw_alerts[i] if i < len(raw_alerts) else {},
                redacted_paths=_paths_under(paths, f"alerts[{i}]"),
            )
        )
    meta = {
        "receiver": body.receiver,
        "external_url": body.externalURL,
        "truncated_alerts": body.truncatedAlerts,
        "group_labels": dict(body.groupLabels),
    }
    return Delivery(source, f"{source}:{body.groupKey}", alerts, principal, meta)


def from_alertmanager(
    body: AlertmanagerWebhook, raw: dict[str, Any], paths: tuple[str, ...], principal: str
) -> Delivery:
    return _am_like("alertmanager", body, raw, paths, principal)


def from_grafana(
    body: GrafanaWebhook, raw: dict[str, Any], paths: tuple[str, ...], principal: str
) -> Delivery:
    return _am_like("grafana", body, raw, paths, principal)


def _digest(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode("utf-8")).hexdigest()[:32]


def _flatten(details: dict[str, Any] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in (details or {}).items():
        text = value if isinstance(value, str) else str(value)
        # Multi-line blobs (Alertmanager's rendered "firing" list) are not labels.
        if "\n" not in text and len(text) <= 256:
            out[str(key)[:256]] = text
    return out


def from_pagerduty(
    body: PagerDutyEvent, raw: dict[str, Any], paths: tuple[str, ...], principal: str,
    routing_key_raw: str,
) -> Delivery:
    # The routing key is a credential: only its digest enters identities and group keys.
    routing = _digest("routing", routing_key_raw)
    dedup = body.dedup_key or str(uuid.uuid4())
    p = body.payload
    labels = _flatten(p.custom_details if p else None)
    if p is not None:
        for key, value in (("component", p.component), ("group", p.group),
                           ("class", p.event_class), ("source", p.source)):
            if value:
                labels.setdefault(key, value)
    title = p.summary if p else f"PagerDuty {body.event_action} {dedup}"
    alert = NormalizedAlert(
        fingerprint=_digest(routing, dedup),
        status="resolved" if body.event_action == "resolve" else "firing",
        name=labels.get("alertname") or (p.event_class if p and p.event_class else "pagerduty"),
        title=title,
        severity=_severity(p.severity if p else None),
        service=(p.component if p else None) or labels.get("service")
        or (p.source if p else None),
        labels=labels,
        annotations={"summary": title},
        starts_at=None,
        ends_at=None,
        event_time=p.timestamp if p else None,
        generator_url=body.client_url,
        payload=raw,
        redacted_paths=list(paths),
        acknowledge=body.event_action == "acknowledge",
    )
    return Delivery("pagerduty", f"pagerduty:{routing}:{dedup}", [alert], principal,
                    {"dedup_key": dedup, "event_action": body.event_action})


def from_generic(
    body: GenericAlert, raw: dict[str, Any], paths: tuple[str, ...], principal: str
) -> Delivery:
    alert = NormalizedAlert(
        fingerprint=_digest("generic", body.dedup_key),
        status=body.status,
        name=body.labels.get("alertname") or body.title[:256],
        title=body.title,
        severity=body.severity,
        service=body.service or body.labels.get("service"),
        labels=dict(body.labels),
        annotations=dict(body.annotations),
        starts_at=None,
        ends_at=body.ends_at,
        event_time=body.starts_at,
        generator_url=None,
        payload=raw,
        redacted_paths=list(paths),
    )
    group = body.group_key or body.dedup_key
    return Delivery("generic", f"generic:{group}", [alert], principal,
                    {"dedup_key": body.dedup_key})
