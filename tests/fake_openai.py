"""A wire-level fake of the OpenAI chat completions API, scripted per test, for real clients."""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlparse

from core.settings import Settings

# The server speaks what `openai` (and so `langchain_openai.ChatOpenAI`) calls:
#   POST /v1/chat/completions  -> `chat.completion` JSON, or with `"stream": true` an SSE stream of
#                                 `chat.completion.chunk` events ended by `data: [DONE]`; with
#                                 `stream_options.include_usage` every chunk carries `"usage": null`
#                                 and one last chunk with `"choices": []` carries the usage.
#   GET  /v1/models            -> `{"object": "list", "data": [{"id", "object": "model", ...}]}`
# Errors are `{"error": {"message", "type", "param", "code"}}` with the HTTP status; a wrong or
# missing `Authorization: Bearer <key>` answers 401 before any scripted reply is consumed.

API_KEY = "sk-fake-openai-0123456789abcdef"
MODEL = "ops-model"
DEFAULT_TEXT = "This is the fake model's default answer."
CREATED = 1_700_000_000
SYSTEM_FINGERPRINT = "fp_fake0penai"

Obj = dict[str, Any]

_COMPLETIONS = "/v1/chat/completions"
_MODELS = "/v1/models"
_WORDS = re.compile(r"\s*\S+\s*|\s+")

# The error `type` (and `code`) OpenAI sends with each status when the script names none.
_ERROR_TYPES: dict[int, tuple[str, str | None]] = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("permission_denied", None),
    404: ("invalid_request_error", None),
    409: ("invalid_request_error", None),
    422: ("invalid_request_error", None),
    429: ("requests", "rate_limit_exceeded"),
}


# -- scripted replies ---------------------------------------------------------------------------

@dataclass(frozen=True)
class ToolCall:
    """One function call the model makes; call_id None: the fake numbers it (`call_fake...`)."""

    name: str
    arguments: Obj
    call_id: str | None = None


@dataclass(frozen=True)
class Text:
    """An assistant message. Token counts None: estimated from the request / the content."""

    content: str
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cached_tokens: int = 0
    finish_reason: str = "stop"


@dataclass(frozen=True)
class ToolCalls:
    """An assistant message calling one or several tools (optionally with some content)."""

    calls: tuple[ToolCall, ...]
    content: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cached_tokens: int = 0


@dataclass(frozen=True)
class Error:
    """An error answer: `status` with OpenAI's error body, `Retry-After` when retry_after is set,
    plus any extra headers (e.g. {"x-should-retry": "false"}, {"retry-after-ms": "50"})."""

    status: int
    message: str
    type: str | None = None
    code: str | None = None
    param: str | None = None
    retry_after: float | str | None = None
    headers: tuple[tuple[str, str], ...] = ()

    def body(self) -> Obj:
        default_type, default_code = _ERROR_TYPES.get(
            self.status, ("server_error", None) if self.status >= 500 else ("api_error", None))
        return {"error": {"message": self.message, "type": self.type or default_type,
                          "param": self.param, "code": self.code or default_code}}


@dataclass(frozen=True)
class Slow:
    """Wait `seconds` before answering with `then` (None: the fake's default reply)."""

    seconds: float
    then: Reply | None = None


@dataclass(frozen=True)
class Dynamic:
    """The reply is computed from the parsed request body (a str is shorthand for text(str))."""

    fn: Callable[[Obj], Reply | str]


@dataclass(frozen=True)
class Disconnect:
    """Close the connection without answering (the client sees a connection error)."""


Reply = Text | ToolCalls | Error | Slow | Dynamic | Disconnect


def text(content: str, *, prompt_tokens: int | None = None, completion_tokens: int | None = None,
         cached_tokens: int = 0, finish_reason: str = "stop") -> Text:
    """An assistant text reply with exactly these usage counts (None: a deterministic estimate,
    which the recorded Call.usage shows)."""
    return Text(content, prompt_tokens, completion_tokens, cached_tokens, finish_reason)


