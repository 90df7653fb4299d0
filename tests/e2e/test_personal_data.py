"""The provider-outage scenario's personal data and secret appear nowhere metaops writes."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from tests.support import (
    ADMIN_TOKEN,
    SCENARIOS,
    WEBHOOK_TOKEN,
    WIRE,
    ServerProcess,
    load_json,
    raw_execute,
)

pytestmark = pytest.mark.slow

SCENARIO = SCENARIOS / "provider-outage"
FORBIDDEN: list[str] = load_json(SCENARIO / "expected.json")["must_not_appear_anywhere"]


def _leaky_lines() -> list[str]:
    """The scenario's own log messages that carry the personal data and the secret."""
    found: dict[str, str] = {}
    with (SCENARIO / "logs.jsonl").open(encoding="utf-8") as handle:
        for line in handle:
            message = json.loads(line).get("message", "")
            for needle in FORBIDDEN:
                if needle in message and needle not in found:
                    found[needle] = message
    assert set(found) == set(FORBIDDEN), "scenario logs no longer carry every needle"
    return list(found.values())


def _payloads() -> list[tuple[str, Any]]:
    leaks = _leaky_lines()
    am = load_json(SCENARIO / "alerts.json")
    am["alerts"][0]["annotations"]["description"] = " | ".join(leaks)
    am["alerts"][0]["labels"]["reporter"] = leaks[0]
    am["commonAnnotations"]["description"] = leaks[1]
    pd = load_json(WIRE / "pagerduty_trigger.json")
    pd["payload"]["summary"] = leaks[2]
    pd["payload"]["custom_details"]["last_log"] = leaks[3]
    generic = {"title": leaks[1][:200], "dedup_key": "pii-check",
               "annotations": {k: v for k, v in zip("abcd", leaks, strict=False)},
               "labels": {"service": "chat-api"}}
    bad_schema = copy.deepcopy(am)
    bad_schema["alerts"][0]["startsAt"] = leaks[0]  # rejected: must not echo it either
    return [("alertmanager", am), ("pagerduty", pd), ("generic", generic),
            ("alertmanager", bad_schema)]


def _database_text(server: ServerProcess) -> str:
    url = server.database_url
    if url.startswith("sqlite"):
        db_file = Path(url.split("///", 1)[1])
        blobs = [p.read_bytes() for p in db_file.parent.glob(db_file.name + "*")]
        return b"".join(blobs).decode("utf-8", "replace")
    tables = [r[0] for r in raw_execute(
        url, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
    dumps = [raw_execute(url, f'SELECT t::text FROM "{t}" t') for t in tables]  # noqa: S608
    return "\n".join(map(str, dumps))


def test_personal_data_appears_nowhere(server_factory: Any) -> None:
    server: ServerProcess = server_factory(METAOPS_LOG_LEVEL="DEBUG")
    server.start()
    responses: list[str] = []
    with server.client(WEBHOOK_TOKEN) as hook:
        for source, body in _payloads():
            r = hook.post(f"/webhooks/{source}", json=body)
            responses.append(r.text)
            assert r.status_code in (202, 422), r.text
    with server.client(ADMIN_TOKEN) as admin:
        listing = admin.get("/api/v1/incidents")
        responses.append(listing.text)
        ids = [i["id"] for i in listing.json()["incidents"]]
        assert len(ids) == 3
        for incident_id in ids:
            detail = admin.get(f"/api/v1/incidents/{incident_id}")
            assert detail.status_code == 200
            responses.append(detail.text)
        audit_page = admin.get("/api/v1/audit", params={"limit": 1000})
        responses.append(audit_page.text)
        export = admin.get("/api/v1/audit/export")
        responses.append(export.text)
        assert admin.get("/api/v1/audit/verify").json()["ok"] is True
    # Redaction really happened (not merely dropped payloads): markers are stored and shown.
    assert "[REDACTED:email]" in "".join(responses)
    server.stop()
    haystacks = {
        "API responses": "\n".join(responses),
        "database": _database_text(server),
        "server log": server.logs(),
    }
    for where, text in haystacks.items():
        for needle in FORBIDDEN:
            assert needle not in text, f"{needle!r} found in {where}"
