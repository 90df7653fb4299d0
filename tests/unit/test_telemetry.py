"""core.telemetry: off by default, OTLP/HTTP export when an endpoint is set, span helpers."""

from __future__ import annotations

import importlib
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from core import telemetry
from core.settings import Settings

_EXPORTER_MODULE = "opentelemetry.exporter.otlp.proto.http.trace_exporter"


class Collector:
    """A local OTLP/HTTP receiver: records each POST (path, headers, body) and answers 200."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self.received = threading.Event()
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k.lower(): v for k, v in self.headers.items()}
                collector.requests.append((self.path, headers, body))
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()
                collector.received.set()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture
def collector() -> Iterator[Collector]:
    c = Collector()
    thread = threading.Thread(target=c.server.serve_forever, daemon=True)
    thread.start()
    yield c
    c.server.shutdown()
    c.server.server_close()


def _settings(**values: Any) -> Settings:
    return Settings(env="test", **values)


def test_off_by_default_no_provider_and_spans_are_no_ops(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("METAOPS_OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    settings = _settings()
    assert settings.otel_exporter_otlp_endpoint is None
    before = trace.get_tracer_provider()
    assert telemetry.setup_tracing(settings) is None
    assert telemetry.setup_tracing(_settings(otel_exporter_otlp_endpoint="  ")) is None
    assert trace.get_tracer_provider() is before  # nothing installed
    # With no provider installed, the global tracer hands out non-recording spans.
    if not isinstance(before, TracerProvider):
        with telemetry.tracer("t").start_as_current_span("x") as span:
            assert not span.is_recording()


def test_endpoint_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("METAOPS_OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318")
    monkeypatch.setenv("METAOPS_OTEL_EXPORTER_OTLP_HEADERS", "authorization=Bearer abc")
    settings = Settings(env="test")
    assert settings.otel_exporter_otlp_endpoint == "http://collector:4318"
    assert settings.otel_exporter_otlp_headers is not None
    assert "abc" not in repr(settings)  # a secret


def test_with_an_endpoint_spans_are_batched_and_exported_over_otlp_http(
        collector: Collector) -> None:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    settings = _settings(otel_exporter_otlp_endpoint=collector.url + "/",
                         otel_exporter_otlp_headers="authorization=Bearer t0ken, x-team = ops")
    provider = telemetry.setup_tracing(settings, install=False)  # the global stays untouched
    assert provider is not None and trace.get_tracer_provider() is not provider
    assert provider.resource.attributes["service.name"] == "metaops"
    tracer = telemetry.tracer("test", provider)
    with tracer.start_as_current_span("chat ops-model", kind=SpanKind.CLIENT,
                                      attributes=telemetry.incident_attributes(42)):
        pass
    assert collector.requests == []  # batched, not sent span by span
    provider.shutdown()  # flushes
    assert collector.received.wait(5)
    [(path, headers, body)] = collector.requests
    assert path == "/v1/traces"
    assert headers["content-type"] == "application/x-protobuf"
    assert headers["authorization"] == "Bearer t0ken" and headers["x-team"] == "ops"
    request = ExportTraceServiceRequest.FromString(body)
    [resource_spans] = request.resource_spans
    resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
    assert resource["service.name"] == "metaops"
    [span] = resource_spans.scope_spans[0].spans
    assert span.name == "chat ops-model"
    assert {a.key: a.value.int_value for a in span.attributes} == {"metaops.incident_id": 42}


def test_a_missing_exporter_package_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, _EXPORTER_MODULE, None)  # import now raises ImportError
    with pytest.raises(RuntimeError, match="opentelemetry-exporter-otlp-proto-http"):
        telemetry.setup_tracing(_settings(otel_exporter_otlp_endpoint="http://c:4318"),
                                install=False)


def test_traces_endpoint() -> None:
    assert telemetry.traces_endpoint("http://c:4318") == "http://c:4318/v1/traces"
    assert telemetry.traces_endpoint("http://c:4318/") == "http://c:4318/v1/traces"
    assert telemetry.traces_endpoint("https://c/otlp/v1/traces") == "https://c/otlp/v1/traces"


def test_attribute_helpers() -> None:
    assert telemetry.incident_attributes(7) == {"metaops.incident_id": 7}
    assert telemetry.incident_attributes(None) == {}
    assert telemetry.server_attributes("http://127.0.0.1:8123/v1") == {
        "server.address": "127.0.0.1", "server.port": 8123}
    assert telemetry.server_attributes("https://api.example.com/v1") == {
        "server.address": "api.example.com", "server.port": 443}
    assert telemetry.server_attributes("not a url") == {}


def test_genai_names_match_the_semantic_conventions_package() -> None:
    try:
        semconv = importlib.import_module(
            "opentelemetry.semconv._incubating.attributes.gen_ai_attributes")
    except ImportError:  # the package dropped them (they moved to their own repository)
        pytest.skip("no gen_ai constants in opentelemetry-semantic-conventions")
    for name in ("GEN_AI_OPERATION_NAME", "GEN_AI_PROVIDER_NAME", "GEN_AI_CONVERSATION_ID",
                 "GEN_AI_REQUEST_MODEL", "GEN_AI_REQUEST_TEMPERATURE", "GEN_AI_RESPONSE_MODEL",
                 "GEN_AI_RESPONSE_ID", "GEN_AI_RESPONSE_FINISH_REASONS",
                 "GEN_AI_USAGE_INPUT_TOKENS", "GEN_AI_USAGE_OUTPUT_TOKENS",
                 "GEN_AI_INPUT_MESSAGES", "GEN_AI_OUTPUT_MESSAGES", "GEN_AI_TOOL_NAME",
                 "GEN_AI_TOOL_CALL_ID"):
        if hasattr(semconv, name):
            assert getattr(telemetry, name) == getattr(semconv, name), name
    assert telemetry.GEN_AI_PROVIDER_NAME == "gen_ai.provider.name"  # replaced gen_ai.system


def test_start_span_records_an_escaping_error_by_type_only() -> None:
    exporter = InMemorySpanExporter()
    provider = telemetry.new_tracer_provider(SimpleSpanProcessor(exporter))
    tracer = telemetry.tracer("test", provider)
    with pytest.raises(ValueError, match="jane"), telemetry.start_span(tracer, "work"):
        raise ValueError("user jane.doe@example.com")
    with telemetry.start_span(tracer, "fine", attributes={"k": "v"}):
        pass
    failed, fine = exporter.get_finished_spans()
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.attributes is not None and failed.attributes["error.type"] == "ValueError"
    assert failed.events == () and "jane" not in failed.to_json()
    assert fine.status.status_code is StatusCode.UNSET and dict(fine.attributes or {}) == {
        "k": "v"}
    provider.shutdown()
