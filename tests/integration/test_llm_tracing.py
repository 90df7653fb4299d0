"""Spans of model calls (agents/llm.py) exported to an in-memory exporter: the real
langchain-openai client against local OpenAI-compatible servers; GenAI attributes, incident id,
fallbacks, and no prompt text unless content logging is on (and then redacted)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from langchain_core.messages import HumanMessage, SystemMessage
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from agents.llm import LLM, Scope
from core import telemetry
from core.database import Database
from core.models import Incident
from core.settings import Settings
from tests.fake_openai import (
    MODEL,
    FakeOpenAI,
    configured,
    error,
    serve_openai,
    text,
    tool_call,
)

PROMPT = [SystemMessage("You route alerts."), HumanMessage("alert: chat-api 5xx")]
EMAIL = "jane.doe@example.com"
USER_ID = "usr_8f3a9c2e71"
PERSONAL = [HumanMessage(f"user {EMAIL} (id {USER_ID}) keeps failing on checkout")]
LOGS_TOOL = {"type": "function", "function": {
    "name": "logs_query", "description": "Search the logs.",
    "parameters": {"type": "object", "properties": {"query": {"type": "string"}},
                   "required": ["query"]}}}


@pytest.fixture
def spans() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = telemetry.new_tracer_provider(SimpleSpanProcessor(exporter))
    yield provider, exporter
    provider.shutdown()


@pytest.fixture
def primary() -> Iterator[FakeOpenAI]:
    with serve_openai() as fake:
        yield fake


@pytest.fixture
def secondary() -> Iterator[FakeOpenAI]:
    with serve_openai(FakeOpenAI(api_key="sk-secondary-0123456789", models=("backup-model",))) \
            as fake:
        yield fake


def _llm(settings: Settings, db: Database, provider: TracerProvider, primary: FakeOpenAI,
         secondary: FakeOpenAI | None = None, **values: Any) -> LLM:
    fallbacks = [] if secondary is None else [
        {"name": "secondary", "base_url": secondary.base_url, "model": "backup-model",
         "api_key": "sk-secondary-0123456789"}]
    config = configured(
        settings, primary,
        llm_fallbacks=Settings.model_validate({"llm_fallbacks": fallbacks}).llm_fallbacks,
        **{"llm_timeout_seconds": 2.0, **values})

    async def sleep(seconds: float) -> None:
        pass

    return LLM(config, db, sleep=sleep, tracer_provider=provider)


async def _incident(db: Database, incident_id: int) -> None:
    async with db.write() as session:
        session.add(Incident(id=incident_id, source="generic", group_key=f"g{incident_id}",
                             title="t", severity="warning"))


def _attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def _by_name(exporter: InMemorySpanExporter) -> tuple[ReadableSpan, list[ReadableSpan]]:
    """The llm.invoke span and the chat spans, in the order they ended."""
    finished = list(exporter.get_finished_spans())
    [root] = [s for s in finished if s.name == "llm.invoke"]
    return root, [s for s in finished if s.name.startswith("chat ")]


def _exported(exporter: InMemorySpanExporter) -> str:
    """Everything the spans would carry to a collector (names, attributes, events, status)."""
    return "\n".join(s.to_json() for s in exporter.get_finished_spans())


async def test_a_successful_call_has_the_genai_attributes_the_server_s_counts_and_the_incident(
        settings: Settings, db: Database, primary: FakeOpenAI,
        spans: tuple[TracerProvider, InMemorySpanExporter]) -> None:
    provider, exporter = spans
    await _incident(db, 7)
    primary.script(text("log_summarizer", prompt_tokens=120, completion_tokens=7))
    llm = _llm(settings, db, provider, primary)
    result = await llm.invoke(PROMPT, Scope("route", incident_id=7))
    assert result is not None
    root, [chat] = _by_name(exporter)
    assert chat.name == f"chat {MODEL}" and chat.kind is SpanKind.CLIENT
    usage = primary.last.usage
    assert usage is not None
    attributes = _attrs(chat)
    assert attributes == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": MODEL,
        "gen_ai.request.temperature": 0.0,
        "gen_ai.response.model": MODEL,
        "gen_ai.response.id": attributes["gen_ai.response.id"],
        "gen_ai.response.finish_reasons": ("stop",),
        "gen_ai.usage.input_tokens": usage["prompt_tokens"],
        "gen_ai.usage.output_tokens": usage["completion_tokens"],
        "server.address": "127.0.0.1",
        "server.port": primary.port,
        "metaops.incident_id": 7,
        "metaops.llm.purpose": "route",
        "metaops.llm.provider": "primary",
        "metaops.llm.attempt": 0,
        "metaops.llm.outcome": "ok",
    }
    assert (usage["prompt_tokens"], usage["completion_tokens"]) == (120, 7)
    assert str(attributes["gen_ai.response.id"]).startswith("chatcmpl-")
    assert "gen_ai.system" not in attributes  # deprecated: gen_ai.provider.name replaced it
    assert chat.status.status_code is StatusCode.UNSET and chat.events == ()
    # The chat span is a child of llm.invoke, which carries the scope and the outcome.
    assert chat.parent is not None and chat.parent.span_id == root.context.span_id
    assert chat.context.trace_id == root.context.trace_id and root.parent is None
    assert _attrs(root) == {"metaops.incident_id": 7, "metaops.llm.purpose": "route",
                            "metaops.llm.prompt_hash": _attrs(root)["metaops.llm.prompt_hash"],
                            "metaops.llm.outcome": "ok", "metaops.llm.provider": "primary"}
    assert root.kind is SpanKind.INTERNAL
    assert chat.resource.attributes["service.name"] == "metaops"


async def test_failing_primary_then_secondary_gives_two_spans_error_type_on_the_first(
        settings: Settings, db: Database, primary: FakeOpenAI, secondary: FakeOpenAI,
        spans: tuple[TracerProvider, InMemorySpanExporter]) -> None:
    provider, exporter = spans
    primary.script(error(500))
    secondary.script(text("cost_investigator", prompt_tokens=50, completion_tokens=2))
    llm = _llm(settings, db, provider, primary, secondary)
    result = await llm.invoke(PROMPT, Scope("chat", conversation="C1:171.1"))
    assert result is not None and result.provider == "secondary"
    root, [failed, answered] = _by_name(exporter)
    first, second = _attrs(failed), _attrs(answered)
    assert (failed.name, answered.name) == (f"chat {MODEL}", "chat backup-model")
    assert first["error.type"] == "InternalServerError"
    assert first["http.response.status_code"] == 500
    assert (first["metaops.llm.provider"], first["metaops.llm.outcome"]) == ("primary", "error")
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.status.description == "InternalServerError (HTTP 500)"
    assert "gen_ai.usage.input_tokens" not in first and failed.events == ()
    assert "error.type" not in second and answered.status.status_code is StatusCode.UNSET
    assert (second["metaops.llm.provider"], second["gen_ai.request.model"]) == (
        "secondary", "backup-model")
    assert (second["gen_ai.usage.input_tokens"], second["gen_ai.usage.output_tokens"]) == (50, 2)
    assert second["server.port"] == secondary.port
    for span in (failed, answered, root):
        assert _attrs(span)["gen_ai.conversation.id"] == "C1:171.1"
        assert "metaops.incident_id" not in _attrs(span)  # no incident in this scope
    for span in (failed, answered):  # both attempts under the one llm.invoke
        assert span.parent is not None and span.parent.span_id == root.context.span_id
    assert _attrs(root)["metaops.llm.provider"] == "secondary"
    # Both failing: two error spans, and llm.invoke says the caller takes the rules.
    exporter.clear()
    primary.script(error(500))
    secondary.script(error(503))
    assert await llm.invoke(PROMPT, Scope("route")) is None
    root, chats = _by_name(exporter)
    assert [_attrs(s)["error.type"] for s in chats] == ["InternalServerError"] * 2
    assert _attrs(root)["metaops.llm.outcome"] == "unavailable"
    assert root.status.status_code is StatusCode.UNSET  # handled: the rules answer


async def test_retries_are_one_span_each(
        settings: Settings, db: Database, primary: FakeOpenAI,
        spans: tuple[TracerProvider, InMemorySpanExporter]) -> None:
    provider, exporter = spans
    primary.script(error(429, retry_after=1), text("ok", prompt_tokens=5, completion_tokens=1))
    llm = _llm(settings, db, provider, primary, llm_max_retries=2)
    assert await llm.invoke(PROMPT, Scope("route")) is not None
    _, chats = _by_name(exporter)
    assert [(_attrs(s)["metaops.llm.attempt"], _attrs(s).get("error.type")) for s in chats] == [
        (0, "RateLimitError"), (1, None)]


async def test_budget_refusals_and_breaker_skips_are_events_without_a_chat_span(
        settings: Settings, db: Database, primary: FakeOpenAI, secondary: FakeOpenAI,
        spans: tuple[TracerProvider, InMemorySpanExporter]) -> None:
    provider, exporter = spans
    await _incident(db, 3)
    llm = _llm(settings, db, provider, primary, secondary, llm_budget={"incident_tokens": 100},
               llm_breaker={"failure_threshold": 1, "window_seconds": 60,
                            "cooldown_seconds": 600})
    primary.script(error(500))
    secondary.script(text("a", prompt_tokens=90, completion_tokens=20))
    assert await llm.invoke(PROMPT, Scope("narrative", incident_id=3)) is not None
    exporter.clear()
    # Over budget: no request at all, an event on llm.invoke.
    assert await llm.invoke(PROMPT, Scope("narrative", incident_id=3)) is None
    root, chats = _by_name(exporter)
    assert chats == []
    assert _attrs(root)["metaops.llm.outcome"] == "over_budget"
    assert _attrs(root)["metaops.incident_id"] == 3
    [event] = root.events
    assert event.name == "metaops.llm.over_budget"
    assert dict(event.attributes or {})["metaops.llm.budget.limit"] == "incident_tokens"
    exporter.clear()
    # The primary's breaker is open (one failure): skipped with an event, secondary answers.
    secondary.script(text("b", prompt_tokens=1, completion_tokens=1))
    assert await llm.invoke(PROMPT, Scope("route")) is not None
    root, [chat] = _by_name(exporter)
    assert [(e.name, dict(e.attributes or {})) for e in root.events] == [
        ("metaops.llm.breaker_open", {"metaops.llm.provider": "primary"})]
    assert _attrs(chat)["metaops.llm.provider"] == "secondary"


async def test_no_prompt_or_answer_text_in_spans_when_content_logging_is_off(
        settings: Settings, db: Database, primary: FakeOpenAI,
        spans: tuple[TracerProvider, InMemorySpanExporter]) -> None:
    provider, exporter = spans
    await _incident(db, 5)
    llm = _llm(settings, db, provider, primary)
    assert not llm.settings.llm_log_content  # the default
    primary.script(text(f"Contact {EMAIL} about {USER_ID}", prompt_tokens=9, completion_tokens=6),
                   tool_call("logs_query", {"query": f"user_id={USER_ID} {EMAIL}"}),
                   error(400, f"Invalid request: content of {EMAIL} / {USER_ID} rejected"))
    for _ in range(3):
        await llm.invoke(PERSONAL, Scope("chat", incident_id=5), tools=[LOGS_TOOL])
    assert primary.pending == 0
    shown = _exported(exporter)
    assert len(exporter.get_finished_spans()) == 6
    for secret in (EMAIL, "jane.doe", USER_ID, "keeps failing", "Contact", "logs_query",
                   "Invalid request"):
        assert secret not in shown, secret
    assert all(not s.events for s in exporter.get_finished_spans() if s.name != "llm.invoke")


async def test_content_logging_puts_the_redacted_text_in_a_span_event(
        settings: Settings, db: Database, primary: FakeOpenAI,
        spans: tuple[TracerProvider, InMemorySpanExporter]) -> None:
    provider, exporter = spans
    llm = _llm(settings, db, provider, primary, llm_log_content=True)
    primary.script(text(f"Mail {EMAIL} now", prompt_tokens=4, completion_tokens=4),
                   tool_call("logs_query", {"query": f"from:{EMAIL}"}))
    await llm.invoke(PERSONAL, Scope("chat", conversation="C9"))
    _, [plain] = _by_name(exporter)
    shown = _exported(exporter)
    exporter.clear()
    await llm.invoke(PERSONAL, Scope("chat", conversation="C9"), tools=[LOGS_TOOL])
    _, [tooled] = _by_name(exporter)
    shown += _exported(exporter)
    assert "keeps failing on checkout" in shown and "logs_query" in shown
    assert EMAIL not in shown and "jane.doe" not in shown
    [event] = plain.events
    assert event.name == "gen_ai.client.inference.operation.details"
    details = dict(event.attributes or {})
    inputs = json.loads(str(details["gen_ai.input.messages"]))
    [output] = json.loads(str(details["gen_ai.output.messages"]))
    assert [m["role"] for m in inputs] == ["user"]
    [part] = inputs[0]["parts"]
    assert part["type"] == "text" and "[REDACTED:" in part["content"]
    assert part["content"].startswith("user ") and "keeps failing on checkout" in part["content"]
    assert output["role"] == "assistant" and output["finish_reason"] == "stop"
    assert output["parts"][0]["content"].startswith("Mail [REDACTED:")
    [event] = tooled.events
    [output] = json.loads(str(dict(event.attributes or {})["gen_ai.output.messages"]))
    [call] = output["parts"]
    assert call["type"] == "tool_call" and call["name"] == "logs_query"
    assert call["arguments"]["query"].startswith("from:[REDACTED:")
    assert output["finish_reason"] == "tool_calls"


@pytest.mark.parametrize("log_content", [False, True])
async def test_no_personal_data_of_the_scenarios_reaches_spans_or_audit(
        settings: Settings, db: Database, primary: FakeOpenAI,
        spans: tuple[TracerProvider, InMemorySpanExporter], log_content: bool) -> None:
    from sqlalchemy import select

    from core.models import AuditEvent
    from tests.support import SCENARIOS, load_json

    forbidden: list[str] = []
    for scenario in ("provider-outage", "hallucination-storm", "cost-spike"):
        expected = load_json(SCENARIOS / scenario / "expected.json")
        forbidden += expected.get("must_not_appear_anywhere", [])
    assert forbidden
    provider, exporter = spans
    primary.script(text("Looked at it: " + " ".join(forbidden), prompt_tokens=9,
                        completion_tokens=9))
    llm = _llm(settings, db, provider, primary, llm_log_content=log_content)
    # Scenario text as it would reach a model: log excerpts quoted in a question.
    question = "These lines keep failing: " + " | ".join(forbidden)
    assert await llm.invoke([HumanMessage(question)], Scope("chat", conversation="c1")) \
        is not None
    async with db.read() as session:
        payloads = [json.dumps(e.payload) for e in await session.scalars(select(AuditEvent))]
    shown = _exported(exporter) + "\n".join(payloads)
    assert ("Looked at it" in shown) is log_content  # content only when asked for
    assert [v for v in forbidden if v in shown] == []
