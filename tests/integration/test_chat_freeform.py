"""LLM mode, chat: free-form questions answered with READ tools by a model behind the real
langchain-openai client; a change the model suggests is a pending proposal, never a commit."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from core.settings import Settings
from tests.conftest import Harness, in_process
from tests.fake_openai import FakeOpenAI, configured, serve_openai, text, tool_call
from tests.integration.test_chat import FORBIDDEN, _delta, _git, _token, shifted_outage_logs

# Its SQL (proposals, audit) runs on PostgreSQL in test_chat and test_llm.
pytestmark = pytest.mark.sqlite_pass


@pytest.fixture
def model() -> Iterator[FakeOpenAI]:
    with serve_openai() as fake:
        yield fake


@pytest.fixture
async def llm_app(settings: Settings, tmp_path: Path,
                  model: FakeOpenAI) -> AsyncIterator[Harness]:
    """The provider-outage logs moved to the last 91 minutes, and a model configured."""
    logs = shifted_outage_logs(tmp_path, _delta())
    async with in_process(configured(settings, model, logs_path=[str(logs)])) as h:
        yield h


async def _ask(h: Harness, token: str, question: str) -> dict[str, Any]:
    r = await h.client.post("/api/v1/chat", json={"text": question},
                            headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200, r.text
    return dict(r.json())


def _tool_results(model: FakeOpenAI) -> str:
    return json.dumps([m for c in model.completions for m in c.messages if m["role"] == "tool"])


async def test_why_is_chat_api_failing_reads_the_logs_and_answers(
        llm_app: Harness, model: FakeOpenAI) -> None:
    viewer = await _token(llm_app, "vic", "viewer")
    model.script(tool_call("log_patterns", {"service": "chat-api", "window_minutes": 120}),
                 text("chat-api fails because the upstream provider answers 503 "
                      "(80% of the errors)."))
    answer = await _ask(llm_app, viewer, "why is chat-api failing?")
    assert answer["ok"] and answer["command"] is None
    assert "upstream provider" in answer["text"]
    assert answer["data"]["tools"] == ["log_patterns"] and answer["data"]["action_ids"] == []
    # The model got the mined patterns back as data, redacted.
    seen = _tool_results(model)
    assert "count" in seen and "<data>" in seen
    assert not [v for v in FORBIDDEN if v in seen]
    # Nor does any of the scenario's personal data reach the audit trail or the metrics.
    exported = (await llm_app.get("/api/v1/audit/export")).text
    metrics = (await llm_app.client.get("/metrics")).text
    assert "llm_call" in exported and "metaops_llm_calls_total" in metrics
    assert not [v for v in FORBIDDEN if v in exported or v in metrics]
    # The question went in fenced as data, after the system message.
    first = model.completions[0].messages
    assert first[0]["role"] == "system" and "<data>" in first[1]["content"]


async def test_roll_back_the_prompt_yields_a_pending_proposal_not_a_commit(
        llm_app: Harness, model: FakeOpenAI) -> None:
    alice = await _token(llm_app, "alice", "approver")
    head = _git(llm_app, "rev-parse", "HEAD")
    model.script(tool_call("propose", {"command": "rollback prompt shoppal-system"}),
                 text("I proposed rolling the shoppal prompt back; it needs an approval."))
    answer = await _ask(llm_app, alice, "roll back the shoppal prompt")
    assert answer["ok"] and len(answer["data"]["action_ids"]) == 1, _tool_results(model)
    action_id = answer["action_id"]
    r = await llm_app.client.get(f"/api/v1/actions/{action_id}", headers=llm_app.auth())
    action = r.json()
    assert action["status"] == "pending_approval" and action["requested_by"] == "alice"
    assert action["tool"] == "gitops.rollback_prompt"
    assert _git(llm_app, "rev-parse", "HEAD") == head  # nothing committed


async def test_a_viewer_cannot_get_the_model_to_propose(llm_app: Harness,
                                                        model: FakeOpenAI) -> None:
    viewer = await _token(llm_app, "vic", "viewer")
    model.script(tool_call("propose", {"command": "flag refund-tool off"}), text("Done!"))
    answer = await _ask(llm_app, viewer, "turn the refund tool off now")
    assert answer["data"]["action_ids"] == []
    assert "may not propose" in _tool_results(model)
    r = await llm_app.client.get("/api/v1/actions", headers=llm_app.auth())
    assert r.json()["actions"] == []


async def test_without_an_answer_the_help_is_shown(llm_app: Harness,
                                                   model: FakeOpenAI) -> None:
    from tests.fake_openai import error

    viewer = await _token(llm_app, "vic", "viewer")
    model.script(error(500))
    answer = await _ask(llm_app, viewer, "what is going on?")
    assert not answer["ok"] and "Commands for the viewer role" in answer["text"]
