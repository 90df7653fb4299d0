"""The post-mortem's input indexed for the section writers: events, alerts and actions."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from agents.postmortem.events import Event, payload
from agents.postmortem.model import PostmortemInput, event_time, to_datetime
from agents.postmortem.text import clean

# Its own write: publishing the post-mortem is no action taken on the incident.
PUBLISH_TOOL: Final = "gitops.publish_postmortem"


def _own(event: Event) -> bool:
    """The post-mortem's own trail (drafts, edits, publishing) is not part of the incident."""
    kind = str(event.get("type") or "")
    return (kind.startswith("postmortem.") or event.get("target") == PUBLISH_TOOL
            or payload(event).get("tool") == PUBLISH_TOOL)


@dataclass
class Action:
    id: str
    tool: str
    args: Any = None
    preview: str = ""
    requested_by: str = ""
    status: str = ""
    events: list[Event] = field(default_factory=list)

    def first(self, *types: str) -> Event | None:
        return next((e for e in self.events if e.get("type") in types), None)

    def state(self) -> Event | None:
        """The event that set its current status (verification and runbook steps do not)."""
        return next((e for e in reversed(self.events)
                     if str(e.get("type", "")).startswith(("action.", "execution."))), None)


@dataclass(frozen=True, slots=True)
class Alert:
    raw: dict[str, Any]
    starts: datetime | None
    ends: datetime | None

    @property
    def name(self) -> str:
        return clean(self.raw.get("name") or "alert", 120)


class Context:
    """The input indexed for the section writers."""

    def __init__(self, inp: PostmortemInput) -> None:
        self.inp = inp
        self.events = sorted((e for e in inp.events if isinstance(e.get("seq"), int)
                              and event_time(e) is not None and not _own(e)),
                             key=lambda e: int(e["seq"]))
        self.alerts = sorted(
            (Alert(a, to_datetime(a.get("starts_at")), to_datetime(a.get("ends_at")))
             for a in inp.alerts),
            key=lambda a: (a.starts is None, a.starts or datetime.min, a.name))
        self.received = self.of("alert.received")
        self.opened = next(iter(self.of("incident.opened")), None)
        resolved = self.of("incident.resolved")
        self.resolved = resolved[-1] if resolved else None
        self.actions = self._actions()
        tools = [a.tool for a in self.actions.values()]
        self.ambiguous = {t for t in tools if tools.count(t) > 1}

    def of(self, *types: str) -> list[Event]:
        return [e for e in self.events if e.get("type") in types]

    def time(self, event: Event) -> datetime:
        when = event_time(event)
        assert when is not None, f"event {event.get('seq')} has no ts"
        return when

    def _actions(self) -> dict[str, Action]:
        out: dict[str, Action] = {}
        given = {str(a.get("id")): a for a in self.inp.actions
                 if a.get("id") is not None and a.get("tool") != PUBLISH_TOOL}
        for event in self.events:
            action_id = event.get("action_id")
            if not action_id:
                continue
            action = out.get(str(action_id))
            if action is None:
                row = given.get(str(action_id), {})
                body = payload(event) if event.get("type") == "action.proposed" else {}
                action = out[str(action_id)] = Action(
                    id=str(action_id),
                    tool=str(body.get("tool") or row.get("tool") or event.get("target") or "?"),
                    args=body.get("args", row.get("args")),
                    preview=str(body.get("preview") or row.get("preview") or ""),
                    requested_by=str(body.get("requested_by") or row.get("requested_by") or ""),
                    status=str(row.get("status") or ""))
            action.events.append(event)
        for action_id, row in given.items():
            if action_id not in out:
                out[action_id] = Action(action_id, str(row.get("tool") or "?"), row.get("args"),
                                        str(row.get("preview") or ""),
                                        str(row.get("requested_by") or ""),
                                        str(row.get("status") or ""))
        return out

    def label(self, action_id: Any, fallback: Any = None) -> str:
        action = self.actions.get(str(action_id)) if action_id else None
        tool = action.tool if action is not None else str(fallback or "an action")
        if action is not None and tool in self.ambiguous:
            return f"{clean(tool, 80)} (action `{clean(action.id, 160)}`)"
        return clean(tool, 80)

    def alert_event(self, alert: Alert | None, end: bool = False) -> Event | None:
        """The alert.received event to cite for an alert's start (or end): the delivery whose
        payload records that time (intake keeps starts_at/ends_at), else the first delivery
        naming the alert at or after it, else the first at or after it, else the first (for an
        end, the last) delivery."""
        if not self.received:
            return None
        if alert is None:
            return self.received[0]
        when = alert.ends if end else alert.starts
        if when is not None:
            key = "ends_at" if end else "starts_at"
            for event in self.received:
                values = payload(event).get(key)
                if isinstance(values, list) and any(to_datetime(v) == when for v in values):
                    return event
        name = str(alert.raw.get("name") or "").lower()
        after = [e for e in self.received if when is None or self.time(e) >= when]
        named = [e for e in after if name and name in str(e.get("target") or "").lower()]
        return (named or after or [self.received[-1] if end else self.received[0]])[0]

    def proposals(self) -> list[Event]:
        return self.of("action.proposed")
