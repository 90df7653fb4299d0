"""Property-based: no generated request makes the webhook or API routes answer 5xx.

Acceptance: "A property-based test (hypothesis or schemathesis against the OpenAPI document)
finds no 5xx on the webhook and API routes."

The app runs in-process with its lifespan (ingest batcher, workers) on the test's event loop.
Hypothesis runs in a worker thread (`asyncio.to_thread`) and sends each request back to that
loop with `asyncio.run_coroutine_threadsafe`, so generation and shrinking stay synchronous while
the app keeps its async database connections on the loop that created them.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from sqlalchemy import func, select

from api.app import create_app
from core.database import Database
from core.models import WorkItem
from core.settings import Settings
from tests.conftest import Harness
from tests.support import ADMIN_TOKEN, WEBHOOK_TOKEN, WIRE, load_json

BASE_URL = "http://metaops.test"
SOURCES = ("alertmanager", "grafana", "pagerduty", "generic")
# Reachable without a token; everything else must never answer 2xx to an anonymous caller.
PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})

POSITIVE_EXAMPLES = 40
NEGATIVE_EXAMPLES = 25
ANONYMOUS_EXAMPLES = 8
WEBHOOK_JSON_EXAMPLES = 75

HYPOTHESIS = settings(
    deadline=None,
    database=None,  # no example database: each run explores afresh, failures print a blob
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                           HealthCheck.data_too_large, HealthCheck.large_base_example,
                           HealthCheck.function_scoped_fixture],
    print_blob=True,
)


def _schema_operations() -> list[tuple[str, str, bool]]:
    """(METHOD, path, has inputs) of every operation in the app's OpenAPI document."""
    # Only the OpenAPI document is needed: no lifespan, no connection, no data dir.
    settings_ = Settings(env="test", admin_token=None, webhook_token=None)
    app = create_app(settings_, Database("sqlite+aiosqlite:///:memory:"))
    schema = schemathesis.openapi.from_dict(app.openapi())
    out = []
    for result in schema.get_all_operations():
        op = result.ok()
        has_inputs = bool(list(op.iter_parameters())) or len(op.body) > 0
        out.append((op.method.upper(), op.path, has_inputs))
    return out


OPERATIONS = _schema_operations()
RUNS = [
    pytest.param(method, path, mode, token, id=f"{method} {path} {mode.value} {who}")
    for method, path, has_inputs in OPERATIONS
    for mode, token, who in (
        (GenerationMode.POSITIVE, ADMIN_TOKEN, "admin"),
        (GenerationMode.NEGATIVE, ADMIN_TOKEN, "admin"),
        (GenerationMode.POSITIVE, None, "anonymous"),
    )
    if has_inputs or mode is GenerationMode.POSITIVE
]


# --- sending from the hypothesis thread to the app's loop -----------------------------------


