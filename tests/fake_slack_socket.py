"""A local WebSocket server speaking Slack's Socket Mode envelope protocol, for tests.

On connect it sends `hello`; `send()` pushes an envelope (`events_api`, `interactive`,
`slash_commands`) to every connected client; whatever a client sends back is recorded in
`received` (acks are `{"envelope_id": ...}`, optionally with a `payload`)."""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from aiohttp import WSMsgType, web

from tests.fake_slack import APP_ID


class FakeSocketMode:
    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.connections = 0
        self.port = 0
        self._sockets: set[web.WebSocketResponse] = set()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/link/?ticket={uuid.uuid4().hex}"

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_get("/link/", self._link)
        self._runner = web.AppRunner(app)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        self._loop.run_until_complete(site.start())
        server = site._server
        assert server is not None and server.sockets  # type: ignore[attr-defined]
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        self._ready.set()
        self._loop.run_forever()

    async def _link(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        with self.lock:
            self.connections += 1
        self._sockets.add(ws)
        await ws.send_str(json.dumps({
            "type": "hello", "num_connections": 1,
            "debug_info": {"host": "applink-fake", "approximate_connection_time": 18060},
            "connection_info": {"app_id": APP_ID}}))
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    with self.lock:
                        self.received.append(json.loads(msg.data))
        finally:
            self._sockets.discard(ws)
        return ws

    def connected(self) -> bool:
        return bool(self._sockets)

    def send(self, envelope: dict[str, Any]) -> None:
        async def push() -> None:
            for ws in list(self._sockets):
                await ws.send_str(json.dumps(envelope))

        asyncio.run_coroutine_threadsafe(push(), self._loop).result(5)

    def acks(self) -> list[str]:
        with self.lock:
            return [str(m["envelope_id"]) for m in self.received if "envelope_id" in m]

    def start(self) -> None:
        self._thread.start()
        self._ready.wait(10)

    def stop(self) -> None:
        async def close() -> None:
            for ws in list(self._sockets):
                await ws.close()
            if self._runner is not None:
                await self._runner.cleanup()

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)


def envelope(kind: str, payload: dict[str, Any], *, retry_attempt: int = 0) -> dict[str, Any]:
    """A Socket Mode envelope around the body HTTP mode would have received."""
    return {"envelope_id": str(uuid.uuid4()), "type": kind, "payload": payload,
            "accepts_response_payload": kind != "events_api", "retry_attempt": retry_attempt,
            "retry_reason": "timeout" if retry_attempt else ""}


@contextmanager
def serve_socket_mode() -> Iterator[FakeSocketMode]:
    fake = FakeSocketMode()
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()
