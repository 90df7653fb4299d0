"""Metrics tools against a real Prometheus scraping a test exporter, and on the request log.

The exporter (stdlib http.server) serves LLM metrics whose counters grow at known per-second rates
and whose histograms have fixed per-second bucket increments, so every golden signal has an exact
expected value. Prometheus (Debian package) runs on loopback with a 1 s scrape interval.
"""

from __future__ import annotations

import json
import statistics
import threading
import time
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.prometheus_proc import running_prometheus
from tests.support import free_port
from tools.base import Effect
from tools.metrics import (
    GoldenSignals,
    MetricNames,
    MetricsQuery,
    PrometheusClient,
    PrometheusError,
    default_catalog,
    metrics_tools,
    render,
)

pytestmark = pytest.mark.slow

REFERENCE = Path("/work/shared/reference")
WIRE = REFERENCE / "wire"
OUTAGE_LOG = REFERENCE / "scenarios/provider-outage/logs.jsonl"
WAIT_SECONDS = 30.0

# Per-second increments, per service. Histogram buckets are cumulative.
TTFT_BUCKETS = {"0.1": 20, "0.25": 60, "0.5": 90, "1": 98, "2.5": 100, "+Inf": 100}
ITL_BUCKETS = {"0.01": 50, "0.025": 90, "0.05": 100, "+Inf": 100}
RATES = {"llm_requests_total": 100.0, "llm_input_tokens_total": 800.0,
         "llm_output_tokens_total": 200.0, "llm_cost_usd_total": 0.05}
ERROR_RATES = {"timeout": 5.0, "rate_limit": 2.0}
GAUGES = {"vllm:gpu_cache_usage_perc": 0.73, "DCGM_FI_DEV_GPU_UTIL": 87.0}
# A second service with other figures, so the {service} selector must do its job.
SERVICES = {"chat-api": 1.0, 'batch "nightly"': 3.0}

