"""Real Prometheus rule → real Alertmanager → webhook → investigation → findings, in one test.

A test exporter serves an LLM provider error rate of 90 %; Prometheus evaluates the
LLMProviderErrorRateHigh rule every second and notifies Alertmanager, which delivers to metaops.
The service reads a JSONL log written around now, so the alert's own window holds the errors.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_alertmanager_real import alertmanager_factory  # noqa: F401
from tests.prometheus_proc import running_prometheus
from tests.support import ADMIN_TOKEN, WEBHOOK_TOKEN, ServerProcess, free_port

pytestmark = pytest.mark.slow
LABELS = 'service="chat-api",provider="openai"'
RULES = {"groups": [{"name": "llm", "interval": "1s", "rules": [{
    "alert": "LLMProviderErrorRateHigh",
    "expr": "sum by (service, provider) (rate(llm_request_errors_total[5s]))"
            " / sum by (service, provider) (rate(llm_requests_total[5s])) > 0.5",
    "for": "0s",
    "labels": {"severity": "critical", "team": "ml-platform"},
    "annotations": {"summary": "OpenAI error rate above 50 % on chat-api"},
}]}]}


@pytest.fixture
def exporter() -> Iterator[str]:
    started = time.time()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            t = 1000.0 + time.time() - started  # requests 10/s, errors 9/s
            body = (f"# TYPE llm_requests_total counter\nllm_requests_total{{{LABELS}}} {10 * t}\n"
                    f"# TYPE llm_request_errors_total counter\n"
                    f"llm_request_errors_total{{{LABELS},error_type=\"timeout\"}} {9 * t}\n")
            data = body.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _write_logs(path: Path, now: datetime) -> None:
    """Ten minutes of errors up to now: 45 timeouts, 5 JSON errors, and INFO noise."""
    lines = []
    for i in range(50):
        ts = now - timedelta(minutes=10) + timedelta(seconds=12 * i)
        message = (f"OpenAIConnectionError: request to api.openai.com timed out after 10.{i % 3}s "
                   f"(request_id=req_{i:012x}, attempt={i % 3 + 1})" if i % 10
                   else f"JSONDecodeError: Expecting value: line 1 column {i} (char {i * 7})")
        lines.append({"timestamp": ts.isoformat().replace("+00:00", "Z"), "level": "ERROR",
                      "service": "chat-api", "event_type": "app_log", "message": message})
        lines.append({"timestamp": ts.isoformat().replace("+00:00", "Z"), "level": "INFO",
                      "service": "chat-api", "event_type": "app_log", "message": "ok"})
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))


# Prometheus and Alertmanager, not the database: findings run on PostgreSQL in test_graph.
@pytest.mark.sqlite_pass
def test_prometheus_rule_to_findings_through_real_alertmanager(
        server_factory: Any, alertmanager_factory: Any, exporter: str,  # noqa: F811
        tmp_path: Path) -> None:
    logs = tmp_path / "app.jsonl"
    _write_logs(logs, datetime.now(UTC))
    server: ServerProcess = server_factory(METAOPS_LOGS_PATH=json.dumps([str(logs)]))
    server.start()
    am = alertmanager_factory(f"{server.url}/webhooks/alertmanager", WEBHOOK_TOKEN)
    config = {"global": {"scrape_interval": "1s", "evaluation_interval": "1s",
                         "scrape_timeout": "1s"},
              "scrape_configs": [{"job_name": "llm", "static_configs": [{"targets": [exporter]}]}],
              "alerting": {"alertmanagers": [{"static_configs": [
                  {"targets": [am.url.removeprefix("http://")]}]}]}}
    with running_prometheus(tmp_path / "prometheus", config,
                            "count_over_time(llm_requests_total[30s])", 3, rules=RULES), \
            server.client(ADMIN_TOKEN) as admin:
        deadline = time.monotonic() + 60
        detail: dict[str, Any] = {}
        while time.monotonic() < deadline:
            listing = admin.get("/api/v1/incidents").json()["incidents"]
            if listing:
                detail = admin.get(f"/api/v1/incidents/{listing[0]['id']}").json()
                if detail["findings"] and detail["actions"]:
                    break
            time.sleep(0.3)
        else:
            pytest.fail(f"no findings within 60 s: {detail}\n{am.logs()}\n{server.logs()[-3000:]}")
    (alert,) = detail["alerts"]
    assert alert["name"] == "LLMProviderErrorRateHigh" and alert["source"] == "alertmanager"
    (finding,) = detail["findings"]
    assert finding["specialist"] == "log_summarizer"
    patterns = finding["data"]["patterns"]
    assert [(p["count"], p["share"]) for p in patterns] == [(45, 0.9), (5, 0.1)]
    assert patterns[0]["template"].startswith("OpenAIConnectionError")
    assert "50 error lines in 2 distinct patterns: 90 % OpenAIConnectionError" in \
        finding["summary"]
    (action,) = detail["actions"]
    assert action["tool"] == "gitops.set_model_alias" and action["status"] == "pending_approval"
    assert action["args"] == {"alias": "chat-default", "target": "azure/gpt-4-turbo"}
