"""Webhook payload schemas: Alertmanager v4, Grafana, PagerDuty Events v2, generic JSON."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from core.timeutil import parse_ts


def _timestamp(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str):
        raise ValueError("must be an RFC 3339 timestamp string")
    try:
        return parse_ts(value)
    except (ValueError, OverflowError) as exc:
        raise ValueError("must be an RFC 3339 timestamp, e.g. 2026-11-27T10:02:00Z") from exc


Timestamp = Annotated[datetime | None, BeforeValidator(_timestamp)]
Labels = dict[Annotated[str, Field(max_length=256)], Annotated[str, Field(max_length=8192)]]
Short = Annotated[str, Field(max_length=1024)]
Fingerprint = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:-]+$")]


class _Lenient(BaseModel):
    # Senders add fields over time (notification_reason, routeLabels, ...): accept and keep them.
    model_config = ConfigDict(extra="allow")


class AlertmanagerAlert(_Lenient):
    status: Literal["firing", "resolved"]
    labels: Labels
    annotations: Labels = Field(default_factory=dict)
    startsAt: Timestamp
    endsAt: Timestamp = None
    generatorURL: str = ""
    fingerprint: Fingerprint

    @model_validator(mode="after")
    def _starts(self) -> AlertmanagerAlert:
        if self.startsAt is None:
            raise ValueError("startsAt must be a real time (not the Go zero time)")
        return self


class _AlertGroup(_Lenient):
    """Fields an Alertmanager group notification carries (Grafana's embeds the same)."""

    groupKey: str = Field(min_length=1, max_length=8192)
    status: Literal["firing", "resolved"]
    receiver: str = ""
    groupLabels: Labels = Field(default_factory=dict)
    commonLabels: Labels = Field(default_factory=dict)
    commonAnnotations: Labels = Field(default_factory=dict)
    externalURL: str = ""
    truncatedAlerts: int = Field(default=0, ge=0)


class AlertmanagerWebhook(_AlertGroup):
    """Alertmanager's webhook body, version 4."""

    version: Literal["4"]
    alerts: list[AlertmanagerAlert] = Field(min_length=1, max_length=10_000)


class GrafanaAlert(AlertmanagerAlert):
    silenceURL: str = ""
    dashboardURL: str = ""
    panelURL: str = ""
    values: dict[str, float] | None = None


class GrafanaWebhook(_AlertGroup):
    """Grafana unified alerting webhook body (Alertmanager shape plus Grafana fields)."""

    version: Literal["1"]
    orgId: int | None = None
    state: str | None = None
    title: str = ""
    alerts: list[GrafanaAlert] = Field(min_length=1, max_length=10_000)


class PagerDutyLink(_Lenient):
    href: str = Field(min_length=1, max_length=2048)
    text: str = ""


class PagerDutyPayload(_Lenient):
    summary: str = Field(min_length=1, max_length=1024)
    source: str = Field(min_length=1, max_length=1024)
    severity: Literal["critical", "error", "warning", "info"]
    timestamp: Timestamp = None
    component: Short | None = None
    group: Short | None = None
    # "class" is a Python keyword: the wire name is kept through the alias.
    event_class: Short | None = Field(default=None, alias="class")
    custom_details: dict[str, Any] | None = None


class PagerDutyEvent(_Lenient):
    """PagerDuty Events API v2 event (trigger, acknowledge, resolve)."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    routing_key: str = Field(min_length=1, max_length=256)
    event_action: Literal["trigger", "acknowledge", "resolve"]
    dedup_key: str | None = Field(default=None, min_length=1, max_length=255,
                                  validate_default=True)
    payload: PagerDutyPayload | None = Field(default=None, validate_default=True)
    client: str | None = None
    client_url: str | None = None
    links: list[PagerDutyLink] = Field(default_factory=list)

    @field_validator("dedup_key", "payload", mode="after")
    @classmethod
    def _required_by_action(cls, value: Any, info: ValidationInfo) -> Any:
        action = info.data.get("event_action")
        if value is None and info.field_name == "payload" and action == "trigger":
            raise ValueError("payload is required when event_action is trigger")
        if value is None and info.field_name == "dedup_key" and action in (
                "acknowledge", "resolve"):
            raise ValueError(f"dedup_key is required when event_action is {action}")
        return value


class GenericAlert(BaseModel):
    """metaops' own alert format for any sender that can post JSON."""

    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=1, max_length=512, description="Short human title")
    dedup_key: str = Field(
        min_length=1, max_length=255,
        description="Identity of the alert: re-sending the same key updates it, never duplicates",
    )
    status: Literal["firing", "resolved"] = "firing"
    severity: Literal["critical", "page", "error", "warning", "info"] = "warning"
    labels: Labels = Field(default_factory=dict)
    annotations: Labels = Field(default_factory=dict)
    group_key: str | None = Field(
        default=None, min_length=1, max_length=1024,
        description="Alerts sharing a group key share one open incident (default: dedup_key)",
    )
    service: Short | None = None
    starts_at: Timestamp = None
    ends_at: Timestamp = None