def tool_call(name: str, arguments: Obj, *, call_id: str | None = None,
              also: list[ToolCall] | None = None, content: str | None = None,
              prompt_tokens: int | None = None, completion_tokens: int | None = None,
              cached_tokens: int = 0) -> ToolCalls:
    """The model calls tool `name` with `arguments` (and the tools in `also`, in order)."""
    calls = (ToolCall(name, dict(arguments), call_id), *(also or []))
    return ToolCalls(calls, content, prompt_tokens, completion_tokens, cached_tokens)


def tool_calls(*calls: ToolCall, content: str | None = None, prompt_tokens: int | None = None,
               completion_tokens: int | None = None, cached_tokens: int = 0) -> ToolCalls:
    """The model calls several tools at once (parallel tool calls)."""
    if not calls:
        raise ValueError("tool_calls() needs at least one ToolCall")
    return ToolCalls(tuple(calls), content, prompt_tokens, completion_tokens, cached_tokens)


def error(status: int, message: str | None = None, *, retry_after: float | str | None = None,
          code: str | None = None, type: str | None = None, param: str | None = None,
          headers: dict[str, str] | None = None) -> Error:
    """An HTTP error with OpenAI's body: 429 (type "requests", code "rate_limit_exceeded", and
    `Retry-After: <retry_after>`), 500 ("server_error"), 401 ("invalid_api_key"), ..."""
    default = {429: "Rate limit reached for requests. Please try again later.",
               401: "Incorrect API key provided.",
               500: "The server had an error while processing your request. Sorry about that!",
               503: "The engine is currently overloaded, please try again later."}
    return Error(status, message or default.get(status, f"HTTP {status}"), type, code, param,
                 retry_after, tuple((headers or {}).items()))


def rate_limited(retry_after: float | str | None = 1, message: str | None = None) -> Error:
    """Shorthand for error(429, retry_after=...)."""
    return error(429, message, retry_after=retry_after)


def slow(seconds: float, then: Reply | str | None = None) -> Slow:
    """Sleep `seconds` before answering `then` (a str is text(str); None: the default reply).
    Other requests are served meanwhile."""
    return Slow(seconds, text(then) if isinstance(then, str) else then)


def respond(fn: Callable[[Obj], Reply | str]) -> Dynamic:
    """A reply computed from the parsed request body, e.g. a model that obeys the prompt:
    respond(lambda body: tool_call("rollback", {"target": last_user_text(body)}))."""
    return Dynamic(fn)


def disconnect() -> Disconnect:
    """Drop the connection without an answer."""
    return Disconnect()


# -- reading requests ---------------------------------------------------------------------------