class _ServerErrors(logging.Handler):
    """Collects what the app logs at ERROR (the `metaops.api` traceback of a 500)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[str] = []
        self.setFormatter(logging.Formatter("%(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(self.format(record))


@pytest.fixture
def server_errors() -> Iterator[_ServerErrors]:
    handler = _ServerErrors()
    logger = logging.getLogger("metaops")
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


class Sender:
    """Blocking request helper for code running in a worker thread.

    Its own client over the harness's (already running) app, with `raise_app_exceptions=False`:
    an unhandled error comes back as the 500 a real client would see, not as an exception.
    """

    def __init__(self, harness: Harness, errors: _ServerErrors) -> None:
        transport = httpx.ASGITransport(app=harness.app, raise_app_exceptions=False)
        self.client = httpx.AsyncClient(transport=transport, base_url=BASE_URL)
        self.loop = asyncio.get_running_loop()
        self.errors = errors

    async def __aenter__(self) -> Sender:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.client.aclose()

    def send(self, method: str, url: str, headers: dict[str, str],
             content: bytes | None) -> tuple[httpx.Response, str]:
        """The response and whatever the server logged at ERROR while answering it."""
        self.errors.records.clear()
        request = self.client.request(method, url, headers=headers, content=content)
        response = asyncio.run_coroutine_threadsafe(request, self.loop).result(timeout=60)
        return response, "\n".join(self.errors.records)


def check_response(r: httpx.Response, logged: str, request: str) -> None:
    """Never 5xx; every error response has exactly the JSON error shape."""
    assert r.status_code < 500, (
        f"{r.status_code} for {request}\nresponse: {r.text[:500]}\nserver log:\n{logged}")
    if r.status_code >= 400:
        assert r.headers.get("content-type", "").startswith("application/json"), (request, r)
        body = r.json()
        assert set(body) == {"error"}, (request, body)
        assert set(body["error"]) == {"code", "message", "details"}, (request, body)
        assert isinstance(body["error"]["details"], dict), (request, body)


async def run_property(prop: Any) -> None:
    """Run a hypothesis property in a worker thread; report a failure without its deep stack.

    The message carries what matters: the request, the response, the server's traceback (from
    the `metaops` loggers) and hypothesis's falsifying example / reproduce line.
    """
    failure = None
    try:
        await asyncio.to_thread(prop)
    except AssertionError as exc:
        notes = "\n".join(getattr(exc, "__notes__", []))
        failure = f"{exc}\n{notes}"
    if failure is not None:
        pytest.fail(failure, pytrace=False)


def _describe(method: str, url: str, content: bytes | None) -> str:
    return f"{method} {url} body={(content or b'')[:800]!r}"


# --- seeding and quiescing --------------------------------------------------------------------


def _generic_example() -> dict[str, Any]:
    return {"title": "Queue backlog", "dedup_key": "queue-1", "severity": "critical",
            "labels": {"service": "worker"}, "annotations": {"summary": "backlog 10k"}}


EXAMPLES: dict[str, dict[str, Any]] = {
    "alertmanager": load_json(WIRE / "alertmanager_firing.json"),
    "grafana": load_json(WIRE / "grafana_firing.json"),
    "pagerduty": load_json(WIRE / "pagerduty_trigger.json"),
    "generic": _generic_example(),
}


async def _seed(h: Harness) -> None:
    """Some incidents, alerts and audit events, so list and detail routes render real rows."""
    for source, body in EXAMPLES.items():
        r = await h.post_webhook(source, body)
        assert r.status_code == 202, r.text
    r = await h.post_webhook("pagerduty", load_json(WIRE / "pagerduty_resolve.json"))
    assert r.status_code == 202, r.text
    r = await h.client.post("/api/v1/tokens", json={"name": "seed-viewer", "role": "viewer"},
                            headers=h.auth())
    assert r.status_code == 201, r.text


async def _wait_idle(db: Database) -> None:
    """End with no investigation in flight (teardown then never cancels one mid-transaction)."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(30):
            while True:
                async with db.read() as s:
                    busy = await s.scalar(select(func.count()).select_from(WorkItem).where(
                        WorkItem.status.in_(("pending", "running"))))
                if not busy:
                    return
                await asyncio.sleep(0.05)


# --- schemathesis against the OpenAPI document ----------------------------------------------


def _prepare(case: Any) -> tuple[str, str, dict[str, str], bytes | None]:
    """The request schemathesis would send for `case` (its own serialisation of query/body)."""
    kwargs = case.as_transport_kwargs(base_url=BASE_URL)
    known = {"method", "url", "headers", "params", "cookies", "json", "data"}
    assert set(kwargs) <= known, f"unexpected transport kwargs {set(kwargs) - known}"
    prepared = requests.Request(**kwargs).prepare()
    body = prepared.body
    content = body.encode() if isinstance(body, str) else body
    headers = {k: v for k, v in prepared.headers.items() if k.lower() != "content-length"}
    assert prepared.method is not None and prepared.url is not None
    return prepared.method, prepared.url, headers, content


async def test_fuzz_runs_cover_every_operation_in_the_live_schema(harness: Harness) -> None:
    live = (await harness.client.get("/openapi.json")).json()
    schema = schemathesis.openapi.from_dict(live)
    labels = {(r.ok().method.upper(), r.ok().path) for r in schema.get_all_operations()}
    assert labels == {(m, p) for m, p, _ in OPERATIONS}
    assert {(p.values[0], p.values[1]) for p in RUNS} == labels
    # The webhook bodies are $refs into components/schemas: all of them resolve.
    for source in SOURCES:
        body = live["paths"][f"/webhooks/{source}"]["post"]["requestBody"]
        ref = body["content"]["application/json"]["schema"]["$ref"]
        assert ref.removeprefix("#/components/schemas/") in live["components"]["schemas"]


