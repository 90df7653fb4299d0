"""Bad input gets a 4xx with the JSON error shape, never echoes secrets, and stores nothing.

Acceptance: "Bad input — malformed JSON, wrong schema, oversized body, missing or wrong token,
unknown source, wrong content type — gets a 4xx with the JSON error shape and stores nothing
partial."
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from core.database import Database
from core.models import Alert, ApiToken, AuditEvent, Incident, WorkItem
from tests.conftest import Harness
from tests.support import ADMIN_TOKEN, WEBHOOK_TOKEN, WIRE, load_json

SOURCES = ("alertmanager", "grafana", "pagerduty", "generic")
# Secret-looking values planted in bad payloads: no error response may repeat them.
OPENAI_KEY = "sk-proj-Zq8XvB2nLk4Tw9Rm1Hc7Yp3Ds6Fg0Ja5"
EMAIL = "jane.doe.oncall@example.com"
SECRETS = (OPENAI_KEY, EMAIL)


def _valid(source: str) -> dict[str, Any]:
    """A body each source accepts (the captured wire examples, plus a generic one)."""
    if source == "alertmanager":
        return load_json(WIRE / "alertmanager_firing.json")
    if source == "grafana":
        return load_json(WIRE / "grafana_firing.json")
    if source == "pagerduty":
        return load_json(WIRE / "pagerduty_trigger.json")
    return {"title": "Queue backlog", "dedup_key": "queue-1", "severity": "critical",
            "labels": {"service": "worker"}}


def _with_secrets(body: dict[str, Any]) -> dict[str, Any]:
    """Plant the secrets where each schema keeps free text (labels / custom_details)."""
    body = copy.deepcopy(body)
    if "alerts" in body:
        body["alerts"][0]["annotations"]["description"] = f"key {OPENAI_KEY} owner {EMAIL}"
        body["commonLabels"] = {**body.get("commonLabels", {}), "owner": EMAIL}
    elif "payload" in body:
        body["payload"]["custom_details"]["owner"] = EMAIL
        body["payload"]["custom_details"]["api"] = OPENAI_KEY
    else:
        body["labels"] = {**body.get("labels", {}), "owner": EMAIL, "api": OPENAI_KEY}
    return body


# --- counting what is stored --------------------------------------------------------------

COUNTED = (Incident, Alert, WorkItem, AuditEvent, ApiToken)


async def snapshot(db: Database) -> dict[str, int]:
    async with db.read() as s:
        return {model.__tablename__: int(await s.scalar(
            select(func.count()).select_from(model)) or 0) for model in COUNTED}


def assert_error_shape(r: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    """Exactly {"error": {"code", "message", "details"}} with the expected status; returns error."""
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["content-type"].startswith("application/json"), r.headers
    body = r.json()
    assert set(body) == {"error"}, body
    err = body["error"]
    assert set(err) == {"code", "message", "details"}, err
    assert isinstance(err["code"], str) and err["code"]
    assert isinstance(err["message"], str) and err["message"]
    assert isinstance(err["details"], dict)
    if code is not None:
        assert err["code"] == code, err
    return err


def assert_no_secret_echo(r: httpx.Response) -> None:
    for secret in SECRETS:
        assert secret not in r.text, f"response echoes {secret!r}: {r.text}"
    # Nor any part of the key long enough to be useful.
    assert OPENAI_KEY[8:24] not in r.text, r.text


def assert_field(err: dict[str, Any], expected: str) -> None:
    fields = err["details"]["fields"]
    assert isinstance(fields, list) and fields, err
    assert all(set(f) == {"field", "problem"} for f in fields), fields
    assert fields[0]["field"] == expected, fields
    assert expected in err["message"], err


# --- webhook cases --------------------------------------------------------------------------


async def _stream(body: bytes, chunk: int = 64 * 1024) -> AsyncIterator[bytes]:
    for i in range(0, len(body), chunk):
        yield body[i:i + chunk]


@dataclass
class Case:
    id: str
    source: str
    status: int
    code: str
    content: bytes | None = None
    json_body: Any = None
    token: str | None = WEBHOOK_TOKEN
    headers: dict[str, str] = field(default_factory=dict)
    field_name: str | None = None
    problem_mentions: str | None = None
    stream: bool = False

    async def send(self, h: Harness) -> httpx.Response:
        headers = {"Content-Type": "application/json", **self.headers}
        if self.token is not None:
            headers["Authorization"] = f"Bearer {self.token}"
        content: Any = self.content
        if self.json_body is not None:
            content = json.dumps(self.json_body).encode()
        if self.stream:
            assert isinstance(content, bytes)
            content = _stream(content)
        return await h.client.post(f"/webhooks/{self.source}", content=content, headers=headers)


def _schema_cases() -> list[Case]:
    cases: list[Case] = []
    for source in ("alertmanager", "grafana"):
        bad = _with_secrets(_valid(source))
        bad["alerts"][0]["startsAt"] = "yesterday"
        cases.append(Case(f"{source}-startsAt-yesterday", source, 422, "validation_error",
                          json_body=bad, field_name="alerts[0].startsAt"))
        bad = _with_secrets(_valid(source))
        del bad["alerts"][1 if len(bad["alerts"]) > 1 else 0]["fingerprint"]
        cases.append(Case(f"{source}-missing-fingerprint", source, 422, "validation_error",
                          json_body=bad,
                          field_name=f"alerts[{len(bad['alerts']) - 1}].fingerprint"))
        bad = _with_secrets(_valid(source))
        bad["alerts"] = []
        cases.append(Case(f"{source}-no-alerts", source, 422, "validation_error",
                          json_body=bad, field_name="alerts"))
        bad = _with_secrets(_valid(source))
        bad["alerts"][0]["labels"]["severity"] = 3
        cases.append(Case(f"{source}-label-not-string", source, 422, "validation_error",
                          json_body=bad, field_name="alerts[0].labels.severity"))
    bad = _with_secrets(_valid("alertmanager"))
    bad["version"] = "3"
    cases.append(Case("alertmanager-version-3", "alertmanager", 422, "validation_error",
                      json_body=bad, field_name="version"))
    bad = _with_secrets(_valid("grafana"))
    bad["version"] = "4"
    cases.append(Case("grafana-version-4", "grafana", 422, "validation_error",
                      json_body=bad, field_name="version"))
    bad = _with_secrets(_valid("pagerduty"))
    del bad["payload"]
    # A cross-field rule: the error is on the body, and the problem names the missing field.
    cases.append(Case("pagerduty-trigger-without-payload", "pagerduty", 422, "validation_error",
                      json_body=bad, field_name="payload", problem_mentions="payload"))
    bad = _with_secrets(_valid("pagerduty"))
    bad["event_action"] = "explode"
    cases.append(Case("pagerduty-bad-event-action", "pagerduty", 422, "validation_error",
                      json_body=bad, field_name="event_action"))
    bad = _with_secrets(_valid("pagerduty"))
    bad["event_action"] = "resolve"
    del bad["dedup_key"]
    cases.append(Case("pagerduty-resolve-without-dedup-key", "pagerduty", 422,
                      "validation_error", json_body=bad, field_name="dedup_key",
                      problem_mentions="dedup_key"))
    bad = _with_secrets(_valid("pagerduty"))
    bad["payload"]["severity"] = "apocalyptic"
    cases.append(Case("pagerduty-bad-severity", "pagerduty", 422, "validation_error",
                      json_body=bad, field_name="payload.severity"))
    bad = _with_secrets(_valid("generic"))
    del bad["title"]
    cases.append(Case("generic-without-title", "generic", 422, "validation_error",
                      json_body=bad, field_name="title"))
    bad = _with_secrets(_valid("generic"))
    bad["starts_at"] = f"when {EMAIL} wakes up"
    cases.append(Case("generic-bad-starts-at", "generic", 422, "validation_error",
                      json_body=bad, field_name="starts_at"))
    bad = _with_secrets(_valid("generic"))
    bad["title"] = ""
    cases.append(Case("generic-empty-title", "generic", 422, "validation_error",
                      json_body=bad, field_name="title"))
    for source in SOURCES:
        cases.append(Case(f"{source}-body-is-a-list", source, 422, "validation_error",
                          json_body=[_with_secrets(_valid(source))], field_name="body"))
        cases.append(Case(f"{source}-body-is-a-string", source, 422, "validation_error",
                          json_body=f"{OPENAI_KEY} {EMAIL}", field_name="body"))
        cases.append(Case(f"{source}-body-is-null", source, 422, "validation_error",
                          content=b"null", field_name="body"))
    return cases


def _malformed_cases() -> list[Case]:
    cases: list[Case] = []
    for source in SOURCES:
        text = json.dumps(_with_secrets(_valid(source)))
        cases += [
            Case(f"{source}-truncated-json", source, 400, "malformed_body",
                 content=text[: len(text) // 2].encode()),
            Case(f"{source}-trailing-garbage", source, 400, "malformed_body",
                 content=(text + f" {OPENAI_KEY}").encode()),
            Case(f"{source}-single-quotes", source, 400, "malformed_body",
                 content=f"{{'title': '{EMAIL}'}}".encode()),
            Case(f"{source}-empty-body", source, 400, "malformed_body", content=b""),
            Case(f"{source}-not-utf8", source, 400, "malformed_body",
                 content=b'{"title": "\xff\xfe\xfa"}'),
        ]
    return cases


def _size_cases(limit: int) -> list[Case]:
    cases: list[Case] = []
    for source in SOURCES:
        body = _with_secrets(_valid(source))
        body["padding"] = "x" * (limit + 1)
        raw = json.dumps(body).encode()
        cases += [
            Case(f"{source}-oversized-content-length", source, 413, "payload_too_large",
                 content=raw),
            Case(f"{source}-oversized-chunked", source, 413, "payload_too_large",
                 content=raw, stream=True),
        ]
    return cases


def _auth_and_routing_cases() -> list[Case]:
    cases: list[Case] = []
    for source in SOURCES:
        good = _with_secrets(_valid(source))
        cases += [
            Case(f"{source}-no-token", source, 401, "unauthenticated", json_body=good,
                 token=None),
            Case(f"{source}-wrong-token", source, 401, "unauthenticated", json_body=good,
                 token="mo_this_is_not_a_real_token_0123456789"),
            Case(f"{source}-basic-auth", source, 401, "unauthenticated", json_body=good,
                 token=None, headers={"Authorization": "Basic YWRtaW46YWRtaW4="}),
            Case(f"{source}-empty-bearer", source, 401, "unauthenticated", json_body=good,
                 token=None, headers={"Authorization": "Bearer "}),
            Case(f"{source}-text-plain", source, 415, "unsupported_media_type",
                 json_body=good, headers={"Content-Type": "text/plain"}),
            Case(f"{source}-form-encoded", source, 415, "unsupported_media_type",
                 content=b"title=x&dedup_key=y",
                 headers={"Content-Type": "application/x-www-form-urlencoded"}),
        ]
    cases += [
        Case("unknown-source-nagios", "nagios", 404, "not_found",
             json_body=_with_secrets(_valid("generic"))),
        Case("unknown-source-nagios-no-token", "nagios", 404, "not_found",
             json_body=_valid("generic"), token=None),
    ]
    return cases


DEFAULT_LIMIT = 1_048_576
CASES = [*_malformed_cases(), *_schema_cases(), *_size_cases(DEFAULT_LIMIT),
         *_auth_and_routing_cases()]


async def test_default_body_limit_is_what_the_cases_assume(harness: Harness) -> None:
    assert harness.settings.max_body_bytes == DEFAULT_LIMIT


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
async def test_bad_webhook_gets_4xx_error_shape_and_stores_nothing(
    harness: Harness, db: Database, case: Case
) -> None:
    before = await snapshot(db)
    r = await case.send(harness)
    err = assert_error_shape(r, case.status, case.code)
    assert_no_secret_echo(r)
    if case.status == 401:
        assert r.headers.get("www-authenticate") == "Bearer", r.headers
    if case.field_name is not None:
        assert_field(err, case.field_name)
    if case.problem_mentions is not None:
        assert case.problem_mentions in err["details"]["fields"][0]["problem"], err
    assert await snapshot(db) == before


async def test_webhook_rejects_wrong_method_with_error_shape(harness: Harness) -> None:
    r = await harness.get("/webhooks/alertmanager", token=WEBHOOK_TOKEN)
    assert_error_shape(r, 405, "method_not_allowed")


# --- tokens that exist but may not post ------------------------------------------------------


async def _create_token(h: Harness, name: str, role: str, source: str | None = None) -> str:
    body: dict[str, Any] = {"name": name, "role": role}
    if source is not None:
        body["source"] = source
    r = await h.client.post("/api/v1/tokens", json=body, headers=h.auth(ADMIN_TOKEN))
    assert r.status_code == 201, r.text
    token: str = r.json()["token"]
    return token


@pytest.mark.parametrize("source", SOURCES)
async def test_viewer_and_wrongly_scoped_tokens_get_403_and_store_nothing(
    harness: Harness, db: Database, source: str
) -> None:
    viewer = await _create_token(harness, "viewer-1", "viewer")
    approver = await _create_token(harness, "approver-1", "approver")
    other = next(s for s in SOURCES if s != source)
    scoped = await _create_token(harness, f"hook-{other}", "webhook", other)
    before = await snapshot(db)
    body = _with_secrets(_valid(source))
    for token in (viewer, approver, scoped):
        r = await harness.post_webhook(source, body, token=token)
        assert_error_shape(r, 403, "forbidden")
        assert_no_secret_echo(r)
        assert token not in r.text
    assert await snapshot(db) == before
    # The scoped token does work for its own source: the 403 is about scope, not the token.
    r = await harness.post_webhook(other, _valid(other), token=scoped)
    assert r.status_code == 202, r.text
    await _wait_idle(db)


# --- bad secrets inside keys ----------------------------------------------------------------


@pytest.mark.parametrize("where", ["extra-top-level-key", "label-key"])
async def test_validation_error_does_not_echo_secrets_held_in_key_names(
    harness: Harness, db: Database, where: str
) -> None:
    body = _valid("generic")
    if where == "extra-top-level-key":
        body[EMAIL] = "x"  # generic forbids unknown fields
    else:
        body["labels"] = {OPENAI_KEY: 42}  # label values must be strings
    before = await snapshot(db)
    r = await harness.post_webhook("generic", body)
    assert_error_shape(r, 422, "validation_error")
    assert await snapshot(db) == before
    assert_no_secret_echo(r)


# --- nothing already accepted is lost ---------------------------------------------------------


async def _wait_investigated(h: Harness, incident_id: int) -> None:
    async with asyncio.timeout(10):
        while True:
            detail = (await h.get(f"/api/v1/incidents/{incident_id}")).json()
            if detail["investigation"] in ("waiting_approval", "done"):
                return
            await asyncio.sleep(0.05)


async def _wait_idle(db: Database) -> None:
    """Let background investigations finish, so the test ends with nothing in flight."""
    async with asyncio.timeout(10):
        while True:
            async with db.read() as s:
                busy = await s.scalar(select(func.count()).select_from(WorkItem).where(
                    WorkItem.status.in_(("pending", "running"))))
            if not busy:
                return
            await asyncio.sleep(0.05)


async def test_bad_delivery_after_a_good_one_leaves_the_good_one_intact(
    harness: Harness, db: Database
) -> None:
    firing = load_json(WIRE / "alertmanager_firing.json")
    r = await harness.post_webhook("alertmanager", firing)
    assert r.status_code == 202, r.text
    (incident_id,) = r.json()["incident_ids"]
    await _wait_investigated(harness, incident_id)
    detail = (await harness.get(f"/api/v1/incidents/{incident_id}")).json()
    before = await snapshot(db)

    # Same group: alert 0 resolves validly but alert 1 is broken -> nothing of it applies.
    half = copy.deepcopy(firing)
    half["alerts"][0]["status"] = "resolved"
    half["alerts"][0]["endsAt"] = "2025-06-12T14:20:00Z"
    half["alerts"][1]["startsAt"] = "yesterday"
    oversized = copy.deepcopy(firing)
    oversized["status"] = "resolved"
    oversized["padding"] = "x" * (harness.settings.max_body_bytes + 1)
    text = json.dumps({**firing, "status": "resolved"})
    bad_requests: list[Callable[[], Awaitable[httpx.Response]]] = [
        lambda: harness.post_webhook("alertmanager", half),
        lambda: harness.post_webhook("alertmanager", oversized),
        lambda: harness.client.post("/webhooks/alertmanager", content=text[:-3].encode(),
                                    headers={**harness.auth(WEBHOOK_TOKEN),
                                             "Content-Type": "application/json"}),
        lambda: harness.client.post("/webhooks/alertmanager", content=text.encode(),
                                    headers={**harness.auth(WEBHOOK_TOKEN),
                                             "Content-Type": "text/plain"}),
        lambda: harness.post_webhook("alertmanager", {**firing, "status": "resolved"},
                                     token="mo_wrong_token_0123456789abcdef"),
        lambda: harness.post_webhook("alertmanager", [firing]),
    ]
    for send in bad_requests:
        r = await send()
        assert 400 <= r.status_code < 500, r.text
        assert_error_shape(r, r.status_code)
    assert await snapshot(db) == before
    after = (await harness.get(f"/api/v1/incidents/{incident_id}")).json()
    assert after == detail
    assert after["status"] == "open"
    assert {a["status"] for a in after["alerts"]} == {"firing"}
    # And the service still takes good deliveries afterwards.
    again = await harness.post_webhook("alertmanager", firing)
    assert again.status_code == 202 and again.json()["incident_ids"] == [incident_id]
    await _wait_idle(db)


# --- API routes ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("status=bogus", "status"),
        ("since=notadate", "since"),
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("limit=ten", "limit"),
        ("cursor=0", "cursor"),
        ("cursor=abc", "cursor"),
    ],
)
async def test_incident_list_bad_query_is_422_naming_the_parameter(
    harness: Harness, db: Database, query: str, field: str
) -> None:
    before = await snapshot(db)
    r = await harness.get(f"/api/v1/incidents?{query}")
    err = assert_error_shape(r, 422, "validation_error")
    fields = err["details"]["fields"]
    assert fields[0]["field"].split(".")[-1] == field, fields
    assert await snapshot(db) == before


@pytest.mark.parametrize(
    ("query", "field"),
    [("order=sideways", "order"), ("since=notadate", "since"), ("until=tomorrow", "until"),
     ("limit=1001", "limit"), ("incident_id=x", "incident_id"), ("cursor=-1", "cursor"),
     ("type=" + "t" * 65, "type")],
)
async def test_audit_list_bad_query_is_422_naming_the_parameter(
    harness: Harness, query: str, field: str
) -> None:
    r = await harness.get(f"/api/v1/audit?{query}")
    err = assert_error_shape(r, 422, "validation_error")
    assert err["details"]["fields"][0]["field"].split(".")[-1] == field, err


async def test_unknown_incident_is_404_with_error_shape(harness: Harness) -> None:
    assert_error_shape(await harness.get("/api/v1/incidents/999999"), 404, "not_found")
    err = assert_error_shape(await harness.get("/api/v1/incidents/abc"), 422,
                             "validation_error")
    assert err["details"]["fields"][0]["field"].split(".")[-1] == "incident_id"
    assert_error_shape(await harness.get("/api/v1/nothing-here"), 404, "not_found")


async def test_api_auth_and_roles(harness: Harness, db: Database) -> None:
    viewer = await _create_token(harness, "viewer-1", "viewer")
    approver = await _create_token(harness, "approver-1", "approver")
    before = await snapshot(db)

    # No token / a wrong token: 401 with a challenge.
    for path in ("/api/v1/audit", "/api/v1/incidents", "/api/v1/tokens", "/api/v1/audit/export"):
        r = await harness.client.get(path)
        assert_error_shape(r, 401, "unauthenticated")
        assert r.headers.get("www-authenticate") == "Bearer"
        r = await harness.get(path, token="mo_not_a_token_0123456789abcdef")
        assert_error_shape(r, 401, "unauthenticated")
        assert r.headers.get("www-authenticate") == "Bearer"

    # Viewer reads incidents and the audit trail, but not the export nor token admin.
    for path in ("/api/v1/incidents", "/api/v1/audit", "/api/v1/audit/verify"):
        r = await harness.get(path, token=viewer)
        assert r.status_code == 200, (path, r.text)
    for token in (viewer, approver):
        assert_error_shape(await harness.get("/api/v1/audit/export", token=token), 403,
                           "forbidden")
        assert_error_shape(await harness.get("/api/v1/tokens", token=token), 403, "forbidden")
        r = await harness.client.post("/api/v1/tokens", json={"name": "sneaky", "role": "admin"},
                                      headers=harness.auth(token))
        assert_error_shape(r, 403, "forbidden")
    # A webhook token is not a human principal: no reads at all.
    for path in ("/api/v1/incidents", "/api/v1/audit"):
        assert_error_shape(await harness.get(path, token=WEBHOOK_TOKEN), 403, "forbidden")
    assert await snapshot(db) == before
    r = await harness.get("/api/v1/audit/export")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/x-ndjson")


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"name": "ok", "role": "root"}, 422, "role"),
        ({"name": "has space", "role": "viewer"}, 422, "name"),
        ({"name": "", "role": "viewer"}, 422, "name"),
        ({"name": "n" * 129, "role": "viewer"}, 422, "name"),
        ({"role": "viewer"}, 422, "name"),
        ({"name": "ok", "role": "webhook", "source": "nagios"}, 422, "source"),
        ({"name": "ok", "role": "viewer", "source": "grafana"}, 422, "source"),
        ({"name": "bootstrap-admin", "role": "viewer"}, 409, None),
        ([{"name": "ok", "role": "viewer"}], 422, None),
    ],
)
async def test_bad_token_requests_are_4xx_and_store_nothing(
    harness: Harness, db: Database, body: Any, status: int, field: str | None
) -> None:
    before = await snapshot(db)
    r = await harness.client.post("/api/v1/tokens", json=body, headers=harness.auth())
    err = assert_error_shape(r, status)
    if field is not None:
        fields = err["details"].get("fields")
        named = fields[0]["field"] if fields else err["details"].get("field")
        assert named.split(".")[-1] == field, err
    assert await snapshot(db) == before


async def test_malformed_token_request_body(harness: Harness, db: Database) -> None:
    before = await snapshot(db)
    r = await harness.client.post("/api/v1/tokens", content=b'{"name": "x", ',
                                  headers={**harness.auth(), "Content-Type": "application/json"})
    assert 400 <= r.status_code < 500
    assert_error_shape(r, r.status_code)
    assert await snapshot(db) == before


async def test_tokens_are_not_stored_in_clear(harness: Harness, db: Database) -> None:
    created = {name: await _create_token(harness, name, role, source)
               for name, role, source in (("viewer-1", "viewer", None),
                                          ("admin-2", "admin", None),
                                          ("hook-grafana", "webhook", "grafana"))}
    plaintexts = {**created, "bootstrap-admin": ADMIN_TOKEN, "bootstrap-webhook": WEBHOOK_TOKEN}
    async with db.read() as s:
        rows = (await s.scalars(select(ApiToken))).all()
        events = (await s.scalars(select(AuditEvent))).all()
    assert {r.name for r in rows} == set(plaintexts)
    for row in rows:
        assert re.fullmatch(r"[0-9a-f]{64}", row.token_hash), row.token_hash
        assert row.token_hash == hashlib.sha256(plaintexts[row.name].encode()).hexdigest()
        values = [str(getattr(row, c.key)) for c in ApiToken.__table__.columns]
        for token in plaintexts.values():
            assert all(token not in v for v in values), (row.name, values)
    audit_text = json.dumps([{c.key: str(getattr(e, c.key)) for c in AuditEvent.__table__.columns}
                             for e in events])
    for token in plaintexts.values():
        assert token not in audit_text
    # Listing tokens shows no plaintext and no hash.
    listing = (await harness.get("/api/v1/tokens")).text
    for token in plaintexts.values():
        assert token not in listing
    assert all(row.token_hash not in listing for row in rows)


async def test_incident_notes_resolve_and_postmortem_bad_input(harness: Harness,
                                                               db: Database) -> None:
    viewer = await _create_token(harness, "viewer-2", "viewer")
    r = await harness.client.post("/webhooks/generic", headers=harness.auth(WEBHOOK_TOKEN),
                                  json={"title": "disk full", "dedup_key": "d1",
                                        "status": "firing", "severity": "warning"})
    assert r.status_code == 202, r.text
    (incident_id,) = r.json()["incident_ids"]
    base = f"/api/v1/incidents/{incident_id}"
    for body, name in (({}, "text"), ({"text": ""}, "text"), ({"text": "x" * 5001}, "text"),
                       ({"text": "ok", "extra": 1}, "extra")):
        r = await harness.client.post(f"{base}/notes", json=body, headers=harness.auth())
        err = assert_error_shape(r, 422, "validation_error")
        assert err["details"]["fields"][0]["field"].split(".")[-1] == name
    r = await harness.client.post(f"{base}/notes", json={"text": "looked at it"},
                                  headers=harness.auth())
    assert r.status_code == 201 and r.json()["type"] == "note.added"
    for path in (f"{base}/notes", f"{base}/resolve"):
        r = await harness.client.post(path, json={"text": "hi"}, headers=harness.auth(viewer))
        assert_error_shape(r, 403, "forbidden")
    for path in ("/api/v1/incidents/999999/notes", "/api/v1/incidents/999999/resolve"):
        r = await harness.client.post(path, json={"text": "hi"}, headers=harness.auth())
        assert_error_shape(r, 404, "not_found")
    assert_error_shape(await harness.get(f"{base}/postmortem"), 404, "not_found")
    r = await harness.client.put(f"{base}/postmortem", json={"markdown": ""},
                                 headers=harness.auth())
    assert_error_shape(r, 422, "validation_error")
    from sqlalchemy import func, select

    from core.models import AuditEvent, Incident

    async with db.read() as session:
        notes = await session.scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.type.in_(("note.added", "incident.resolved"))))
        incident = await session.get(Incident, incident_id)
    assert notes == 1 and incident is not None and incident.status == "open"