def message_text(message: Obj) -> str:
    """The text of one chat message, whether `content` is a string or a list of parts."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content
                       if isinstance(p, dict) and p.get("type") in ("text", "input_text"))
    return ""


def last_user_text(body: Obj) -> str:
    """The text of the last `user` message of a chat completions request ("" if none)."""
    for message in reversed(body.get("messages") or []):
        if isinstance(message, dict) and message.get("role") == "user":
            return message_text(message)
    return ""


def _estimate_tokens(value: str) -> int:
    return max(1, (len(value) + 3) // 4)


def _prompt_tokens(body: Obj) -> int:
    messages = [m for m in body.get("messages") or [] if isinstance(m, dict)]
    tools = json.dumps(body.get("tools") or [], sort_keys=True) if body.get("tools") else ""
    return sum(4 + _estimate_tokens(message_text(m)) for m in messages) + (
        _estimate_tokens(tools) if tools else 0)


# -- records ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Call:
    """One HTTP request, recorded when it arrives (so a slow reply's call is visible at once).
    headers: names lower-cased; body: the parsed JSON (None if empty or not JSON); status: what
    is (or will be, after `delay`) answered, 0 for a dropped connection; usage: the usage the
    answer reports (None for errors); at: time.monotonic() on arrival."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any
    status: int
    at: float
    delay: float = 0.0
    stream: bool = False
    usage: Obj | None = None
    reply: Reply | None = None

    @property
    def model(self) -> str | None:
        return self.body.get("model") if isinstance(self.body, dict) else None

    @property
    def messages(self) -> list[Obj]:
        return list(self.body.get("messages") or []) if isinstance(self.body, dict) else []

    @property
    def tools(self) -> list[Obj]:
        return list(self.body.get("tools") or []) if isinstance(self.body, dict) else []

    @property
    def tool_names(self) -> list[str]:
        return [str((t.get("function") or {}).get("name")) for t in self.tools]

    @property
    def api_key(self) -> str | None:
        auth = self.headers.get("authorization", "")
        return auth[len("Bearer "):] if auth.startswith("Bearer ") else None

    @property
    def retry_count(self) -> int:
        """The openai SDK's own `x-stainless-retry-count` header (0 for a first attempt)."""
        return int(self.headers.get("x-stainless-retry-count") or 0)


@dataclass(frozen=True)
class _Answer:
    """What the handler writes: JSON, SSE events, or nothing (drop)."""

    status: int
    headers: dict[str, str]
    json: Obj | None = None
    events: tuple[Obj, ...] | None = None
    delay: float = 0.0


# -- the fake -----------------------------------------------------------------------------------

@dataclass
class FakeOpenAI:
    """One OpenAI-compatible provider. Replies queued with `script()` answer POSTs to
    /v1/chat/completions one each, in order; when the queue is empty `default` answers.
    Serve it with `serve_openai()`; clients use `base_url` (= url + "/v1") and `api_key`."""

    api_key: str | None = API_KEY  # None: accept any (or no) key
    models: tuple[str, ...] = (MODEL,)
    strict_models: bool = False  # True: unknown model -> 404 model_not_found
    default: Reply = field(default_factory=lambda: text(DEFAULT_TEXT))
    chunk_delay: float = 0.0  # seconds between SSE events of streamed answers
    calls: list[Call] = field(default_factory=list)
    url: str = ""
    lock: threading.RLock = field(default_factory=threading.RLock)
    _script: deque[Reply] = field(init=False, default_factory=deque)
    _closing: threading.Event = field(init=False, default_factory=threading.Event)
    _arrived: threading.Condition = field(init=False)
    _served: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self._arrived = threading.Condition(self.lock)

    # -- scripting -----------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    @property
    def port(self) -> int:
        return int(urlparse(self.url).port or 0)

    def script(self, *replies: Reply | str) -> FakeOpenAI:
        """Queue replies (a str is text(str)) for the next chat completion requests."""
        with self.lock:
            self._script.extend(text(r) if isinstance(r, str) else r for r in replies)
        return self

    @property
    def pending(self) -> int:
        """Scripted replies not consumed yet."""
        with self.lock:
            return len(self._script)

    def reset(self) -> None:
        """Forget the script and the recorded calls."""
        with self.lock:
            self._script.clear()
            self.calls.clear()

    @property
    def completions(self) -> list[Call]:
        """The recorded POSTs to /v1/chat/completions (401s and 400s included)."""
        with self.lock:
            return [c for c in self.calls if c.path == _COMPLETIONS and c.method == "POST"]

    @property
    def last(self) -> Call:
        found = self.completions
        if not found:
            raise AssertionError("no chat completion request was made")
        return found[-1]

    def wait_for_calls(self, n: int, timeout: float = 5.0) -> list[Call]:
        """Block until at least `n` completion requests have arrived (AssertionError if not)."""
        deadline = time.monotonic() + timeout
        with self._arrived:
            while len(self.completions) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"{len(self.completions)} of {n} calls within {timeout}s")
                self._arrived.wait(left)
            return self.completions

    # -- answering -----------------------------------------------------------------------------

    def handle(self, method: str, raw_path: str, headers: dict[str, str], raw: bytes) -> _Answer:
        """Decide the answer and record the call (under the lock; sleeping happens outside)."""
        path = urlparse(raw_path).path.rstrip("/")
        arrived = time.monotonic()
        body: Any = None
        bad_json = False
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                bad_json = True
        with self.lock:
            self._served += 1
            serial = self._served
            stream = isinstance(body, dict) and body.get("stream") is True
            answer, reply, usage = self._decide(method, path, headers, body, bad_json, serial)
            self.calls.append(Call(method, path, headers, body, answer.status, arrived,
                                   answer.delay, stream, usage, reply))
            self._arrived.notify_all()
        return answer

    def _decide(self, method: str, path: str, headers: dict[str, str], body: Any, bad_json: bool,
                serial: int) -> tuple[_Answer, Reply | None, Obj | None]:
        rid = {"x-request-id": f"req_fake{serial:06d}"}
        if path not in (_COMPLETIONS, _MODELS):
            return self._error(Error(404, f"Invalid URL ({method} {path})"), rid), None, None
        if self.api_key is not None:
            auth = headers.get("authorization", "")
            if not auth.startswith("Bearer ") or not auth[len("Bearer "):].strip():
                return self._error(Error(
                    401, "You didn't provide an API key. You need to provide your API key in an "
                         "Authorization header using Bearer auth (i.e. Authorization: Bearer "
                         "YOUR_KEY).", code="missing_api_key"), rid), None, None
            given = auth[len("Bearer "):].strip()
            if given != self.api_key:
                hint = f"{given[:3]}*****{given[-4:]}" if len(given) > 8 else "*****"
                return self._error(Error(
                    401, f"Incorrect API key provided: {hint}. You can find your API key at "
                         "https://platform.openai.com/account/api-keys."), rid), None, None
        if path == _MODELS:
            if method != "GET":
                return self._error(Error(405, f"Invalid method for URL ({method} {path})"),
                                   rid), None, None
            data = [{"id": m, "object": "model", "created": CREATED, "owned_by": "fake-openai"}
                    for m in self.models]
            return _Answer(200, rid, {"object": "list", "data": data}), None, None
        if method != "POST":
            return self._error(Error(405, f"Invalid method for URL ({method} {path})"),
                               rid), None, None
        if bad_json or not isinstance(body, dict):
            return self._error(Error(
                400, "We could not parse the JSON body of your request. (HINT: This likely means "
                     "you aren't using your HTTP library correctly. The OpenAI API expects a JSON "
                     "payload, but what was sent was not valid JSON.)"), rid), None, None
        for name in ("model", "messages"):
            if not body.get(name):
                return self._error(Error(400, f"Missing required parameter: '{name}'.",
                                         param=name, code="missing_required_parameter"),
                                   rid), None, None
        if self.strict_models and body["model"] not in self.models:
            return self._error(Error(
                404, f"The model `{body['model']}` does not exist or you do not have access "
                     "to it.", code="model_not_found"), rid), None, None
        reply = self._script.popleft() if self._script else self.default
        answer, usage = self._render(reply, body, serial, rid)
        return answer, reply, usage

    def _resolve(self, reply: Reply | str | None, body: Obj) -> tuple[Reply, float]:
        """Unwrap Slow and Dynamic replies: the final reply and the total delay."""
        delay = 0.0
        current: Reply | str | None = reply
        for _ in range(100):
            if current is None:
                current = self.default
            elif isinstance(current, str):
                current = text(current)
            elif isinstance(current, Slow):
                delay += current.seconds
                current = current.then
            elif isinstance(current, Dynamic):
                current = current.fn(body)
            else:
                return current, delay
        raise RuntimeError("scripted replies nest too deeply (a default that is slow/dynamic?)")

    def _render(self, reply: Reply, body: Obj, serial: int,
                rid: dict[str, str]) -> tuple[_Answer, Obj | None]:
        final, delay = self._resolve(reply, body)
        if isinstance(final, Disconnect):
            return _Answer(0, {}, delay=delay), None
        if isinstance(final, Error):
            answer = self._error(final, rid)
            return _Answer(answer.status, answer.headers, answer.json, delay=delay), None
        assert isinstance(final, Text | ToolCalls)
        model = str(body["model"])
        prompt = final.prompt_tokens if final.prompt_tokens is not None else _prompt_tokens(body)
        calls = final.calls if isinstance(final, ToolCalls) else ()
        wire_calls: list[Obj] = [
            {"id": c.call_id or f"call_fake{serial:06d}x{i}", "type": "function",
             "function": {"name": c.name,
                          "arguments": json.dumps(c.arguments, separators=(",", ":"))}}
            for i, c in enumerate(calls)]
        content = final.content
        completion = final.completion_tokens
        if completion is None:
            completion = _estimate_tokens((content or "") + "".join(
                c["function"]["name"] + c["function"]["arguments"] for c in wire_calls))
        usage: Obj = {
            "prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": final.cached_tokens, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                          "accepted_prediction_tokens": 0,
                                          "rejected_prediction_tokens": 0},
        }
        finish = "tool_calls" if wire_calls else (
            final.finish_reason if isinstance(final, Text) else "stop")
        head = {"id": f"chatcmpl-fake{serial:06d}", "created": CREATED, "model": model,
                "service_tier": "default", "system_fingerprint": SYSTEM_FINGERPRINT}
        if body.get("stream") is True:
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            events = _chunks(head, content, wire_calls, finish, usage if include_usage else None)
            headers = {**rid, "Content-Type": "text/event-stream; charset=utf-8"}
            return _Answer(200, headers, events=tuple(events), delay=delay), usage
        message: Obj = {"role": "assistant", "content": content, "refusal": None,
                        "annotations": []}
        if wire_calls:
            message["tool_calls"] = wire_calls
        out = {"id": head["id"], "object": "chat.completion", "created": CREATED, "model": model,
               "choices": [{"index": 0, "message": message, "logprobs": None,
                            "finish_reason": finish}],
               "usage": usage, "service_tier": "default",
               "system_fingerprint": SYSTEM_FINGERPRINT}
        return _Answer(200, rid, out, delay=delay), usage

    @staticmethod
    def _error(err: Error, rid: dict[str, str]) -> _Answer:
        headers = {**rid, **dict(err.headers)}
        if err.retry_after is not None:
            value = err.retry_after
            headers["retry-after"] = (str(int(value)) if isinstance(value, float)
                                      and value.is_integer() else str(value))
        return _Answer(err.status, headers, err.body())