@pytest.mark.parametrize(("method", "path", "mode", "token"), RUNS)
async def test_schemathesis_finds_no_5xx(
    harness: Harness, db: Database, server_errors: _ServerErrors,
    method: str, path: str, mode: GenerationMode, token: str | None,
) -> None:
    await _seed(harness)
    live = (await harness.client.get("/openapi.json")).json()
    operation = schemathesis.openapi.from_dict(live)[path][method]
    strategy = operation.as_strategy(generation_mode=mode)
    examples = (ANONYMOUS_EXAMPLES if token is None else
                POSITIVE_EXAMPLES if mode is GenerationMode.POSITIVE else NEGATIVE_EXAMPLES)

    @settings(HYPOTHESIS, max_examples=examples)
    @given(case=strategy)
    def no_server_error(case: Any) -> None:
        m, url, headers, content = _prepare(case)
        headers.pop("Authorization", None)
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        r, logged = sender.send(m, url, headers, content)
        request = _describe(m, url, content)
        check_response(r, logged, request)
        if token is None and path not in PUBLIC_PATHS:
            assert r.status_code >= 400, f"anonymous {request} got {r.status_code}"

    try:
        async with Sender(harness, server_errors) as sender:
            await run_property(no_server_error)
    finally:
        await _wait_idle(db)


# --- plain hypothesis: arbitrary and mutated JSON to every webhook --------------------------

TEXT = st.text(max_size=24)
_OFFSETS = st.builds(
    timezone, st.timedeltas(min_value=-timedelta(hours=23, minutes=59),
                            max_value=timedelta(hours=23, minutes=59)).map(
        lambda d: timedelta(minutes=round(d.total_seconds() / 60))))
TIMESTAMPS = st.datetimes(timezones=st.just(UTC) | _OFFSETS).map(datetime.isoformat)
WIRE_WORDS = st.sampled_from([
    "firing", "resolved", "4", "1", "3", "trigger", "acknowledge", "resolve", "critical",
    "warning", "info", "page", "", "0001-01-01T00:00:00Z", "2026-11-27T10:02:00Z",
    "sk-proj-Zq8XvB2nLk4Tw9Rm1Hc7Yp3Ds6Fg0Ja5", "jane.doe@example.com",
    # A fuzzing dictionary of values that break storage layers rather than validators.
    "nul\u0000byte", "lone \udc80 surrogate", "9999-12-31T23:59:59-05:00",
    "0001-01-01T00:00:00+01:00", "-----BEGIN RSA PRIVATE KEY-----",
])
BIG_INTS = st.sampled_from([2**31, 2**63, -(2**63) - 1, 10**30])
LEAVES = (st.none() | st.booleans() | st.integers() | BIG_INTS
          | st.floats(allow_nan=False, allow_infinity=False) | TEXT | TIMESTAMPS | WIRE_WORDS)
JSON = st.recursive(
    LEAVES, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=16,
)


# Replacement values: a dictionary word or a leaf as often as a whole random subtree.
VALUES = WIRE_WORDS | LEAVES | JSON


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = []
    items = doc.items() if isinstance(doc, dict) else (
        enumerate(doc) if isinstance(doc, list) else ())
    for key, child in items:
        out.append((*prefix, key))
        out.extend(_paths(child, (*prefix, key)))
    return out