EXPECTED = {
    "ttft_p50": 0.1 + 0.15 * (50 - 20) / (60 - 20),   # 0.2125 s
    "ttft_p99": 1.0 + 1.5 * (99 - 98) / (100 - 98),    # 1.75 s
    "inter_token_latency_p99": 0.025 + 0.025 * (99 - 90) / (100 - 90),  # 0.0475 s
    "error_rate": 0.07,
    "input_tokens_per_s": 800.0,
    "output_tokens_per_s": 200.0,
    "burn_rate_usd_per_h": 0.05 * 3600,                 # 180 $/h
    "kv_cache_usage": 0.73,
    "gpu_utilization": 87.0,
}


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def exposition(elapsed: float) -> str:
    """The exporter's text exposition `elapsed` seconds after start (offset: no counter at 0)."""
    t = elapsed + 1000.0
    lines: list[str] = []
    for name, buckets in (("llm_time_to_first_token_seconds", TTFT_BUCKETS),
                          ("llm_inter_token_latency_seconds", ITL_BUCKETS)):
        lines.append(f"# TYPE {name} histogram")
        for service, k in SERVICES.items():
            sel = f'service="{_label(service)}"'
            for le, per_s in buckets.items():
                lines.append(f'{name}_bucket{{{sel},le="{le}"}} {per_s * k * t}')
            lines.append(f"{name}_count{{{sel}}} {buckets['+Inf'] * k * t}")
            lines.append(f"{name}_sum{{{sel}}} {0.3 * buckets['+Inf'] * k * t}")
    for name, rate in RATES.items():
        lines.append(f"# TYPE {name} counter")
        for service, k in SERVICES.items():
            lines.append(f'{name}{{service="{_label(service)}"}} {rate * k * t}')
    lines.append("# TYPE llm_request_errors_total counter")
    for service, k in SERVICES.items():
        for etype, erate in ERROR_RATES.items():
            lines.append(f'llm_request_errors_total{{service="{_label(service)}",'
                         f'error_type="{etype}"}} {erate * k * k * t}')
    for name, value in GAUGES.items():
        lines.append(f"# TYPE {name} gauge")
        for service, k in SERVICES.items():
            lines.append(f'{name}{{service="{_label(service)}"}} {value / k}')
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def exporter() -> Iterator[str]:
    started = time.time()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = exposition(time.time() - started).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def prometheus(exporter: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    config = {"global": {"scrape_interval": "1s", "evaluation_interval": "1s",
                         "scrape_timeout": "1s"},
              "scrape_configs": [{"job_name": "llm-exporter",
                                  "static_configs": [{"targets": [exporter]}]}]}
    # At least 5 scraped samples, so rate() over a few seconds is well defined.
    probe = 'count_over_time(llm_requests_total{service="chat-api"}[30s])'
    with running_prometheus(tmp_path_factory.mktemp("prometheus"), config, probe, 5,
                            wait_seconds=WAIT_SECONDS) as url:
        yield url


@pytest.fixture
def client(prometheus: str) -> Iterator[PrometheusClient]:
    c = PrometheusClient(prometheus, timeout=5.0)
    yield c
    c.close()


def _tool(tools: list[Any], name: str) -> Any:
    return next(t for t in tools if t.spec.name == name)


def test_golden_signals_from_real_prometheus(client: PrometheusClient) -> None:
    tools = metrics_tools(client, None)
    assert [t.spec.name for t in tools] == ["metrics.query", "metrics.golden_signals"]
    assert all(t.spec.effect is Effect.READ for t in tools)
    res = _tool(tools, "metrics.golden_signals").run({"service": "chat-api",
                                                      "window_seconds": 4})
    assert res.status == "ok", res
    signals = res.data["signals"]
    assert res.data["source"] == "prometheus"
    assert set(signals) == set(EXPECTED)
    for name, want in EXPECTED.items():
        got = signals[name]["value"]
        assert got == pytest.approx(want, rel=0.03), (name, signals[name])
        assert 'service="chat-api"' in signals[name]["query"]
    by = signals["error_rate"]["by"]
    assert by == pytest.approx({"timeout": 0.05, "rate_limit": 0.02}, rel=0.03)


def test_golden_signals_escape_the_service_and_tell_missing_services(
        client: PrometheusClient) -> None:
    tool = GoldenSignals(client)
    res = tool.run({"service": 'batch "nightly"', "window_seconds": 4})
    assert res.status == "ok", res
    s = res.data["signals"]
    assert s["input_tokens_per_s"]["value"] == pytest.approx(2400, rel=0.03)
    assert s["error_rate"]["value"] == pytest.approx(0.21, rel=0.03)  # 3*3*7 / 300
    assert s["kv_cache_usage"]["value"] == pytest.approx(0.73 / 3, rel=1e-6)
    assert s["ttft_p50"]["value"] == pytest.approx(EXPECTED["ttft_p50"], rel=0.03)

    missing = tool.run({"service": "no-such-service"})
    assert missing.status == "no_data"
    assert all(v["value"] is None and v["reason"] for v in missing.data["signals"].values())


def test_configured_metric_names(client: PrometheusClient) -> None:
    names = MetricNames(kv_cache="DCGM_FI_DEV_GPU_UTIL")  # any gauge will do
    res = GoldenSignals(client, names=names).run({"service": "chat-api", "window_seconds": 4})
    assert res.data["signals"]["kv_cache_usage"]["value"] == pytest.approx(87.0)
    assert "DCGM_FI_DEV_GPU_UTIL" in res.data["signals"]["kv_cache_usage"]["query"]


def test_metrics_query_instant_and_range(client: PrometheusClient) -> None:
    tool = MetricsQuery(client)
    q = 'sum by (service) (rate(llm_output_tokens_total[4s]))'
    res = tool.run({"query": q})
    assert res.status == "ok", res
    by_service = {s["labels"]["service"]: s["points"][0][1] for s in res.data["series"]}
    assert by_service == pytest.approx({"chat-api": 200.0, 'batch "nightly"': 600.0}, rel=0.03)

    now = time.time()
    rng = tool.run({"query": 'vllm:gpu_cache_usage_perc{service="chat-api"}',
                    "start": datetime.fromtimestamp(now - 4, UTC),
                    "end": datetime.fromtimestamp(now, UTC), "step_seconds": 1})
    assert rng.status == "ok", rng
    assert rng.data["result_type"] == "matrix"
    points = rng.data["series"][0]["points"]
    assert len(points) >= 3 and {p[1] for p in points} == {0.73}

    scalar = client.query("scalar(sum(vllm:gpu_cache_usage_perc))")
    assert scalar.result_type == "scalar"
    assert scalar.series[0].value == pytest.approx(0.73 + 0.73 / 3)

    empty = tool.run({"query": "no_such_metric"})
    assert empty.status == "no_data"


def test_bad_promql_is_an_error_with_query_and_prometheus_message(
        client: PrometheusClient) -> None:
    bad = "sum(rate(llm_requests_total[5m])"
    res = MetricsQuery(client).run({"query": bad})
    assert res.status == "error"
    assert res.data["query"] == bad
    assert res.data["error_type"] == "bad_data"
    assert res.data["http_status"] == 400
    assert "parse error" in res.data["upstream_error"]
    assert bad in (res.error or "") and "parse error" in (res.error or "")

    # A broken catalog template: that signal is null with Prometheus' message; the rest work.
    catalog = default_catalog()
    catalog["ttft_p50"] = catalog["ttft_p50"].__class__("ttft_p50", "rate(x{service}[", "s")
    res2 = GoldenSignals(client, catalog=catalog).run({"service": "chat-api",
                                                       "window_seconds": 4})
    assert res2.status == "ok"
    assert res2.data["signals"]["ttft_p50"]["value"] is None
    assert "bad_data" in res2.data["signals"]["ttft_p50"]["reason"]
    assert res2.data["signals"]["ttft_p99"]["value"] is not None

    extra = MetricsQuery(client).run({"query": "up", "bogus": 1})  # extra="forbid"
    assert extra.status == "error" and "invalid arguments" in (extra.error or "")


def test_prometheus_down_is_a_clear_error() -> None:
    down = PrometheusClient(f"http://127.0.0.1:{free_port()}", timeout=2.0)
    try:
        res = GoldenSignals(down).run({"service": "chat-api"})
        assert res.status == "error"
        assert res.data["error_type"] == "connection"
        assert "cannot reach Prometheus" in (res.error or "")
        assert 'service="chat-api"' in res.data["query"]
        q = MetricsQuery(down).run({"query": "up"})
        assert q.status == "error" and q.data["query"] == "up"
        assert "cannot reach Prometheus" in (q.error or "")
    finally:
        down.close()


@pytest.mark.parametrize(("status", "fixture", "etype"), [
    (400, "prometheus_error_bad_data.json", "bad_data"),
    (503, "prometheus_error_timeout.json", "timeout"),
    (422, None, "execution"),
])
def test_documented_error_shapes(status: int, fixture: str | None, etype: str) -> None:
    body = (json.loads((WIRE / fixture).read_text()) if fixture else
            {"status": "error", "errorType": "execution",
             "error": "found duplicate series for the match group"})
    transport = httpx.MockTransport(lambda req: httpx.Response(status, json=body))
    c = PrometheusClient("http://prom.invalid", transport=transport)
    with pytest.raises(PrometheusError) as info:
        c.query("up == 1")
    assert (info.value.error_type, info.value.status_code) == (etype, status)
    assert info.value.message == body["error"] and info.value.query == "up == 1"
    # A proxy error page (not the JSON shape) still names the query.
    html = httpx.MockTransport(lambda req: httpx.Response(502, text="<html>Bad Gateway</html>"))
    with pytest.raises(PrometheusError, match=r"http HTTP 502.*Bad Gateway.*query: up"):
        PrometheusClient("http://prom.invalid", transport=html).query("up")


def test_reference_success_shapes_parse() -> None:
    for name, rtype, n in (("prometheus_query_vector.json", "vector", 3),
                           ("prometheus_query_scalar.json", "scalar", 1),
                           ("prometheus_query_range_matrix.json", "matrix", 2)):
        body = json.loads((WIRE / name).read_text())
        c = PrometheusClient("http://prom.invalid", transport=httpx.MockTransport(
            lambda req, body=body: httpx.Response(200, json=body)))
        res = c.query_range("q", 0, 1, 60) if rtype == "matrix" else c.query("q")
        assert (res.result_type, len(res.series)) == (rtype, n)
    assert res.series[1].points[4][1] != res.series[1].points[4][1]  # "NaN" parsed to NaN


def test_client_from_url() -> None:
    assert PrometheusClient.from_url(None) is None and PrometheusClient.from_url(" ") is None
    c = PrometheusClient.from_url("http://prom:9090/")
    assert c is not None and c.base_url == "http://prom:9090"
    c.close()


def test_selector_escapes_quotes() -> None:
    assert render("up{service}", 'a"b\\c', 300) == 'up{service="a\\"b\\\\c"}'
    assert render("rate(x{service}[{window}])", "s", 90) == 'rate(x{service="s"}[90s])'


# --- embedded: the provider-outage request log ------------------------------------------------

def _events() -> list[dict[str, Any]]:
    return [json.loads(line) for line in OUTAGE_LOG.read_text().splitlines() if line.strip()]


def _ts(raw: str) -> datetime:
    return datetime.fromisoformat(raw.replace("Z", "+00:00"))


def test_embedded_golden_signals_from_provider_outage_log() -> None:
    events = _events()
    calls: list[tuple[datetime, datetime]] = []

    def provider(start: datetime, end: datetime) -> list[Mapping[str, Any]]:
        calls.append((start, end))
        return list(events)

    tools = metrics_tools(None, provider)
    assert [t.spec.name for t in tools] == ["metrics.golden_signals"]
    golden = _tool(tools, "metrics.golden_signals")
    start, end = datetime(2026, 11, 27, 9, 30, tzinfo=UTC), datetime(2026, 11, 27, 10, 30,
                                                                      tzinfo=UTC)
    res = golden.run({"service": "chat-api", "start": start, "end": end})
    assert res.status == "ok", res
    assert res.data["source"] == "request_log" and calls == [(start, end)]
    s = res.data["signals"]

    # Independent figures from the same file.
    inside = [e for e in events if start <= _ts(e["timestamp"]) < end
              and e["service"] == "chat-api"]
    done = [e for e in inside if e["event_type"] == "llm_completion"]
    errors = [e for e in inside if e["level"] == "ERROR"]
    ttft = [e["ttft_ms"] / 1000 for e in done]
    hours = (end - start).total_seconds() / 3600
    assert len(done) == 1800 and len(errors) > 500
    assert s["ttft_p50"]["value"] == pytest.approx(statistics.median(ttft))
    assert s["ttft_p99"]["value"] == pytest.approx(
        statistics.quantiles(ttft, n=100, method="inclusive")[98])
    assert 0.05 < s["ttft_p50"]["value"] < s["ttft_p99"]["value"] < 5
    assert s["error_rate"]["value"] == pytest.approx(len(errors) / (len(done) + len(errors)))
    by = s["error_rate"]["by"]
    assert set(by) == {"OpenAIConnectionError", "JSONDecodeError",
                       "redis.exceptions.ConnectionError"}
    assert by["OpenAIConnectionError"] / s["error_rate"]["value"] == pytest.approx(0.8, abs=0.05)
    assert s["input_tokens_per_s"]["value"] == pytest.approx(
        sum(e["token_usage"]["prompt"] for e in done) / (hours * 3600))
    assert s["output_tokens_per_s"]["value"] == pytest.approx(
        sum(e["token_usage"]["completion"] for e in done) / (hours * 3600))
    assert s["burn_rate_usd_per_h"]["value"] == pytest.approx(
        sum(e["cost_usd"] for e in done) / hours)
    assert 0 < s["burn_rate_usd_per_h"]["value"] < 1000
    itl = s["inter_token_latency_p99"]["value"]
    assert itl is not None and 0 < itl < 1
    for name in ("kv_cache_usage", "gpu_utilization"):
        assert s[name]["value"] is None and "not available" in s[name]["reason"]

    # Only the outage hour: every request failed, no completions, so no TTFT.
    res2 = golden.run({"service": "chat-api", "at": datetime(2026, 11, 27, 10, 40, tzinfo=UTC),
                         "window_seconds": 600})
    assert res2.status == "ok"
    assert res2.data["signals"]["error_rate"]["value"] == 1.0
    assert res2.data["signals"]["ttft_p50"]["value"] is None
    assert res2.data["signals"]["ttft_p50"]["reason"]

    # Another service: nothing at all.
    assert golden.run({"service": "rag-retriever", "start": start, "end": end}).status == \
        "no_data"


def test_embedded_signals_ignore_numbers_too_big_for_a_float() -> None:
    from tools.metrics.embedded import embedded_signals

    start = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
    event = {"timestamp": "2026-11-27T10:00:01Z", "event_type": "llm_completion",
             "service": "chat-api", "ttft_ms": 10**400, "latency_ms": 900,
             "token_usage": {"prompt": 10, "completion": 5}, "cost_usd": 0.5}
    out = embedded_signals([event], "chat-api", start, start.replace(minute=10))
    assert out["signals"]["ttft_p50"]["value"] is None
    assert out["signals"]["burn_rate_usd_per_h"]["value"] == 0.5 * 6