def _pieces(value: str) -> list[str]:
    """Split content into several stream deltas: one per word (whitespace kept), and a single
    long word into halves, so even short answers arrive in more than one chunk."""
    parts = _WORDS.findall(value)
    if len(parts) == 1 and len(value) > 1:
        return [value[: len(value) // 2], value[len(value) // 2:]]
    return parts


def _fragments(arguments: str, size: int = 7) -> list[str]:
    return [arguments[i:i + size] for i in range(0, len(arguments), size)] or [""]


def _chunks(head: Obj, content: str | None, wire_calls: list[Obj], finish: str,
            usage: Obj | None) -> list[Obj]:
    """The `chat.completion.chunk` events of a streamed answer, as OpenAI orders them: a role
    delta, content deltas, per tool call a delta with id/name then argument fragments, a final
    delta with finish_reason, then (include_usage) a chunk with empty choices and the usage."""

    def chunk(delta: Obj, finish_reason: str | None = None) -> Obj:
        out: Obj = {"id": head["id"], "object": "chat.completion.chunk",
                    "created": head["created"], "model": head["model"],
                    "service_tier": head["service_tier"],
                    "system_fingerprint": head["system_fingerprint"],
                    "choices": [{"index": 0, "delta": delta, "logprobs": None,
                                 "finish_reason": finish_reason}]}
        if usage is not None:
            out["usage"] = None
        return out

    events: list[Obj] = []
    if content is not None or not wire_calls:
        events.append(chunk({"role": "assistant", "content": "", "refusal": None}))
        events.extend(chunk({"content": piece}) for piece in _pieces(content or ""))
    for index, call in enumerate(wire_calls):
        first: Obj = {"tool_calls": [{"index": index, "id": call["id"], "type": "function",
                                      "function": {"name": call["function"]["name"],
                                                   "arguments": ""}}]}
        if index == 0 and content is None:
            first = {"role": "assistant", "content": None, **first}
        events.append(chunk(first))
        events.extend(chunk({"tool_calls": [{"index": index, "function": {"arguments": part}}]})
                      for part in _fragments(call["function"]["arguments"]))
    events.append(chunk({}, finish))
    if usage is not None:
        events.append({"id": head["id"], "object": "chat.completion.chunk",
                       "created": head["created"], "model": head["model"],
                       "service_tier": head["service_tier"],
                       "system_fingerprint": head["system_fingerprint"],
                       "choices": [], "usage": usage})
    return events


# -- serving ------------------------------------------------------------------------------------

class _Handler(BaseHTTPRequestHandler):
    fake: FakeOpenAI
    protocol_version = "HTTP/1.1"
    timeout = 30  # idle keep-alive connections are dropped after this

    def do_POST(self) -> None:
        self._serve()

    def do_GET(self) -> None:
        self._serve()

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        answer = self.fake.handle(self.command, self.path, headers, raw)
        if answer.delay > 0 and self.fake._closing.wait(answer.delay):
            self.close_connection = True
            return  # the server is shutting down: drop the request
        try:
            if answer.status == 0:
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
            elif answer.events is not None:
                self._write_stream(answer)
            else:
                data = json.dumps(answer.json).encode()
                self.send_response(answer.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError, OSError):
            self.close_connection = True

    def _write_stream(self, answer: _Answer) -> None:
        self.send_response(answer.status)
        for name, value in answer.headers.items():
            self.send_header(name, value)
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        frames = [f"data: {json.dumps(e, separators=(',', ':'))}\n\n".encode()
                  for e in answer.events or ()]
        frames.append(b"data: [DONE]\n\n")
        for frame in frames:
            self.wfile.write(f"{len(frame):x}\r\n".encode() + frame + b"\r\n")
            self.wfile.flush()
            if self.fake.chunk_delay and self.fake._closing.wait(self.fake.chunk_delay):
                self.close_connection = True
                return
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def serve_openai(fake: FakeOpenAI | None = None) -> Iterator[FakeOpenAI]:
    """Serve `fake` (a fresh FakeOpenAI by default) on its own 127.0.0.1 port for the duration;
    several can run at once (primary and fallback providers). Slow replies still sleeping at
    exit are dropped."""
    fake = fake or FakeOpenAI()
    handler = type("FakeOpenAIHandler", (_Handler,), {"fake": fake})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    fake._closing.clear()
    fake.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True, name=f"fake-openai-{httpd.server_address[1]}")
    thread.start()
    try:
        yield fake
    finally:
        fake._closing.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def configured(settings: Settings, fake: FakeOpenAI, **values: Any) -> Settings:
    """`settings` in LLM mode with `fake` as the primary provider (no retries by default)."""
    return settings.model_copy(update={
        "llm_base_url": fake.base_url, "llm_model": MODEL, "llm_api_key": API_KEY,
        "llm_max_retries": 0, "llm_timeout_seconds": 5.0, **values})
