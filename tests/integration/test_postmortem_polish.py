"""LLM mode, post-mortems: the model's Summary prose is held to the validator and the lint;
a draft that fails them leaves the deterministic one in place."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from core.settings import Settings
from tests.conftest import Harness, in_process
from tests.fake_openai import FakeOpenAI, configured, respond, serve_openai, text
from tests.support import WEBHOOK_TOKEN

# Post-mortem revisions run on PostgreSQL in tests/e2e/test_postmortem.py.
pytestmark = pytest.mark.sqlite_pass


@pytest.fixture
def model() -> Iterator[FakeOpenAI]:
    with serve_openai() as fake:
        yield fake


@pytest.fixture
async def app(settings: Settings, model: FakeOpenAI) -> AsyncIterator[Harness]:
    async with in_process(configured(settings, model)) as h:
        yield h


def _alert(status: str) -> dict[str, Any]:
    return {"title": "Checkout latency high", "dedup_key": "lat-1", "status": status,
            "severity": "warning", "group_key": "lat-1", "service": "checkout",
            "labels": {"alertname": "CheckoutLatencyHigh"}, "annotations": {},
            "starts_at": "2026-11-28T04:00:00Z",
            **({"ends_at": "2026-11-28T04:30:00Z"} if status == "resolved" else {})}


def _draft_summary(body: dict[str, Any]) -> str:
    draft = body["messages"][1]["content"]
    section = draft.split("## Summary", 1)[1].split("\n## ", 1)[0]
    return section.strip()


async def _postmortem(h: Harness, author: str) -> dict[str, Any]:
    for _ in range(400):
        r = await h.get("/api/v1/incidents/1/postmortem")
        if r.status_code == 200 and r.json().get("author") == author:
            return dict(r.json())
        await asyncio.sleep(0.05)
    raise AssertionError(f"no post-mortem revision by {author}: {r.text[:500]}")


def _script(model: FakeOpenAI, prose: Any) -> None:
    def answer(body: dict[str, Any]) -> Any:
        system = str(body["messages"][0]["content"])
        if "route a production alert" in system:
            return text(json.dumps({"specialist": "log_summarizer"}))
        if "post-mortem" in system:
            return text(prose(body))
        return text("No figures to discuss.")

    model.default = respond(answer)


async def _resolve(h: Harness) -> None:
    for status in ("firing", "resolved"):
        posted = await h.post_webhook("generic", _alert(status), token=WEBHOOK_TOKEN)
        assert posted.status_code == 202, posted.text


async def test_prose_that_keeps_the_cited_facts_becomes_the_summary(
        app: Harness, model: FakeOpenAI) -> None:
    _script(model, lambda body: "In short: " + _draft_summary(body))
    await _resolve(app)
    polished = await _postmortem(app, "metaops-llm")
    assert polished["problems"] == []
    summary = polished["markdown"].split("## Summary", 1)[1].split("\n## ", 1)[0]
    # The writer's marker stays (merging needs it); the text is the model's.
    assert summary.strip().startswith("<!-- auto -->\nIn short:") and "[ev:" in summary
    r = await app.get("/api/v1/audit", params={"type": "postmortem.polished"})
    assert len(r.json()["events"]) == 1


async def test_prose_with_an_uncited_fact_is_rejected_and_the_draft_stays(
        app: Harness, model: FakeOpenAI) -> None:
    _script(model, lambda body: "Checkout was down for 47 minutes because Bob deployed.")
    await _resolve(app)
    draft = await _postmortem(app, "metaops")
    for _ in range(200):
        r = await app.get("/api/v1/audit", params={"type": "postmortem.prose_rejected"})
        if r.json()["events"]:
            break
        await asyncio.sleep(0.05)
    [rejected] = r.json()["events"]
    assert rejected["payload"]["problems"] >= 1
    latest = await app.get("/api/v1/incidents/1/postmortem")
    assert latest.json()["author"] == "metaops"
    assert latest.json()["revision"] == draft["revision"]
    assert "47 minutes" not in latest.json()["markdown"]
