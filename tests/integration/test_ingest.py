"""Webhook ingest: dedup by fingerprint, grouping into incidents, resolve, work items."""

from __future__ import annotations

import asyncio
import copy

from sqlalchemy import func, select

from core.database import Database
from core.models import Alert, AuditEvent, Incident, WorkItem
from tests.conftest import Harness
from tests.support import SCENARIOS, WIRE, load_json


async def _count(db: Database, model: type) -> int:
    async with db.read() as s:
        return int(await s.scalar(select(func.count()).select_from(model)) or 0)


async def _wait_ready(h: Harness, incident_id: int, within: float = 10.0) -> dict:
    deadline = asyncio.get_running_loop().time() + within
    while True:
        body = (await h.get(f"/api/v1/incidents/{incident_id}")).json()
        if body["investigation"] in ("waiting_approval", "done"):
            return body
        assert asyncio.get_running_loop().time() < deadline, body
        await asyncio.sleep(0.05)


async def test_same_firing_alert_100_times_is_one_alert_one_incident_one_work_item(
    harness: Harness, db: Database
) -> None:
    body = load_json(SCENARIOS / "provider-outage" / "alerts.json")
    responses = await asyncio.gather(
        *[harness.post_webhook("alertmanager", body) for _ in range(100)]
    )
    assert {r.status_code for r in responses} == {202}
    ids = {tuple(r.json()["incident_ids"]) for r in responses}
    assert len(ids) == 1
    (incident_id,) = ids.pop()
    assert await _count(db, Alert) == 1
    assert await _count(db, Incident) == 1
    assert await _count(db, WorkItem) == 1
    async with db.read() as s:
        alert = await s.scalar(select(Alert))
    assert alert is not None and alert.times_seen == 100
    assert alert.last_seen > alert.first_seen
    detail = await _wait_ready(harness, incident_id)
    assert detail["status"] == "open"
    assert [e["type"] for e in detail["timeline"]].count("investigation.started") == 1

    resolved = copy.deepcopy(body)
    resolved["status"] = "resolved"
    resolved["alerts"][0]["status"] = "resolved"
    resolved["alerts"][0]["endsAt"] = "2026-11-27T10:30:00Z"
    r = await harness.post_webhook("alertmanager", resolved)
    assert r.status_code == 202 and r.json()["incident_ids"] == [incident_id]
    detail = (await harness.get(f"/api/v1/incidents/{incident_id}")).json()
    assert detail["status"] == "resolved"
    assert detail["alerts"][0]["status"] == "resolved"
    assert detail["alerts"][0]["ends_at"] == "2026-11-27T10:30:00.000000Z"
    assert await _count(db, Alert) == 1
    # The same group firing again later is a new incident.
    again = copy.deepcopy(body)
    again["alerts"][0]["startsAt"] = "2026-11-27T11:00:00Z"
    r = await harness.post_webhook("alertmanager", again)
    assert r.json()["incident_ids"] != [incident_id]
    assert await _count(db, Incident) == 2


async def test_group_with_mixed_alerts_resolves_only_when_all_resolve(harness: Harness) -> None:
    firing = load_json(WIRE / "alertmanager_firing.json")
    r = await harness.post_webhook("alertmanager", firing)
    assert r.status_code == 202
    (incident_id,) = r.json()["incident_ids"]
    detail = (await harness.get(f"/api/v1/incidents/{incident_id}")).json()
    assert len(detail["alerts"]) == 2
    assert sorted(detail["services"]) == ["chat-api", "rag-retriever"]
    one_resolved = copy.deepcopy(firing)
    one_resolved["alerts"][0]["status"] = "resolved"
    one_resolved["alerts"][0]["endsAt"] = "2025-06-12T14:20:00Z"
    await harness.post_webhook("alertmanager", one_resolved)
    assert (await harness.get(f"/api/v1/incidents/{incident_id}")).json()["status"] == "open"
    both = copy.deepcopy(one_resolved)
    both["status"] = "resolved"
    both["alerts"][1]["status"] = "resolved"
    both["alerts"][1]["endsAt"] = "2025-06-12T14:21:00Z"
    await harness.post_webhook("alertmanager", both)
    detail = (await harness.get(f"/api/v1/incidents/{incident_id}")).json()
    assert detail["status"] == "resolved"
    assert [e["type"] for e in detail["timeline"]].count("incident.resolved") == 1


async def test_grafana_pagerduty_and_generic_sources(harness: Harness, db: Database) -> None:
    r = await harness.post_webhook("grafana", load_json(WIRE / "grafana_firing.json"))
    assert r.status_code == 202
    grafana_incident = r.json()["incident_ids"][0]
    detail = (await harness.get(f"/api/v1/incidents/{grafana_incident}")).json()
    assert detail["alerts"][0]["generator_url"].endswith("viewPanel=14")
    r = await harness.post_webhook("grafana", load_json(WIRE / "grafana_resolved.json"))
    assert r.status_code == 202
    detail = (await harness.get(f"/api/v1/incidents/{grafana_incident}")).json()
    assert detail["status"] == "resolved"

    trigger = load_json(WIRE / "pagerduty_trigger.json")
    r1 = await harness.post_webhook("pagerduty", trigger)
    r2 = await harness.post_webhook("pagerduty", trigger)
    assert r1.status_code == r2.status_code == 202
    assert r1.json()["status"] == "success" and r1.json()["dedup_key"] == trigger["dedup_key"]
    assert r1.json()["incident_ids"] == r2.json()["incident_ids"]
    pd_incident = r1.json()["incident_ids"][0]
    r = await harness.post_webhook("pagerduty", load_json(WIRE / "pagerduty_resolve.json"))
    assert r.json()["incident_ids"] == [pd_incident]
    detail = (await harness.get(f"/api/v1/incidents/{pd_incident}")).json()
    assert detail["status"] == "resolved" and len(detail["alerts"]) == 1
    # The routing key is a credential: it is stored nowhere in clear.
    async with db.read() as s:
        payloads = [a.payload for a in (await s.scalars(select(Alert))).all()]
    assert trigger["routing_key"] not in str(payloads)

    generic = {"title": "Queue backlog", "dedup_key": "queue-1", "severity": "critical",
               "labels": {"service": "worker"}}
    r = await harness.post_webhook("generic", generic)
    assert r.status_code == 202
    gid = r.json()["incident_ids"][0]
    r = await harness.post_webhook("generic", {**generic, "status": "resolved"})
    assert r.json()["incident_ids"] == [gid]
    detail = (await harness.get(f"/api/v1/incidents/{gid}")).json()
    assert detail["status"] == "resolved" and detail["services"] == ["worker"]


async def test_every_delivery_is_audited_with_the_principal(harness: Harness, db: Database) -> None:
    body = load_json(SCENARIOS / "kv-cache-saturation" / "alerts.json")
    r = await harness.post_webhook("alertmanager", body)
    assert r.status_code == 202 and len(r.json()["incident_ids"]) == 1
    async with db.read() as s:
        events = (await s.scalars(select(AuditEvent).where(
            AuditEvent.type == "alert.received"))).all()
    assert len(events) == 1
    assert events[0].actor_id == "bootstrap-webhook" and events[0].actor_via == "webhook"
    assert events[0].payload["new"] == 2
