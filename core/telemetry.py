"""Tracing: the OpenTelemetry provider (OTLP/HTTP export only when configured) and span helpers."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from importlib import metadata
from typing import TYPE_CHECKING, Final
from urllib.parse import urlsplit

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.semconv.attributes.error_attributes import ERROR_TYPE
from opentelemetry.semconv.attributes.server_attributes import SERVER_ADDRESS, SERVER_PORT
from opentelemetry.semconv.attributes.service_attributes import SERVICE_NAME, SERVICE_VERSION
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer
from opentelemetry.util.types import AttributeValue

if TYPE_CHECKING:
    from core.settings import Settings

__all__ = [
    "ERROR_TYPE",
    "GEN_AI_CONVERSATION_ID",
    "GEN_AI_INPUT_MESSAGES",
    "GEN_AI_OPERATION_NAME",
    "GEN_AI_OUTPUT_MESSAGES",
    "GEN_AI_PROVIDER_NAME",
    "GEN_AI_REQUEST_MODEL",
    "GEN_AI_REQUEST_TEMPERATURE",
    "GEN_AI_RESPONSE_FINISH_REASONS",
    "GEN_AI_RESPONSE_ID",
    "GEN_AI_RESPONSE_MODEL",
    "GEN_AI_TOOL_CALL_ID",
    "GEN_AI_TOOL_NAME",
    "GEN_AI_USAGE_INPUT_TOKENS",
    "GEN_AI_USAGE_OUTPUT_TOKENS",
    "INCIDENT_ID",
    "SERVER_ADDRESS",
    "SERVER_PORT",
    "SERVICE",
    "incident_attributes",
    "mark_error",
    "new_tracer_provider",
    "server_attributes",
    "setup_tracing",
    "start_span",
    "tracer",
]

log = logging.getLogger("metaops.telemetry")

SERVICE: Final = "metaops"
# OTLP/HTTP signal path appended to a base endpoint, as OTEL_EXPORTER_OTLP_ENDPOINT does.
_TRACES_PATH: Final = "/v1/traces"

# GenAI semantic conventions (client inference spans). Literals, not the constants of
# opentelemetry-semantic-conventions: there they live in a private `_incubating` module and are
# marked deprecated since the GenAI conventions moved to their own repository; the names are the
# current ones (`gen_ai.provider.name` replaced `gen_ai.system`). tests/unit/test_telemetry.py
# checks them against the package's constants while it still has them.
GEN_AI_OPERATION_NAME: Final = "gen_ai.operation.name"
GEN_AI_PROVIDER_NAME: Final = "gen_ai.provider.name"
GEN_AI_CONVERSATION_ID: Final = "gen_ai.conversation.id"
GEN_AI_REQUEST_MODEL: Final = "gen_ai.request.model"
GEN_AI_REQUEST_TEMPERATURE: Final = "gen_ai.request.temperature"
GEN_AI_RESPONSE_MODEL: Final = "gen_ai.response.model"
GEN_AI_RESPONSE_ID: Final = "gen_ai.response.id"
GEN_AI_RESPONSE_FINISH_REASONS: Final = "gen_ai.response.finish_reasons"
GEN_AI_USAGE_INPUT_TOKENS: Final = "gen_ai.usage.input_tokens"
GEN_AI_USAGE_OUTPUT_TOKENS: Final = "gen_ai.usage.output_tokens"
GEN_AI_INPUT_MESSAGES: Final = "gen_ai.input.messages"  # opt-in content
GEN_AI_OUTPUT_MESSAGES: Final = "gen_ai.output.messages"  # opt-in content
GEN_AI_TOOL_NAME: Final = "gen_ai.tool.name"
GEN_AI_TOOL_CALL_ID: Final = "gen_ai.tool.call.id"
# The span event that carries opt-in content (gen_ai.input.messages / gen_ai.output.messages).
GEN_AI_CONTENT_EVENT: Final = "gen_ai.client.inference.operation.details"

# Ours.
INCIDENT_ID: Final = "metaops.incident_id"


def _version() -> str:
    try:
        return metadata.version("metaops")
    except metadata.PackageNotFoundError:
        return "0"


def new_tracer_provider(*processors: SpanProcessor) -> TracerProvider:
    """A provider with metaops' resource (service.name=metaops) and these processors. Tests pass
    their own (e.g. SimpleSpanProcessor(InMemorySpanExporter())) and hand the provider to the
    component under test instead of installing it globally."""
    resource = Resource.create({SERVICE_NAME: SERVICE, SERVICE_VERSION: _version()})
    provider = TracerProvider(resource=resource)
    for processor in processors:
        provider.add_span_processor(processor)
    return provider


def traces_endpoint(endpoint: str) -> str:
    """The OTLP/HTTP traces URL for a base endpoint (`http://collector:4318` gets /v1/traces);
    a URL that already ends in /v1/traces is kept."""
    base = endpoint.strip().rstrip("/")
    return base if base.endswith(_TRACES_PATH) else base + _TRACES_PATH


def _headers(raw: str | None) -> dict[str, str] | None:
    """`k=v,k2=v2` (the OTEL_EXPORTER_OTLP_HEADERS form) as a dict; None when unset."""
    if raw is None or not raw.strip():
        return None
    pairs = (item.split("=", 1) for item in raw.split(",") if "=" in item)
    return {k.strip(): v.strip() for k, v in pairs if k.strip()}


def setup_tracing(settings: Settings, *, install: bool = True) -> TracerProvider | None:
    """Off (None, spans stay no-ops) unless METAOPS_OTEL_EXPORTER_OTLP_ENDPOINT is set; then a
    provider exporting over OTLP/HTTP in batches, installed as the global provider when `install`
    (which OpenTelemetry allows once per process). Call `shutdown()` on it at exit to flush."""
    endpoint = settings.otel_exporter_otlp_endpoint
    if endpoint is None or not endpoint.strip():
        return None
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # noqa: PLC0415
            OTLPSpanExporter,
        )
    except ImportError as exc:  # an optional extra in some deployments
        raise RuntimeError(
            "METAOPS_OTEL_EXPORTER_OTLP_ENDPOINT is set but the OTLP/HTTP exporter is not "
            "installed: pip install 'opentelemetry-exporter-otlp-proto-http>=1.25'") from exc
    secret = settings.otel_exporter_otlp_headers
    exporter = OTLPSpanExporter(
        endpoint=traces_endpoint(endpoint),
        headers=_headers(secret.get_secret_value() if secret is not None else None),
        timeout=settings.otel_exporter_otlp_timeout_seconds)
    provider = new_tracer_provider(BatchSpanProcessor(exporter))
    if install:
        trace.set_tracer_provider(provider)
    log.info("tracing: exporting spans over OTLP/HTTP to %s", urlsplit(endpoint).netloc or "?")
    return provider


def tracer(name: str, provider: trace.TracerProvider | None = None) -> Tracer:
    """A tracer from `provider`, else from the global one (a no-op until setup_tracing installs
    one; a tracer taken earlier starts recording once it does)."""
    if provider is not None:
        return provider.get_tracer(name, _version())
    return trace.get_tracer(name, _version())


def incident_attributes(incident_id: int | None) -> dict[str, AttributeValue]:
    """`{"metaops.incident_id": id}`, or nothing when there is no incident."""
    return {} if incident_id is None else {INCIDENT_ID: incident_id}


def server_attributes(url: str) -> dict[str, AttributeValue]:
    """server.address and server.port of a base URL (the port defaulted from the scheme)."""
    parts = urlsplit(url)
    if not parts.hostname:
        return {}
    default = {"https": 443, "http": 80}.get(parts.scheme)
    try:
        port = parts.port or default
    except ValueError:  # a malformed port
        port = default
    attributes: dict[str, AttributeValue] = {SERVER_ADDRESS: parts.hostname}
    if port is not None:
        attributes[SERVER_PORT] = port
    return attributes


def mark_error(span: Span, error_type: str, description: str | None = None) -> None:
    """error.type and status ERROR. Say what kind of failure it was, never the message: messages
    can echo the request (prompt text, personal data)."""
    span.set_attribute(ERROR_TYPE, error_type)
    span.set_status(Status(StatusCode.ERROR, description or error_type))


@contextmanager
def start_span(tracer: Tracer, name: str, *, kind: SpanKind = SpanKind.INTERNAL,
               attributes: Mapping[str, AttributeValue] | None = None,
               not_errors: tuple[type[Exception], ...] = ()) -> Iterator[Span]:
    """start_as_current_span, but an exception escaping the block is recorded by its type only
    (error.type, status ERROR), not as an exception event with its message and traceback.
    Cancellation, other BaseExceptions and `not_errors` (control flow, such as LangGraph's
    interrupt) pass unmarked."""
    with tracer.start_as_current_span(name, kind=kind, attributes=attributes,
                                      record_exception=False,
                                      set_status_on_exception=False) as span:
        try:
            yield span
        except not_errors:
            raise
        except Exception as exc:
            mark_error(span, type(exc).__qualname__)
            raise