def _at(doc: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        doc = doc[key]
    return doc


@st.composite
def mutated(draw: st.DrawFn, base: dict[str, Any]) -> Any:
    """The example with 1-3 edits: same-type value, delete, replace by any JSON, add."""
    doc: Any = copy.deepcopy(base)
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(doc)
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent, key = _at(doc, path[:-1]), path[-1]
        op = draw(st.sampled_from(["same_type", "delete", "replace", "add"]))
        current = parent[key]
        if op == "same_type" and isinstance(current, str):
            parent[key] = draw(TEXT | WIRE_WORDS)  # same type: gets past the validators
        elif op == "same_type" and isinstance(current, int) and not isinstance(current, bool):
            parent[key] = draw(st.integers() | BIG_INTS)
        elif op == "delete":
            del parent[key]
        elif op == "replace" or not isinstance(current, dict | list):
            parent[key] = draw(VALUES)
        elif isinstance(current, dict):
            current[draw(TEXT | WIRE_WORDS)] = draw(VALUES)
        else:
            current.append(draw(VALUES))
    return doc


@pytest.mark.parametrize("source", SOURCES)
async def test_arbitrary_and_mutated_json_to_webhooks_is_202_or_4xx(
    harness: Harness, db: Database, server_errors: _ServerErrors, source: str
) -> None:
    bodies = JSON | mutated(EXAMPLES[source]) | mutated(EXAMPLES[source])

    @settings(HYPOTHESIS, max_examples=WEBHOOK_JSON_EXAMPLES)
    @given(body=bodies, token=st.sampled_from([WEBHOOK_TOKEN, ADMIN_TOKEN]))
    @example(body=EXAMPLES[source], token=WEBHOOK_TOKEN)
    def accepted_or_rejected(body: Any, token: str) -> None:
        content = json.dumps(body).encode()
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        url = f"/webhooks/{source}"
        r, logged = sender.send("POST", url, headers, content)
        check_response(r, logged, _describe("POST", url, content))
        assert r.status_code == 202 or 400 <= r.status_code < 500, r.text
        if r.status_code == 202:
            assert isinstance(r.json()["incident_ids"], list), r.text

    try:
        async with Sender(harness, server_errors) as sender:
            await run_property(accepted_or_rejected)
    finally:
        await _wait_idle(db)


# --- inputs the generators reach only by luck, pinned ---------------------------------------

_AM = EXAMPLES["alertmanager"]
_GRAFANA_NAN = json.dumps({**EXAMPLES["grafana"], "alerts": [
    {**EXAMPLES["grafana"]["alerts"][0], "values": {"A": 1.5}}]}).replace("1.5", "NaN")
EDGE_CASES = [
    pytest.param("GET", "/api/v1/incidents/99999999999999999999", None, id="incident-id-2^66"),
    pytest.param("GET", "/api/v1/incidents/2147483648", None, id="incident-id-2^31"),
    pytest.param("GET", "/api/v1/incidents?cursor=99999999999999999999", None,
                 id="incidents-cursor-huge"),
    pytest.param("GET", "/api/v1/audit?cursor=99999999999999999999", None,
                 id="audit-cursor-huge"),
    pytest.param("GET", "/api/v1/audit?incident_id=99999999999999999999", None,
                 id="audit-incident-id-huge"),
    pytest.param("GET", "/api/v1/incidents?since=0001-01-01T00:00:00%2B01:00", None,
                 id="incidents-since-year-1-plus-1h"),
    pytest.param("GET", "/api/v1/audit?until=9999-12-31T23:59:59-01:00", None,
                 id="audit-until-year-9999-minus-1h"),
    pytest.param("POST", "/webhooks/generic",
                 json.dumps({"title": "t", "dedup_key": "k",
                             "starts_at": "9999-12-31T23:59:59-05:00"}).encode(),
                 id="generic-starts-at-overflows-utc"),
    pytest.param("POST", "/webhooks/alertmanager",
                 json.dumps({**_AM, "alerts": [{**_AM["alerts"][0],
                                                "startsAt": "9999-12-31T23:00:00-01:00"}]}
                            ).encode(),
                 id="alertmanager-starts-at-overflows-utc"),
    pytest.param("POST", "/webhooks/generic",
                 json.dumps({"title": "a\u0000b", "dedup_key": "nul"}).encode(),
                 id="generic-title-with-nul"),
    pytest.param("POST", "/webhooks/alertmanager",
                 json.dumps({**_AM, "receiver": "r\u0000"}).encode(),
                 id="alertmanager-receiver-with-nul"),
    pytest.param("POST", "/webhooks/alertmanager",
                 json.dumps({**_AM, "groupKey": "nul", "alerts": [{
                     **_AM["alerts"][0], "fingerprint": "f00d",
                     "annotations": {"summary": "5xx\u0000ratio"}}]}).encode(),
                 id="alertmanager-summary-with-nul"),
    pytest.param("POST", "/webhooks/grafana", _GRAFANA_NAN.encode(), id="grafana-values-NaN"),
    pytest.param("POST", "/webhooks/generic",
                 b'{"title": "t", "dedup_key": "k", "labels": {"n": "1"}, "x": Infinity}',
                 id="generic-Infinity-literal"),
    pytest.param("POST", "/webhooks/alertmanager",
                 json.dumps({**_AM, "extra": "\udc80"}).encode(),
                 id="alertmanager-lone-surrogate-in-extra-field"),
]


@pytest.mark.parametrize(("method", "url", "content"), EDGE_CASES)
async def test_edge_inputs_are_never_5xx(
    harness: Harness, db: Database, server_errors: _ServerErrors,
    method: str, url: str, content: bytes | None,
) -> None:
    await _seed(harness)
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": "application/json"}
    try:
        async with Sender(harness, server_errors) as sender:
            r, logged = await asyncio.to_thread(sender.send, method, url, headers, content)
            check_response(r, logged, _describe(method, url, content))
            if r.status_code == 202:
                # Accepted means readable back: the incident renders without a 5xx either.
                for incident_id in r.json()["incident_ids"]:
                    detail, logged = await asyncio.to_thread(
                        sender.send, "GET", f"/api/v1/incidents/{incident_id}", headers, None)
                    check_response(detail, logged, f"GET incident {incident_id}")
    finally:
        await _wait_idle(db)
