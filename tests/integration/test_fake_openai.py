"""The fake OpenAI server driven by the real langchain-openai ChatOpenAI (and openai) clients."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI

from tests.fake_openai import (
    API_KEY,
    DEFAULT_TEXT,
    MODEL,
    FakeOpenAI,
    Reply,
    ToolCall,
    disconnect,
    error,
    last_user_text,
    rate_limited,
    respond,
    serve_openai,
    slow,
    text,
    tool_call,
    tool_calls,
)


@tool
def read_logs(service: str, minutes: int = 15) -> str:
    """Read the recent log lines of a service."""
    return ""


@tool
def read_metrics(service: str, metric: str) -> str:
    """Read a metric of a service."""
    return ""


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    with serve_openai() as served:
        yield served


def chat(fake: FakeOpenAI, **overrides: Any) -> ChatOpenAI:
    options: dict[str, Any] = {"base_url": fake.base_url, "api_key": API_KEY, "model": MODEL,
                               "timeout": 5, "max_retries": 0, "stream_usage": True}
    options.update(overrides)
    return ChatOpenAI(**options)


def collect(chunks: Iterator[BaseMessage]) -> tuple[AIMessageChunk, list[AIMessageChunk]]:
    seen = [c for c in chunks if isinstance(c, AIMessageChunk)]
    assert seen, "the stream yielded nothing"
    full = seen[0]
    for c in seen[1:]:
        full = full + c
    return full, seen


def usage(message: AIMessage) -> tuple[int, int, int]:
    assert message.usage_metadata is not None, "no usage reported"
    u = message.usage_metadata
    return u["input_tokens"], u["output_tokens"], u["total_tokens"]


# -- plain and streamed answers -----------------------------------------------------------------

def test_invoke_returns_the_scripted_text_and_usage_and_the_request_is_recorded(
        fake: FakeOpenAI) -> None:
    fake.script(text("chat-api is failing because the provider times out.",
                     prompt_tokens=321, completion_tokens=17, cached_tokens=5))
    answer = chat(fake, timeout=4).invoke([("system", "You are an SRE."),
                                           ("user", "why is chat-api failing?")])

    assert answer.content == "chat-api is failing because the provider times out."
    assert usage(answer) == (321, 17, 338)
    assert answer.usage_metadata is not None
    assert answer.usage_metadata.get("input_token_details", {}).get("cache_read") == 5
    assert answer.response_metadata["finish_reason"] == "stop"
    assert answer.response_metadata["model_name"] == MODEL
    call = fake.last
    assert (call.status, call.stream, call.model) == (200, False, MODEL)
    assert [(m["role"], m["content"]) for m in call.messages] == [
        ("system", "You are an SRE."), ("user", "why is chat-api failing?")]
    assert call.headers["authorization"] == f"Bearer {API_KEY}"
    assert call.headers["x-stainless-read-timeout"] == "4.0"  # the client tells its timeout
    assert "stream_options" not in call.body
    assert call.usage is not None and call.usage["total_tokens"] == 338
    assert fake.pending == 0


def test_an_empty_script_answers_the_default_reply_which_is_configurable(
        fake: FakeOpenAI) -> None:
    llm = chat(fake)
    assert llm.invoke("hello").content == DEFAULT_TEXT
    fake.default = text("fallback answer", prompt_tokens=1, completion_tokens=2)
    fake.script("scripted first")
    assert [llm.invoke("a").content, llm.invoke("b").content] == [
        "scripted first", "fallback answer"]
    assert len(fake.completions) == 3


def test_stream_arrives_in_several_chunks_and_ends_with_the_scripted_usage(
        fake: FakeOpenAI) -> None:
    fake.script(text("the provider returns 503 on every call", prompt_tokens=40,
                     completion_tokens=9))
    full, chunks = collect(chat(fake).stream("why?"))

    assert full.content == "the provider returns 503 on every call"
    assert len([c for c in chunks if c.content]) >= 5
    assert usage(full) == (40, 9, 49)
    # usage arrives once, on its own chunk, after the content
    assert [i for i, c in enumerate(chunks) if c.usage_metadata] == [
        max(i for i, c in enumerate(chunks) if c.usage_metadata)]
    assert fake.last.stream
    assert fake.last.body["stream_options"] == {"include_usage": True}


async def test_astream_and_ainvoke_work_against_the_fake(fake: FakeOpenAI) -> None:
    fake.script(text("streamed asynchronously", prompt_tokens=12, completion_tokens=3),
                text("invoked asynchronously", prompt_tokens=7, completion_tokens=2))
    llm = chat(fake)
    chunks = [c async for c in llm.astream("go")]
    full, _ = collect(iter(chunks))
    answer = await llm.ainvoke("go again")

    assert (full.content, usage(full)) == ("streamed asynchronously", (12, 3, 15))
    assert (answer.content, usage(answer)) == ("invoked asynchronously", (7, 2, 9))
    assert fake.completions[0].headers["x-stainless-async"].startswith("async")


def test_without_stream_usage_a_custom_base_url_streams_no_usage(fake: FakeOpenAI) -> None:
    fake.script(text("no usage for you", prompt_tokens=5, completion_tokens=4))
    llm = ChatOpenAI(base_url=fake.base_url, api_key=API_KEY, model=MODEL, timeout=5,
                     max_retries=0)
    full, _ = collect(llm.stream("hi"))

    assert full.content == "no usage for you"
    assert full.usage_metadata is None
    assert "stream_options" not in fake.last.body  # so the server sent no usage chunk


# -- tool calls ---------------------------------------------------------------------------------

def test_bound_tools_are_sent_and_a_scripted_tool_call_comes_back(fake: FakeOpenAI) -> None:
    fake.script(tool_call("read_logs", {"service": "chat-api", "minutes": 30},
                          call_id="call_logs_1", prompt_tokens=90, completion_tokens=21))
    answer = chat(fake).bind_tools([read_logs, read_metrics]).invoke("why is chat-api failing?")

    assert answer.tool_calls == [{"name": "read_logs", "args": {"service": "chat-api",
                                                                "minutes": 30},
                                  "id": "call_logs_1", "type": "tool_call"}]
    assert answer.response_metadata["finish_reason"] == "tool_calls"
    assert usage(answer) == (90, 21, 111)
    assert fake.last.tool_names == ["read_logs", "read_metrics"]
    params = fake.last.tools[0]["function"]["parameters"]
    assert params["required"] == ["service"]


def test_streamed_parallel_tool_calls_are_reassembled_from_argument_fragments(
        fake: FakeOpenAI) -> None:
    fake.script(tool_calls(ToolCall("read_logs", {"service": "chat-api", "minutes": 5}),
                           ToolCall("read_metrics", {"service": "chat-api",
                                                     "metric": "error_rate"}, "call_m"),
                           prompt_tokens=70, completion_tokens=30))
    llm = chat(fake).bind_tools([read_logs, read_metrics])
    full, chunks = collect(llm.stream("look at chat-api"))

    assert [(c["name"], c["args"]) for c in full.tool_calls] == [
        ("read_logs", {"service": "chat-api", "minutes": 5}),
        ("read_metrics", {"service": "chat-api", "metric": "error_rate"})]
    assert full.tool_calls[1]["id"] == "call_m"
    assert str(full.tool_calls[0]["id"]).startswith("call_")
    assert len([c for c in chunks if c.tool_call_chunks]) > 4  # arguments came in fragments
    assert usage(full) == (70, 30, 100)


def test_a_reply_can_depend_on_the_request_like_a_model_obeying_the_prompt(
        fake: FakeOpenAI) -> None:
    def obey(body: dict[str, Any]) -> Reply | str:
        said = last_user_text(body)
        if said.startswith("CALL "):
            return tool_call(said.split()[1], {"service": said.split()[2]})
        return f"you said: {said}"

    fake.default = respond(obey)
    llm = chat(fake).bind_tools([read_logs])
    assert llm.invoke("hello").content == "you said: hello"
    assert llm.invoke("CALL read_logs payments").tool_calls[0]["args"] == {"service": "payments"}
    full, _ = collect(llm.stream("CALL read_logs search"))
    assert full.tool_calls[0]["args"] == {"service": "search"}


# -- failures -----------------------------------------------------------------------------------

def test_429_surfaces_as_rate_limit_error_with_the_scripted_retry_after(
        fake: FakeOpenAI) -> None:
    fake.script(rate_limited(retry_after=7))
    with pytest.raises(openai.RateLimitError) as caught:
        chat(fake, max_retries=0).invoke("hi")

    assert caught.value.status_code == 429
    assert caught.value.response.headers["retry-after"] == "7"
    assert caught.value.code == "rate_limit_exceeded"
    assert caught.value.type == "requests"
    assert [c.status for c in fake.completions] == [429]


def test_the_openai_client_retries_a_429_after_waiting_retry_after(fake: FakeOpenAI) -> None:
    fake.script(rate_limited(retry_after=1), text("second time lucky"))
    started = time.monotonic()
    answer = chat(fake, max_retries=1).invoke("hi")

    assert answer.content == "second time lucky"
    first, second = fake.completions
    assert (first.status, second.status) == (429, 200)
    assert (first.retry_count, second.retry_count) == (0, 1)
    # the SDK's own backoff would be at most 0.5 s; it waited the server's Retry-After instead
    assert second.at - first.at >= 0.95
    assert time.monotonic() - started < 5


def test_a_retry_after_beyond_the_sdk_cap_is_not_retried_at_all(fake: FakeOpenAI) -> None:
    fake.script(rate_limited(retry_after=600), text("never reached"))
    started = time.monotonic()
    with pytest.raises(openai.RateLimitError):
        chat(fake, max_retries=3).invoke("hi")

    assert time.monotonic() - started < 2
    assert len(fake.completions) == 1 and fake.pending == 1


def test_500_surfaces_as_internal_server_error_and_is_retried_unless_told_not_to(
        fake: FakeOpenAI) -> None:
    fake.script(error(500))
    with pytest.raises(openai.InternalServerError) as caught:
        chat(fake).invoke("hi")
    assert caught.value.status_code == 500
    assert caught.value.type == "server_error"

    fake.reset()
    fake.script(error(500), text("recovered"))
    assert chat(fake, max_retries=1).invoke("hi").content == "recovered"
    assert [c.status for c in fake.completions] == [500, 200]

    fake.reset()
    fake.script(error(503, headers={"x-should-retry": "false"}), text("not this"))
    with pytest.raises(openai.InternalServerError):
        chat(fake, max_retries=2).invoke("hi")
    assert [c.status for c in fake.completions] == [503]


def test_a_slow_reply_past_the_timeout_raises_api_timeout_error(fake: FakeOpenAI) -> None:
    fake.script(slow(3, "too late"))
    started = time.monotonic()
    with pytest.raises(openai.APITimeoutError):
        chat(fake, timeout=0.5, max_retries=0).invoke("hi")

    assert time.monotonic() - started < 1.5
    assert fake.last.delay == 3 and fake.last.status == 200


def test_a_slow_reply_does_not_block_other_requests(fake: FakeOpenAI) -> None:
    fake.script(slow(1.0, "slow answer"), "fast answer")
    llm = chat(fake)
    results: dict[str, str] = {}
    worker = threading.Thread(target=lambda: results.update(slow=str(llm.invoke("a").content)))
    worker.start()
    fake.wait_for_calls(1)
    fast = llm.invoke("b").content
    slow_done_first = "slow" in results
    worker.join(5)

    assert fast == "fast answer"
    assert not slow_done_first  # the fast answer came while the slow one was still sleeping
    assert results == {"slow": "slow answer"}


def test_a_wrong_api_key_is_an_authentication_error_and_consumes_no_reply(
        fake: FakeOpenAI) -> None:
    fake.script("kept for the right key")
    with pytest.raises(openai.AuthenticationError) as caught:
        chat(fake, api_key="sk-wrong-key-000000").invoke("hi")

    assert caught.value.code == "invalid_api_key"
    assert "Incorrect API key provided" in caught.value.message
    assert fake.last.status == 401 and fake.last.api_key == "sk-wrong-key-000000"
    assert fake.pending == 1
    assert chat(fake).invoke("hi").content == "kept for the right key"


def test_a_dropped_connection_is_an_api_connection_error(fake: FakeOpenAI) -> None:
    fake.script(disconnect())
    with pytest.raises(openai.APIConnectionError) as caught:
        chat(fake).invoke("hi")
    assert not isinstance(caught.value, openai.APITimeoutError)
    assert fake.last.status == 0


# -- several providers, models, bad requests ----------------------------------------------------

def test_primary_and_fallback_run_side_by_side_on_their_own_ports() -> None:
    with serve_openai() as primary, \
            serve_openai(FakeOpenAI(api_key="sk-second", models=("backup-model",))) as second:
        primary.script(error(500))
        second.script(text("answered by the fallback", prompt_tokens=3, completion_tokens=4))
        backup = ChatOpenAI(base_url=second.base_url, api_key="sk-second", model="backup-model",
                            timeout=5, max_retries=0, stream_usage=True)
        answer = chat(primary).with_fallbacks([backup]).invoke("hi")

        assert primary.port != second.port
        assert answer.content == "answered by the fallback"
        assert [c.status for c in primary.completions] == [500]
        assert [(c.status, c.model, c.api_key) for c in second.completions] == [
            (200, "backup-model", "sk-second")]


def test_models_endpoint_lists_the_configured_ids_and_strict_models_reject_others() -> None:
    with serve_openai(FakeOpenAI(models=("ops-model", "ops-model-mini"),
                                 strict_models=True)) as fake:
        client = openai.OpenAI(base_url=fake.base_url, api_key=API_KEY, max_retries=0,
                               timeout=5)
        assert [m.id for m in client.models.list()] == ["ops-model", "ops-model-mini"]
        with pytest.raises(openai.NotFoundError) as caught:
            chat(fake, model="gpt-unknown").invoke("hi")
        assert caught.value.code == "model_not_found"


def test_malformed_requests_get_openai_error_bodies(fake: FakeOpenAI) -> None:
    auth = {"Authorization": f"Bearer {API_KEY}"}
    with httpx.Client(base_url=fake.url, headers=auth, timeout=5) as http:
        unknown = http.post("/v1/completions-typo", json={})
        not_json = http.post("/v1/chat/completions", content=b"{nope",
                             headers={"Content-Type": "application/json"})
        no_messages = http.post("/v1/chat/completions", json={"model": MODEL})
        no_key = httpx.post(f"{fake.base_url}/chat/completions", json={}, timeout=5)

    assert unknown.status_code == 404
    assert not_json.status_code == 400
    assert no_messages.status_code == 400
    assert no_messages.json() == {"error": {
        "message": "Missing required parameter: 'messages'.", "type": "invalid_request_error",
        "param": "messages", "code": "missing_required_parameter"}}
    assert no_key.status_code == 401
    assert set(no_key.json()["error"]) == {"message", "type", "param", "code"}
    assert fake.pending == 0 and len(fake.calls) == 4
