"""Model calls: OpenAI-compatible providers tried in order, each behind a circuit breaker, with
bounded retries, budgets, an `llm_call` audit event and a span per call; None means "use the rules".

Tracing: one INTERNAL span `llm.invoke` per invoke, with a CLIENT span `chat {model}` per attempt
(GenAI semantic conventions) under it; budget refusals and breaker skips are events on
`llm.invoke`, since no request is made. Prompt and answer text reach spans only with
llm_log_content, redacted, as a `gen_ai.client.inference.operation.details` event."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

import openai
from langchain_core.messages import AIMessage, BaseMessage
from langchain_openai import ChatOpenAI
from opentelemetry.trace import Span, SpanKind, TracerProvider
from opentelemetry.util.types import AttributeValue
from pydantic import SecretStr
from sqlalchemy import or_, select

from core import telemetry
from core.database import Database
from core.models import AuditEvent
from core.settings import LLMProvider, Settings
from core.timeutil import utcnow
from guardrails import audit
from guardrails.backoff import next_delay
from guardrails.breaker import BreakerConfig, Breakers
from guardrails.budget import BudgetLimits, BudgetVerdict, PriceTable, Spent, check
from guardrails.redaction import redact, redact_text

log = logging.getLogger("metaops.llm")

LLM_CALL = "llm_call"
# Worth another try on the same provider: the provider's own hiccups, not our request's fault.
_RETRYABLE = (openai.APIConnectionError, openai.RateLimitError, openai.InternalServerError)

# Span attributes of ours (the GenAI ones are in core.telemetry).
PROVIDER = "metaops.llm.provider"  # the configured name: primary, or a fallback's
PURPOSE = "metaops.llm.purpose"
# ok | error | cancelled on a chat span; ok | over_budget | unavailable on llm.invoke
OUTCOME = "metaops.llm.outcome"
ATTEMPT = "metaops.llm.attempt"
PROMPT_HASH = "metaops.llm.prompt_hash"
# Every provider speaks the OpenAI API through the openai SDK: that is the telemetry "provider"
# in the GenAI conventions' sense, whoever hosts the model behind the URL.
GEN_AI_PROVIDER = "openai"
_ROLES = {"human": "user", "ai": "assistant", "system": "system", "tool": "tool"}


@dataclass(frozen=True, slots=True)
class LLMResult:
    message: AIMessage
    provider: str
    model: str
    input_tokens: int
    output_tokens: int
    cost_usd: Decimal | None


@dataclass(frozen=True, slots=True)
class CallRecord:
    """One call as metrics see it (no text)."""

    provider: str
    model: str
    purpose: str
    outcome: str  # ok | error | breaker_open | over_budget
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: Decimal | None = None
    latency_seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class Scope:
    """What a call is for, for budgets and the audit trail."""

    purpose: str  # route | chat | narrative | postmortem
    incident_id: int | None = None
    conversation: str | None = None


def _chat_model(provider: LLMProvider, settings: Settings) -> ChatOpenAI:
    # timeout and max_retries always set (unset means no timeout, and the SDK's own retries that
    # ignore our budget and breaker); stream_usage so streamed calls report tokens too.
    key = provider.api_key or SecretStr("not-needed")
    return ChatOpenAI(base_url=provider.base_url, api_key=key, model=provider.model,
                      timeout=settings.llm_timeout_seconds, max_retries=0, stream_usage=True,
                      temperature=0)


def prompt_hash(messages: Sequence[BaseMessage]) -> str:
    """Identifies a prompt in the audit trail without storing it."""
    body = json.dumps([[m.type, m.content] for m in messages], sort_keys=True, default=str)
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def _headers(exc: Exception) -> dict[str, str]:
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    return dict(headers.items()) if headers is not None else {}


def _error(exc: Exception) -> str:
    status = getattr(exc, "status_code", None)
    name = type(exc).__name__
    return f"{name} (HTTP {status})" if status else name


def _decimal(value: Any) -> Decimal:
    try:
        return Decimal(str(value)) if value is not None else Decimal(0)
    except InvalidOperation:
        return Decimal(0)


def _usage(message: AIMessage) -> tuple[int, int]:
    usage: dict[str, Any] = dict(message.usage_metadata or {})
    return int(usage.get("input_tokens", 0)), int(usage.get("output_tokens", 0))


def _scope_attributes(scope: Scope) -> dict[str, AttributeValue]:
    attributes: dict[str, AttributeValue] = {PURPOSE: scope.purpose,
                                             **telemetry.incident_attributes(scope.incident_id)}
    if scope.conversation is not None:
        attributes[telemetry.GEN_AI_CONVERSATION_ID] = scope.conversation
    return attributes


def _text(content: Any) -> str:
    return redact_text(content if isinstance(content, str) else str(content))[0]


def _content_event(messages: Sequence[BaseMessage],
                   answer: AIMessage) -> dict[str, AttributeValue]:
    """The opt-in gen_ai.input.messages / gen_ai.output.messages, redacted, as JSON strings."""
    def parts(message: BaseMessage) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        if message.content:
            found.append({"type": "text", "content": _text(message.content)})
        for call in getattr(message, "tool_calls", None) or []:
            found.append({"type": "tool_call", "id": call.get("id"), "name": call["name"],
                          "arguments": redact(call.get("args")).value})
        return found

    inputs = [{"role": _ROLES.get(m.type, m.type), "parts": parts(m)} for m in messages]
    output = {"role": "assistant", "parts": parts(answer),
              "finish_reason": str(answer.response_metadata.get("finish_reason") or "")}
    return {telemetry.GEN_AI_INPUT_MESSAGES: json.dumps(inputs, default=str),
            telemetry.GEN_AI_OUTPUT_MESSAGES: json.dumps([output], default=str)}


class LLM:
    """The providers of one process. `invoke` never raises for a provider's failure: it returns
    None and the caller takes the deterministic path."""

    def __init__(self, settings: Settings, db: Database, *,
                 observe: Callable[[CallRecord], None] | None = None,
                 sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
                 clock: Callable[[], float] = time.monotonic,
                 rng: random.Random | None = None,
                 tracer_provider: TracerProvider | None = None) -> None:
        self.settings = settings
        self.db = db
        self.providers = [(p, _chat_model(p, settings)) for p in settings.llm_providers]
        self.breakers = Breakers(BreakerConfig(**settings.llm_breaker), clock=clock)
        self.prices = PriceTable.from_setting(settings.llm_prices)
        self.limits = BudgetLimits(**settings.llm_budget)
        self.observe = observe
        self._sleep = sleep
        self._clock = clock
        self._rng = rng or random.Random()  # noqa: S311 - retry jitter, not a secret
        # None: the global provider (no-op spans until core.telemetry.setup_tracing installs one).
        self._tracer = telemetry.tracer("metaops.llm", tracer_provider)
        self._servers = {p.name: telemetry.server_attributes(p.base_url)
                         for p in settings.llm_providers}

    @property
    def enabled(self) -> bool:
        return bool(self.providers)

    async def invoke(self, messages: Sequence[BaseMessage], scope: Scope, *,
                     tools: Sequence[Any] = ()) -> LLMResult | None:
        """The first provider's answer that comes back, or None (no provider, over budget,
        every provider failing or its breaker open)."""
        if not self.providers:
            return None
        digest = prompt_hash(messages)
        with telemetry.start_span(self._tracer, "llm.invoke",
                                  attributes={**_scope_attributes(scope),
                                              PROMPT_HASH: digest}) as span:
            verdict = await self._budget(scope)
            if not verdict.allowed:
                span.add_event("metaops.llm.over_budget",
                               {"metaops.llm.budget.limit": verdict.which or "",
                                "metaops.llm.budget.reason": verdict.reason or ""})
                span.set_attribute(OUTCOME, "over_budget")
                await self._record(scope, None, "over_budget", digest, reason=verdict.reason,
                                   which=verdict.which)
                return None
            for provider, chat in self.providers:
                breaker = self.breakers.get(provider.name)
                if not breaker.allow():
                    span.add_event("metaops.llm.breaker_open", {PROVIDER: provider.name})
                    await self._record(scope, provider, "breaker_open", digest,
                                       reason=f"circuit breaker open for {provider.name}")
                    continue
                model: Any = chat.bind_tools(list(tools)) if tools else chat
                result = await self._try(provider, model, messages, scope, digest)
                if result is not None:
                    span.set_attributes({OUTCOME: "ok", PROVIDER: result.provider})
                    return result
            span.set_attribute(OUTCOME, "unavailable")  # the caller takes the deterministic path
            return None

    async def _try(self, provider: LLMProvider, model: Any, messages: Sequence[BaseMessage],
                   scope: Scope, digest: str) -> LLMResult | None:
        breaker = self.breakers.get(provider.name)
        attempt = 0
        while True:
            started = self._clock()
            failure: openai.OpenAIError | None = None
            with telemetry.start_span(self._tracer, f"chat {provider.model}",
                                      kind=SpanKind.CLIENT,
                                      attributes=self._request_attributes(
                                          provider, scope, attempt)) as span:
                try:
                    message = await model.ainvoke(list(messages))
                except asyncio.CancelledError:
                    breaker.release()
                    span.set_attribute(OUTCOME, "cancelled")
                    raise
                except openai.OpenAIError as exc:
                    failure = exc
                    self._failure_attributes(span, exc)
                else:
                    assert isinstance(message, AIMessage)
                    self._response_attributes(span, message, messages)
            latency = self._clock() - started
            if failure is not None:
                breaker.record_failure()
                wait = next_delay(attempt + 1, _headers(failure),
                                  base=self.settings.llm_backoff_base_seconds,
                                  cap=self.settings.llm_backoff_cap_seconds, rng=self._rng)
                await self._record(scope, provider, "error", digest, latency=latency,
                                   error=_error(failure), attempt=attempt)
                retry = (isinstance(failure, _RETRYABLE)
                         and attempt < self.settings.llm_max_retries and not wait.give_up)
                if not retry:
                    return None
                await self._sleep(wait.seconds)
                attempt += 1
                if not breaker.allow():
                    return None
                continue
            breaker.record_success()
            tokens_in, tokens_out = _usage(message)
            cost = self.prices.cost(provider.model, tokens_in, tokens_out)
            await self._record(scope, provider, "ok", digest, latency=latency,
                               tokens=(tokens_in, tokens_out), cost=cost, attempt=attempt,
                               messages=messages, answer=message)
            return LLMResult(message, provider.name, provider.model, tokens_in, tokens_out, cost)

    # -- spans -----------------------------------------------------------------------------

    def _request_attributes(self, provider: LLMProvider, scope: Scope,
                            attempt: int) -> dict[str, AttributeValue]:
        return {telemetry.GEN_AI_OPERATION_NAME: "chat",
                telemetry.GEN_AI_PROVIDER_NAME: GEN_AI_PROVIDER,
                telemetry.GEN_AI_REQUEST_MODEL: provider.model,
                telemetry.GEN_AI_REQUEST_TEMPERATURE: 0.0,  # as _chat_model sets it
                **self._servers.get(provider.name, {}), **_scope_attributes(scope),
                PROVIDER: provider.name, ATTEMPT: attempt}

    @staticmethod
    def _failure_attributes(span: Span, exc: openai.OpenAIError) -> None:
        # The class and the HTTP status, never the provider's message (it can quote the prompt).
        span.set_attribute(OUTCOME, "error")
        status = getattr(exc, "status_code", None)
        if isinstance(status, int):
            span.set_attribute("http.response.status_code", status)
        # The openai SDK's class (langchain-openai raises subclasses of its own, OpenAIAPIError
        # for a 500): what the error is, whichever client wrapped it.
        kind = next((c.__qualname__ for c in type(exc).__mro__
                     if c.__module__.split(".")[0] == "openai"), type(exc).__qualname__)
        telemetry.mark_error(span, kind, f"{kind} (HTTP {status})" if status else kind)

    def _response_attributes(self, span: Span, message: AIMessage,
                             messages: Sequence[BaseMessage]) -> None:
        tokens_in, tokens_out = _usage(message)
        meta = message.response_metadata or {}
        attributes: dict[str, AttributeValue] = {
            OUTCOME: "ok", telemetry.GEN_AI_USAGE_INPUT_TOKENS: tokens_in,
            telemetry.GEN_AI_USAGE_OUTPUT_TOKENS: tokens_out}
        for key, value in ((telemetry.GEN_AI_RESPONSE_MODEL, meta.get("model_name")),
                           (telemetry.GEN_AI_RESPONSE_ID, meta.get("id"))):
            if isinstance(value, str) and value:
                attributes[key] = value
        if isinstance(meta.get("finish_reason"), str):
            attributes[telemetry.GEN_AI_RESPONSE_FINISH_REASONS] = [meta["finish_reason"]]
        span.set_attributes(attributes)
        if self.settings.llm_log_content:
            span.add_event(telemetry.GEN_AI_CONTENT_EVENT, _content_event(messages, message))

    # -- budgets --------------------------------------------------------------------------

    async def _budget(self, scope: Scope) -> BudgetVerdict:
        """What the scope and the last hour have spent, from the llm_call events."""
        since = utcnow() - timedelta(hours=1)
        clauses = [AuditEvent.ts >= since]
        if scope.incident_id is not None:
            clauses.append(AuditEvent.incident_id == scope.incident_id)
        if scope.conversation is not None:
            clauses.append(AuditEvent.target == f"conversation:{scope.conversation}")
        async with self.db.read() as session:
            rows = (await session.execute(select(
                AuditEvent.ts, AuditEvent.incident_id, AuditEvent.target, AuditEvent.payload)
                .where(AuditEvent.type == LLM_CALL, AuditEvent.outcome == "ok",
                       or_(*clauses)))).all()
        tokens_in_scope = tokens_hour = unpriced_scope = unpriced_hour = 0
        usd_scope, usd_hour = Decimal(0), Decimal(0)
        for ts, incident_id, target, payload in rows:
            tokens = int(payload.get("input_tokens", 0)) + int(payload.get("output_tokens", 0))
            usd = payload.get("cost_usd")
            in_scope = ((scope.incident_id is not None and incident_id == scope.incident_id)
                        or (scope.conversation is not None
                            and target == f"conversation:{scope.conversation}"))
            if in_scope:
                tokens_in_scope += tokens
                unpriced_scope += tokens if usd is None else 0
                usd_scope += _decimal(usd)
            if ts >= since:
                tokens_hour += tokens
                unpriced_hour += tokens if usd is None else 0
                usd_hour += _decimal(usd)
        spent = Spent(tokens=tokens_in_scope, usd=usd_scope, unpriced_tokens=unpriced_scope,
                      hour_tokens=tokens_hour, hour_usd=usd_hour,
                      hour_unpriced_tokens=unpriced_hour)
        which: Literal["incident", "conversation"] = (
            "conversation" if scope.conversation is not None else "incident")
        return check(self.limits, spent, which)

    # -- the audit trail and metrics -------------------------------------------------------

    async def _record(self, scope: Scope, provider: LLMProvider | None, outcome: str,
                      digest: str, *, latency: float = 0.0, tokens: tuple[int, int] = (0, 0),
                      cost: Decimal | None = None, attempt: int = 0, error: str | None = None,
                      reason: str | None = None, which: str | None = None,
                      messages: Sequence[BaseMessage] = (),
                      answer: AIMessage | None = None) -> None:
        payload: dict[str, Any] = {
            "provider": provider.name if provider else None,
            "model": provider.model if provider else None, "purpose": scope.purpose,
            "input_tokens": tokens[0], "output_tokens": tokens[1],
            "cost_usd": None if cost is None else format(cost.normalize(), "f"),
            "latency_ms": round(latency * 1000, 1), "prompt_hash": digest, "attempt": attempt}
        for key, value in (("error", error), ("reason", reason), ("limit", which)):
            if value is not None:
                payload[key] = value
        if self.settings.llm_log_content and messages:
            # Redacted by the audit trail like every payload.
            payload["prompt"] = [[m.type, str(m.content)] for m in messages]
            if answer is not None:
                payload["response"] = str(answer.content)
                payload["tool_calls"] = [c["name"] for c in answer.tool_calls]
        target = (f"conversation:{scope.conversation}" if scope.conversation is not None
                  else f"llm:{provider.name if provider else '-'}")
        async with self.db.write() as session:
            await audit.append(session, type=LLM_CALL,
                               actor=audit.Actor("agent", f"llm:{scope.purpose}", "system"),
                               incident_id=scope.incident_id, target=target, outcome=outcome,
                               payload=payload)
        if self.observe is not None:
            self.observe(CallRecord(payload["provider"] or "-", payload["model"] or "-",
                                    scope.purpose, outcome, tokens[0], tokens[1], cost, latency))
