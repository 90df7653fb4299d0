"""A tiny in-process fake of Loki's GET /loki/api/v1/query_range (streams only), for tests."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse


@dataclass
class FakeLoki:
    """entries: (labels, ns, line[, meta]); answers the oldest `limit` lines of [start, end) with
    direction=forward, grouped into streams like Loki. `error` = (status, text body) answers
    every request with that error; `delay` sleeps before answering."""

    entries: list[tuple[Any, ...]] = field(default_factory=list)
    error: tuple[int, str] | None = None
    delay: float = 0.0
    requests: list[dict[str, str]] = field(default_factory=list)
    url: str = ""

    def answer(self, params: dict[str, str]) -> tuple[int, str, str]:
        self.requests.append(params)
        if self.delay:
            time.sleep(self.delay)
        if self.error:
            return self.error[0], "text/plain; charset=utf-8", self.error[1]
        start, end = int(params["start"]), int(params["end"])
        limit = int(params.get("limit", "100"))
        rows = sorted((e for e in self.entries if start <= e[1] < end),
                      key=lambda e: (e[1], json.dumps(e[0], sort_keys=True), e[2]))
        if params.get("direction", "backward") == "backward":
            rows.reverse()
        streams: dict[str, dict[str, Any]] = {}
        for e in rows[:limit]:
            key = json.dumps(e[0], sort_keys=True)
            value: list[Any] = [str(e[1]), e[2]] + ([e[3]] if len(e) > 3 else [])
            streams.setdefault(key, {"stream": e[0], "values": []})["values"].append(value)
        body = {"status": "success", "data": {"resultType": "streams",
                                              "result": list(streams.values()),
                                              "stats": {"summary": {}}}}
        return 200, "application/json", json.dumps(body)


@contextmanager
def serve(fake: FakeLoki) -> Iterator[FakeLoki]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urlparse(self.path)
            if url.path != "/loki/api/v1/query_range":
                self.send_error(404)
                return
            params = {k: v[0] for k, v in parse_qs(url.query).items()}
            status, ctype, body = fake.answer(params)
            data = body.encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
