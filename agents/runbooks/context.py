"""The alert as runbooks see it: name, labels, severity, service — never annotations."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol


class AlertLike(Protocol):
    """Anything alert-shaped, e.g. agents.intake.normalize.NormalizedAlert."""

    @property
    def name(self) -> str: ...

    @property
    def labels(self) -> Mapping[str, str]: ...

    @property
    def severity(self) -> str: ...

    @property
    def service(self) -> str | None: ...


@dataclass(frozen=True, slots=True)
class AlertContext:
    """The trusted-enough part of an alert. Annotations (free text written by whoever can fire
    an alert, e.g. a prompt injection in `description`) are deliberately not carried, so no
    runbook template can read them."""

    name: str
    severity: str = "warning"
    service: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, alert: AlertLike | AlertContext) -> AlertContext:
        if isinstance(alert, AlertContext):
            return alert
        return cls(name=alert.name, severity=(alert.severity or "warning").lower(),
                   service=alert.service, labels=dict(alert.labels))

    @classmethod
    def from_labels(cls, labels: Mapping[str, str], *, name: str | None = None,
                    severity: str | None = None, service: str | None = None) -> AlertContext:
        """Build from a label set (Alertmanager style: alertname, severity, service labels)."""
        labels = {str(k): str(v) for k, v in labels.items()}
        return cls(
            name=name or labels.get("alertname") or "unnamed",
            severity=(severity or labels.get("severity") or "warning").lower(),
            service=service or labels.get("service"),
            labels=labels,
        )

    @classmethod
    def from_alertmanager(cls, alert: Mapping[str, Any]) -> AlertContext:
        """One element of an Alertmanager webhook's `alerts` list; its annotations are dropped."""
        return cls.from_labels(alert.get("labels") or {})

    def as_template_data(self) -> dict[str, Any]:
        return {"name": self.name, "severity": self.severity, "service": self.service,
                "labels": dict(self.labels)}
