"""A wire-level fake of Slack's Web API (and of response_url hooks), plus Slack request signing
and builders for the request bodies Slack sends to an app, for tests.

The server speaks the Web API as `slack_sdk` calls it: `POST /api/<method>` (or `GET` with a
query string, as the async client sends `users.info`), form or JSON bodies, the token in
`Authorization: Bearer xoxb-...` (or a `token` form field; never in a JSON body, as on Slack).
Web API errors are HTTP 200 with `{"ok": false, "error": ...}`; rate limiting is HTTP 429 with
`Retry-After`. Identifiers default to the ones of the reference fixtures
(/work/shared/reference/wire/slack_*.json), so builders reproduce those bodies byte for byte.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import hashlib
import hmac
import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, urlencode, urlparse

TEAM_ID = "T0A1B2C3D"
TEAM_NAME = "LLM Platform"
TEAM_DOMAIN = "llm-platform"
APP_ID = "A07OPSAGNT1"
BOT_USER_ID = "U07OPSBOT01"
BOT_ID = "B07OPSBOT01"
BOT_NAME = "ops-agent"
BOT_TOKEN = "xoxb-7261-fake-slack-bot-token"
APP_TOKEN = "xapp-1-A07OPSAGNT1-7261-fake-slack-app-token"
ONCALL_USER_ID = "U02ONCALL01"
ONCALL_USER_NAME = "priya.oncall"
CHANNEL_ID = "C05LLMOPS01"
CHANNEL_NAME = "llm-incidents"
DM_CHANNEL_ID = "D07ONCALL01"
# The deprecated verification token Slack still puts in payloads (the fixtures' value).
VERIFICATION_TOKEN = "Jhj5dZrVaK7ZwHHjRyZWjbDl"
# The reference fixtures' fake signing secret.
SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
# Message timestamps handed out by the fake: "1700000000.000100", "1700000000.000200", ...
TS_EPOCH = 1_700_000_000

Obj = dict[str, Any]
Key = tuple[str, str]  # (channel id, message ts)

_KNOWN_NAMES = {ONCALL_USER_ID: ONCALL_USER_NAME, BOT_USER_ID: BOT_NAME}
_KNOWN_CHANNELS = {CHANNEL_ID: CHANNEL_NAME}
_JSON_FIELDS = ("blocks", "attachments", "metadata")


# -- signing and payload builders ---------------------------------------------------------------

def _bytes(body: bytes | str) -> bytes:
    return body.encode("utf-8") if isinstance(body, str) else body


def signature(body: bytes | str, secret: str, timestamp: int | str) -> str:
    """`v0=` + hex HMAC-SHA256(secret, "v0:<timestamp>:<raw body>"), as Slack signs."""
    base = b"v0:" + str(timestamp).encode() + b":" + _bytes(body)
    return "v0=" + hmac.new(secret.encode("utf-8"), base, hashlib.sha256).hexdigest()


def sign(body: bytes | str, secret: str, timestamp: int | None = None) -> dict[str, str]:
    """The two headers Slack sends with every request it makes to an app (timestamp: now)."""
    ts = int(time.time()) if timestamp is None else int(timestamp)
    return {"X-Slack-Request-Timestamp": str(ts),
            "X-Slack-Signature": signature(body, secret, ts)}


def _compact(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"))


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()


def _button(blocks: list[Obj] | None, action_id: str) -> Obj | None:
    for block in blocks or []:
        for element in block.get("elements") or []:
            if isinstance(element, dict) and element.get("action_id") == action_id:
                return {**element, "block_id": block.get("block_id", "")}
        accessory = block.get("accessory")
        if isinstance(accessory, dict) and accessory.get("action_id") == action_id:
            return {**accessory, "block_id": block.get("block_id", "")}
    return None


def block_actions_body(user_id: str, action_id: str, value: str | None, *, channel: str,
                       message_ts: str, response_url: str | None = None,
                       message: Obj | None = None, block_id: str | None = None,
                       action_text: str | None = None, style: str | None = None,
                       user_name: str | None = None, channel_name: str | None = None,
                       trigger_id: str | None = None, action_ts: str | None = None,
                       is_ephemeral: bool = False, team_id: str = TEAM_ID,
                       team_domain: str = TEAM_DOMAIN, api_app_id: str = APP_ID) -> bytes:
    """The raw body of a `block_actions` request for a button click, as Slack sends it:
    `payload=<URL-encoded compact JSON>` (slack_block_actions.form.txt). With `message` (the
    source message as Slack has it) the button's block_id, text and style are read from its
    blocks; without one a minimal bot message holding just this button is sent. Ephemeral
    sources carry no `message`, only the container's message_ts."""
    button = _button((message or {}).get("blocks"), action_id) or {}
    block_id = block_id or button.get("block_id") or "actions"
    text = action_text or (button.get("text") or {}).get("text") or action_id
    style = style or button.get("style")
    name = user_name or _KNOWN_NAMES.get(user_id, user_id.lower())
    seed = _digest(user_id, action_id, channel, message_ts)
    action: Obj = {"action_id": action_id, "block_id": block_id,
                   "text": {"type": "plain_text", "text": text, "emoji": True}}
    if value is not None:
        action["value"] = value
    if style:
        action["style"] = style
    action["type"] = "button"
    action["action_ts"] = action_ts or f"{time.time():.6f}"
    if message is None and not is_ephemeral:
        element: Obj = {"type": "button", "action_id": action_id,
                        "text": {"type": "plain_text", "text": text}}
        if value is not None:
            element["value"] = value
        message = {"type": "message", "subtype": "bot_message", "text": "", "ts": message_ts,
                   "username": BOT_NAME, "bot_id": BOT_ID, "app_id": api_app_id,
                   "blocks": [{"type": "actions", "block_id": block_id, "elements": [element]}]}
    payload: Obj = {
        "type": "block_actions",
        "user": {"id": user_id, "username": name, "name": name, "team_id": team_id},
        "api_app_id": api_app_id,
        "token": VERIFICATION_TOKEN,
        "container": {"type": "message", "message_ts": message_ts, "channel_id": channel,
                      "is_ephemeral": is_ephemeral},
        "trigger_id": trigger_id or f"{int(seed[:12], 16) % 10**13}.1234567890123.{seed[12:44]}",
        "team": {"id": team_id, "domain": team_domain},
        "enterprise": None,
        "is_enterprise_install": False,
        "channel": {"id": channel, "name": channel_name or _channel_name(channel)},
    }
    if not is_ephemeral:
        payload["message"] = message
    payload["state"] = {"values": {}}
    payload["response_url"] = response_url or (
        f"https://hooks.slack.com/actions/{team_id}/{int(seed[44:56], 16) % 10**13}/{seed[:24]}")
    payload["actions"] = [action]
    return ("payload=" + quote(_compact(payload), safe="")).encode()


def _channel_name(channel: str) -> str:
    if channel.startswith("D"):
        return "directmessage"
    return _KNOWN_CHANNELS.get(channel, channel.lower())


def slash_command_body(user_id: str, command: str, text: str = "", *, channel: str,
                       response_url: str | None = None, user_name: str | None = None,
                       channel_name: str | None = None, trigger_id: str | None = None,
                       team_id: str = TEAM_ID, team_domain: str = TEAM_DOMAIN,
                       api_app_id: str = APP_ID) -> bytes:
    """The raw form body of a slash command (slack_slash_command.form.txt): plain fields."""
    seed = _digest(user_id, command, text, channel)
    fields = [
        ("token", VERIFICATION_TOKEN), ("team_id", team_id), ("team_domain", team_domain),
        ("channel_id", channel), ("channel_name", channel_name or _channel_name(channel)),
        ("user_id", user_id),
        ("user_name", user_name or _KNOWN_NAMES.get(user_id, user_id.lower())),
        ("command", command), ("text", text), ("api_app_id", api_app_id),
        ("is_enterprise_install", "false"),
        ("response_url", response_url or f"https://hooks.slack.com/commands/{team_id}/"
                                          f"{int(seed[:12], 16) % 10**13}/{seed[12:36]}"),
        ("trigger_id", trigger_id or f"{int(seed[36:48], 16) % 10**13}.1234567890123."
                                     f"{seed[:32]}"),
    ]
    return urlencode(fields).encode()


def event_body(event: Obj, *, event_id: str | None = None, event_time: int | None = None,
               team_id: str = TEAM_ID, api_app_id: str = APP_ID,
               bot_user_id: str = BOT_USER_ID) -> bytes:
    """The raw JSON body of an Events API `event_callback` (slack_event_app_mention.json).
    event_id defaults to a digest of the event (a retry of the same event keeps its id);
    event_time to the event's event_ts/ts seconds."""
    raw_event = _compact(event)
    context: Obj = {"et": event.get("type"), "tid": team_id, "aid": api_app_id}
    if event.get("channel"):
        context["cid"] = event["channel"]
    stamp = event.get("event_ts") or event.get("ts")
    envelope = {
        "token": VERIFICATION_TOKEN,
        "team_id": team_id,
        "context_team_id": team_id,
        "context_enterprise_id": None,
        "api_app_id": api_app_id,
        "event": event,
        "type": "event_callback",
        "event_id": event_id or "Ev" + _digest(raw_event)[:10].upper(),
        "event_time": event_time if event_time is not None else
        int(float(stamp)) if stamp else int(time.time()),
        "authorizations": [{"enterprise_id": None, "team_id": team_id, "user_id": bot_user_id,
                            "is_bot": True, "is_enterprise_install": False}],
        "is_ext_shared_channel": False,
        "event_context": "4-" + base64.b64encode(_compact(context).encode()).decode().rstrip("="),
    }
    return _compact(envelope).encode()


def url_verification_body(challenge: str) -> bytes:
    """The raw JSON body Slack sends once when the Request URL is saved."""
    return _compact({"token": VERIFICATION_TOKEN, "challenge": challenge,
                     "type": "url_verification"}).encode()


def app_mention_event(user_id: str, text: str, *, channel: str, ts: str,
                      thread_ts: str | None = None, team_id: str = TEAM_ID,
                      bot_user_id: str = BOT_USER_ID) -> Obj:
    """An `app_mention` event as Slack shapes it; `text` is what follows the mention."""
    event: Obj = {"type": "app_mention", "user": user_id, "text": f"<@{bot_user_id}> {text}",
                  "ts": ts, "client_msg_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{channel}/{ts}")),
                  "team": team_id, "channel": channel}
    if thread_ts:
        event["thread_ts"] = thread_ts
    event["event_ts"] = ts
    event["blocks"] = [{"type": "rich_text", "block_id": _digest(ts)[:5], "elements": [
        {"type": "rich_text_section", "elements": [{"type": "user", "user_id": bot_user_id},
                                                   {"type": "text", "text": f" {text}"}]}]}]
    return event


# -- the fake -----------------------------------------------------------------------------------

class SlackError(Exception):
    """Raised inside a method handler: answers HTTP 200 {"ok": false, "error": error}."""

    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error


@dataclass(frozen=True)
class Call:
    """One HTTP request to /api/<method>, whatever the answer (429 and 500 included).
    params: query string plus form or JSON body, with blocks/attachments/metadata JSON-decoded
    when sent as form strings; headers: names lower-cased."""

    method: str
    http_method: str
    params: Obj
    headers: dict[str, str]
    body: bytes
    status: int
    response: Obj

    @property
    def ok(self) -> bool:
        return self.status == 200 and bool(self.response.get("ok"))

    @property
    def error(self) -> str | None:
        return None if self.ok else self.response.get("error")


@dataclass(frozen=True)
class HookPost:
    """One POST to a response_url handed out by FakeSlack.click_body / slash_command_body."""

    path: str
    payload: Obj
    headers: dict[str, str]


@dataclass
class _RateLimit:
    remaining: int
    retry_after: int
    method: str | None


@dataclass
class _Failure:
    error: str
    remaining: int | None  # None: until cleared


class _Server:
    """The listening socket; stop() closes it, start() reopens on the same port."""

    def __init__(self, fake: FakeSlack) -> None:
        self.fake = fake
        self.port = 0
        self.httpd: ThreadingHTTPServer | None = None
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        if self.httpd is not None:
            return
        handler = type("SlackHandler", (_Handler,), {"fake": self.fake})
        for attempt in range(100):
            try:
                httpd = ThreadingHTTPServer(("127.0.0.1", self.port), handler)
                break
            except OSError:
                if self.port == 0 or attempt == 99:
                    raise
                time.sleep(0.05)  # the old socket on this port is still being torn down
        httpd.daemon_threads = True
        self.port = httpd.server_address[1]
        self.httpd = httpd
        self.thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()

    def stop(self) -> None:
        if self.httpd is None:
            return
        self.httpd.shutdown()
        self.httpd.server_close()
        if self.thread is not None:
            self.thread.join(5)
        self.httpd = self.thread = None


class _Handler(BaseHTTPRequestHandler):
    fake: FakeSlack

    def do_POST(self) -> None:
        self._serve("POST")

    def do_GET(self) -> None:
        self._serve("GET")

    def _serve(self, verb: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        status, extra, ctype, data = self.fake.handle(verb, self.path, headers, body)
        try:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            for name, value in extra.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _user(user_id: str, name: str, *, team_id: str, real_name: str | None, email: str | None,
          is_bot: bool, is_admin: bool, deleted: bool, tz: str, bot_id: str | None,
          app_id: str | None) -> Obj:
    real = real_name or name
    profile: Obj = {"real_name": real, "real_name_normalized": real,
                    "display_name": "" if is_bot else name,
                    "display_name_normalized": "" if is_bot else name, "team": team_id}
    if is_bot:
        profile.update({"bot_id": bot_id, "api_app_id": app_id, "always_active": True})
    elif email:
        profile["email"] = email
    return {"id": user_id, "team_id": team_id, "name": name, "deleted": deleted,
            "color": "9f69e7", "real_name": real, "tz": tz, "tz_offset": 0, "profile": profile,
            "is_admin": is_admin, "is_owner": False, "is_primary_owner": False,
            "is_restricted": False, "is_ultra_restricted": False, "is_bot": is_bot,
            "is_app_user": False, "updated": TS_EPOCH}


@dataclass
class FakeSlack:
    """One workspace with one bot. `calls` records every Web API request; messages are kept by
    (channel, ts) with their edits; `ephemerals` and `hooks` record what only one user sees and
    what was posted to response_urls. Channels must be known (`add_channel`) and the bot a
    member, as on Slack; users likewise (`add_user`). Defaults match the reference fixtures:
    #llm-incidents (C05LLMOPS01), on-call user U02ONCALL01 with DM D07ONCALL01, bot U07OPSBOT01."""

    tokens: set[str] = field(default_factory=lambda: {BOT_TOKEN})
    app_token: str = APP_TOKEN
    socket_url: str | None = None  # what apps.connections.open hands out (Socket Mode)
    team_id: str = TEAM_ID
    team_name: str = TEAM_NAME
    team_domain: str = TEAM_DOMAIN
    app_id: str = APP_ID
    bot_user_id: str = BOT_USER_ID
    bot_id: str = BOT_ID
    bot_name: str = BOT_NAME
    users: dict[str, Obj] = field(default_factory=dict)
    channels: dict[str, Obj] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    ephemerals: list[Obj] = field(default_factory=list)
    hooks: list[HookPost] = field(default_factory=list)
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
    _messages: dict[Key, Obj] = field(default_factory=dict, repr=False)
    _versions: dict[Key, list[Obj]] = field(default_factory=dict, repr=False)
    _hook_targets: dict[str, Obj] = field(default_factory=dict, repr=False)
    _counter: int = field(default=0, repr=False)
    _rate_limits: list[_RateLimit] = field(default_factory=list, repr=False)
    _failures: dict[str, list[_Failure]] = field(default_factory=dict, repr=False)
    _outage: tuple[int, str] | None = field(default=None, repr=False)
    _server: _Server | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not self.users:
            self.add_user(ONCALL_USER_ID, ONCALL_USER_NAME, real_name="Priya Raman",
                          email="priya.oncall@example.com")
            self.add_user(self.bot_user_id, self.bot_name, real_name="Ops Agent", is_bot=True)
        if not self.channels:
            self.add_channel(CHANNEL_ID, CHANNEL_NAME)
            self.add_channel(DM_CHANNEL_ID, "", user=ONCALL_USER_ID)

    # -- address -----------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("FakeSlack is not being served (use serve_slack())")
        return self._server.port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        """base_url for slack_sdk clients."""
        return f"{self.url}/api/"

    # -- setup -------------------------------------------------------------------------------

    def add_user(self, user_id: str, name: str, *, real_name: str | None = None,
                 email: str | None = None, is_bot: bool = False, is_admin: bool = False,
                 deleted: bool = False, tz: str = "Europe/London") -> Obj:
        user = _user(user_id, name, team_id=self.team_id, real_name=real_name, email=email,
                     is_bot=is_bot, is_admin=is_admin, deleted=deleted, tz=tz,
                     bot_id=self.bot_id if user_id == self.bot_user_id else None,
                     app_id=self.app_id if user_id == self.bot_user_id else None)
        with self.lock:
            self.users[user_id] = user
        return user

    def add_channel(self, channel_id: str, name: str, *, is_member: bool = True,
                    user: str | None = None) -> Obj:
        """A channel (C.../G...) or, with `user`, the DM (D...) between that user and the bot."""
        channel = {"id": channel_id, "name": name, "is_im": user is not None, "user": user,
                   "is_member": is_member}
        with self.lock:
            self.channels[channel_id] = channel
        return channel

    def add_message(self, channel: str, text: str, *, user: str = ONCALL_USER_ID,
                    thread_ts: str | None = None) -> str:
        """A message some human wrote (the bot can reply in its thread, not edit it); its ts."""
        with self.lock:
            ts = self._next_ts()
            msg: Obj = {"type": "message", "user": user, "text": text, "ts": ts,
                        "team": self.team_id}
            self._store(channel, msg, thread_ts)
            return ts

    # -- failure modes -----------------------------------------------------------------------

    def rate_limit(self, n: int, retry_after: int = 1, *, method: str | None = None) -> None:
        """The next n Web API calls (to `method` only, if given) answer 429 + Retry-After."""
        with self.lock:
            self._rate_limits.append(_RateLimit(n, retry_after, method))

    def outage(self, on: bool = True, *, status: int = 500, error: str = "internal_error") -> None:
        """While on, every request answers `status` with {"ok": false, "error": error}."""
        with self.lock:
            self._outage = (status, error) if on else None

    def fail(self, method: str, error: str, *, times: int | None = 1) -> None:
        """The next `times` calls to `method` (None: every call until heal()) answer HTTP 200
        {"ok": false, "error": error}, e.g. channel_not_found, not_in_channel, msg_too_long."""
        with self.lock:
            self._failures.setdefault(method, []).append(_Failure(error, times))

    def refuse_connections(self) -> None:
        """Close the listening socket: clients get 'connection refused' until accept_connections."""
        if self._server is not None:
            self._server.stop()

    def accept_connections(self) -> None:
        """Listen again, on the same port."""
        if self._server is not None:
            self._server.start()

    def heal(self) -> None:
        """Clear every failure mode and accept connections again."""
        with self.lock:
            self._rate_limits.clear()
            self._failures.clear()
            self._outage = None
        self.accept_connections()

    # -- reading the state -------------------------------------------------------------------

    def calls_to(self, method: str) -> list[Call]:
        with self.lock:
            return [c for c in self.calls if c.method == method]

    def message(self, channel: str, ts: str) -> Obj:
        """The current version of a message (KeyError if there is none)."""
        with self.lock:
            if (channel, ts) not in self._messages:
                raise KeyError(f"no message {ts} in {channel}")
            return copy.deepcopy(self._messages[(channel, ts)])

    def versions(self, channel: str, ts: str) -> list[Obj]:
        """Every version of a message, oldest first (the post, then each edit)."""
        with self.lock:
            return copy.deepcopy(self._versions.get((channel, ts), []))

    def thread(self, channel: str, thread_ts: str) -> list[Obj]:
        """The thread's parent (if known) and replies, in ts order, current versions."""
        with self.lock:
            return [copy.deepcopy(m) for (c, ts), m in sorted(self._messages.items())
                    if c == channel and (ts == thread_ts or m.get("thread_ts") == thread_ts)]

    def history(self, channel: str) -> list[Obj]:
        """Top-level messages of a channel (thread replies excluded), in ts order."""
        with self.lock:
            return [copy.deepcopy(m) for (c, ts), m in sorted(self._messages.items())
                    if c == channel and m.get("thread_ts", ts) == ts]

    # -- bodies of requests Slack would send the app, wired to this fake ---------------------

    def click_body(self, user_id: str, action_id: str, *, channel: str, ts: str) -> bytes:
        """`user_id` clicks the button `action_id` on the stored message (channel, ts): the
        block_actions body with that message, the button's value, and a response_url that
        points at this fake (see `hooks`)."""
        msg = self.message(channel, ts)
        button = _button(msg.get("blocks"), action_id)
        if button is None:
            raise KeyError(f"message {ts} in {channel} has no element {action_id!r}")
        user = self.users.get(user_id, {})
        chan = self.channels.get(channel, {})
        return block_actions_body(
            user_id, action_id, button.get("value"), channel=channel, message_ts=ts,
            message=msg, response_url=self._hook("actions", channel, ts, user_id),
            user_name=user.get("name"), team_id=self.team_id, team_domain=self.team_domain,
            channel_name="directmessage" if chan.get("is_im") else chan.get("name"),
            api_app_id=self.app_id)

    def slash_command_body(self, user_id: str, command: str, text: str = "", *,
                           channel: str = CHANNEL_ID) -> bytes:
        """A slash command typed in `channel`, with a response_url that points at this fake."""
        user = self.users.get(user_id, {})
        chan = self.channels.get(channel, {})
        return slash_command_body(
            user_id, command, text, channel=channel,
            response_url=self._hook("commands", channel, None, user_id),
            user_name=user.get("name"), team_id=self.team_id, team_domain=self.team_domain,
            channel_name="directmessage" if chan.get("is_im") else chan.get("name"),
            api_app_id=self.app_id)

    def mention_body(self, user_id: str, text: str, *, channel: str = CHANNEL_ID,
                     thread_ts: str | None = None) -> bytes:
        """`user_id` writes "@bot <text>" in `channel` (in a thread if thread_ts): the message
        is stored and the app_mention event_callback body returned."""
        ts = self.add_message(channel, f"<@{self.bot_user_id}> {text}", user=user_id,
                              thread_ts=thread_ts)
        event = app_mention_event(user_id, text, channel=channel, ts=ts, thread_ts=thread_ts,
                                  team_id=self.team_id, bot_user_id=self.bot_user_id)
        return event_body(event, team_id=self.team_id, api_app_id=self.app_id,
                          bot_user_id=self.bot_user_id)

    def _hook(self, kind: str, channel: str, ts: str | None, user: str) -> str:
        with self.lock:
            path = f"/hooks/{kind}/{self.team_id}/{len(self._hook_targets) + 1}"
            self._hook_targets[path] = {"channel": channel, "ts": ts, "user": user}
        return self.url + path

    # -- request handling --------------------------------------------------------------------

    def handle(self, verb: str, raw_path: str, headers: dict[str, str],
               body: bytes) -> tuple[int, dict[str, str], str, bytes]:
        """(status, extra headers, content type, body) for one HTTP request."""
        url = urlparse(raw_path)
        if url.path.startswith("/hooks/"):
            return self._on_hook(url.path, headers, body)
        if not url.path.startswith("/api/") or verb not in ("GET", "POST"):
            return 404, {}, "text/plain; charset=utf-8", b"Not Found"
        method = url.path[len("/api/"):]
        with self.lock:
            try:
                params = self._params(url.query, headers.get("content-type", ""), body)
                parse_error = None
            except SlackError as e:
                params, parse_error = {}, e.error
            from_json = bool(params.pop("_json", False))
            status, extra, out = self._answer(method, params, headers, from_json, parse_error)
            self.calls.append(Call(method, verb, params, dict(headers), body, status,
                                   copy.deepcopy(out)))
        extra = {**extra, "X-Slack-Req-Id": uuid.uuid4().hex}
        return status, extra, "application/json; charset=utf-8", json.dumps(out).encode()

    @staticmethod
    def _params(query: str, ctype: str, body: bytes) -> Obj:
        params: Obj = {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}
        if body and ctype.startswith("application/json"):
            try:
                data = json.loads(body)
            except ValueError:
                raise SlackError("invalid_json") from None
            if not isinstance(data, dict):
                raise SlackError("invalid_json")
            params.update({"_json": True, **data})
        elif body and (not ctype or ctype.startswith("application/x-www-form-urlencoded")):
            form = parse_qs(body.decode("utf-8"), keep_blank_values=True)
            params.update({k: v[-1] for k, v in form.items()})
        for key in _JSON_FIELDS:
            if isinstance(params.get(key), str) and params[key]:
                # Not JSON: left as a string; the method answers invalid_<key>_format.
                with contextlib.suppress(ValueError):
                    params[key] = json.loads(params[key])
        return params

    def _answer(self, method: str, params: Obj, headers: dict[str, str], from_json: bool,
                parse_error: str | None) -> tuple[int, dict[str, str], Obj]:
        if self._outage is not None:
            return self._outage[0], {}, {"ok": False, "error": self._outage[1]}
        for limit in self._rate_limits:
            if limit.remaining > 0 and limit.method in (None, method):
                limit.remaining -= 1
                return 429, {"Retry-After": str(limit.retry_after)}, {"ok": False,
                                                                      "error": "ratelimited"}
        auth = headers.get("authorization", "")
        token = auth[len("Bearer "):].strip() if auth.startswith("Bearer ") else None
        if token is None and not from_json:
            token = params.get("token")
        if not token:
            return 200, {}, {"ok": False, "error": "not_authed"}
        if method == "apps.connections.open":
            # Only an app-level token (xapp-) opens a Socket Mode connection.
            if token != self.app_token:
                return 200, {}, {"ok": False, "error": "not_allowed_token_type"}
            if self.socket_url is None:
                return 200, {}, {"ok": False, "error": "socket_mode_not_enabled"}
            return 200, {}, {"ok": True, "url": self.socket_url}
        if token not in self.tokens:
            return 200, {}, {"ok": False, "error": "invalid_auth"}
        if parse_error:
            return 200, {}, {"ok": False, "error": parse_error}
        for failure in self._failures.get(method, []):
            if failure.remaining is None or failure.remaining > 0:
                if failure.remaining is not None:
                    failure.remaining -= 1
                return 200, {}, {"ok": False, "error": failure.error}
        handler = {
            "auth.test": self._auth_test,
            "chat.postMessage": self._post_message,
            "chat.update": self._update,
            "chat.postEphemeral": self._post_ephemeral,
            "users.info": self._users_info,
            "conversations.replies": self._replies,
        }.get(method)
        if handler is None:
            return 200, {}, {"ok": False, "error": "unknown_method", "req_method": method}
        try:
            return 200, {}, handler(params)
        except SlackError as e:
            return 200, {}, {"ok": False, "error": e.error}

    # -- state changes (under self.lock) -----------------------------------------------------

    def _next_ts(self) -> str:
        self._counter += 1
        return f"{TS_EPOCH + self._counter // 10_000}.{self._counter % 10_000 * 100:06d}"

    def _store(self, channel: str, msg: Obj, thread_ts: str | None) -> None:
        ts = msg["ts"]
        if thread_ts:
            msg["thread_ts"] = thread_ts
            parent = self._messages.get((channel, thread_ts))
            if parent is not None:
                msg["parent_user_id"] = parent.get("user") or self.bot_user_id
                who = msg.get("user") or self.bot_user_id
                parent["thread_ts"] = thread_ts
                parent["reply_count"] = parent.get("reply_count", 0) + 1
                parent["reply_users"] = sorted({*parent.get("reply_users", []), who})
                parent["reply_users_count"] = len(parent["reply_users"])
                parent["latest_reply"] = ts
        self._messages[(channel, ts)] = msg
        self._versions[(channel, ts)] = [copy.deepcopy(msg)]

    def _channel(self, value: Any, *, by_name: bool) -> str:
        """A channel id from an id (or, where Slack allows it, a #name or a user id)."""
        given = str(value or "")
        cid: str | None = given if given in self.channels else None
        if cid is None and by_name:
            name = given.removeprefix("#")
            cid = next((c for c, ch in self.channels.items() if ch["name"] == name and name), None)
            if cid is None and given in self.users:
                cid = next((c for c, ch in self.channels.items() if ch["user"] == given), None)
                if cid is None:
                    cid = "D" + _digest(given)[:10].upper()
                    self.add_channel(cid, "", user=given)
        if cid is None:
            raise SlackError("channel_not_found")
        if not self.channels[cid]["is_member"]:
            raise SlackError("not_in_channel")
        return cid

    @staticmethod
    def _content(params: Obj) -> Obj:
        text, blocks, attachments = (params.get(k) for k in ("text", "blocks", "attachments"))
        if not text and not blocks and not attachments:
            raise SlackError("no_text")
        if text is not None and len(str(text)) > 40_000:
            raise SlackError("msg_too_long")
        for key in ("blocks", "attachments"):
            value = params.get(key)
            if value is not None and not isinstance(value, list):
                raise SlackError(f"invalid_{key}_format" if isinstance(value, str)
                                 else f"invalid_{key}")
            if key == "blocks" and value and (len(value) > 50 or
                                              not all(isinstance(b, dict) and b.get("type")
                                                      for b in value)):
                raise SlackError("invalid_blocks")
        return {k: params[k] for k in ("text", "blocks", "attachments", "metadata")
                if k in params}

    def _auth_test(self, params: Obj) -> Obj:
        return {"ok": True, "url": f"https://{self.team_domain}.slack.com/",
                "team": self.team_name, "user": self.bot_name, "team_id": self.team_id,
                "user_id": self.bot_user_id, "bot_id": self.bot_id,
                "is_enterprise_install": False}

    def _post_message(self, params: Obj) -> Obj:
        channel = self._channel(params.get("channel"), by_name=True)
        content = self._content(params)
        msg: Obj = {"type": "message", "subtype": "bot_message",
                    "text": str(content.get("text") or ""), "ts": self._next_ts(),
                    "username": self.bot_name, "bot_id": self.bot_id, "app_id": self.app_id}
        for key in ("blocks", "attachments", "metadata"):
            if content.get(key):
                msg[key] = content[key]
        self._store(channel, msg, str(params["thread_ts"]) if params.get("thread_ts") else None)
        return {"ok": True, "channel": channel, "ts": msg["ts"], "message": copy.deepcopy(msg)}

    def _update(self, params: Obj) -> Obj:
        channel = self._channel(params.get("channel"), by_name=False)
        key = (channel, str(params.get("ts") or ""))
        msg = self._messages.get(key)
        if msg is None:
            raise SlackError("message_not_found")
        if msg.get("bot_id") != self.bot_id:
            raise SlackError("cant_update_message")
        content = self._content(params)
        if "text" in content:
            msg["text"] = str(content["text"] or "")
        for field_name in ("blocks", "attachments", "metadata"):
            if field_name in content:  # omitted: kept; empty: removed
                if content[field_name]:
                    msg[field_name] = content[field_name]
                else:
                    msg.pop(field_name, None)
        msg["edited"] = {"user": self.bot_user_id, "ts": self._next_ts()}
        self._versions[key].append(copy.deepcopy(msg))
        shown: Obj = {"type": "message", "text": msg["text"], "bot_id": self.bot_id,
                      "app_id": self.app_id}
        if msg.get("blocks"):
            shown["blocks"] = copy.deepcopy(msg["blocks"])
        return {"ok": True, "channel": channel, "ts": key[1], "text": msg["text"],
                "message": shown}

    def _post_ephemeral(self, params: Obj) -> Obj:
        channel = self._channel(params.get("channel"), by_name=True)
        user = str(params.get("user") or "")
        if user not in self.users:
            raise SlackError("user_not_in_channel")
        content = self._content(params)
        ts = self._next_ts()
        entry: Obj = {"channel": channel, "user": user, "ts": ts,
                      "text": str(content.get("text") or "")}
        if content.get("blocks"):
            entry["blocks"] = content["blocks"]
        if params.get("thread_ts"):
            entry["thread_ts"] = str(params["thread_ts"])
        self.ephemerals.append(entry)
        return {"ok": True, "message_ts": ts}

    def _users_info(self, params: Obj) -> Obj:
        user = self.users.get(str(params.get("user") or ""))
        if user is None:
            raise SlackError("user_not_found")
        return {"ok": True, "user": copy.deepcopy(user)}

    def _replies(self, params: Obj) -> Obj:
        channel = self._channel(params.get("channel"), by_name=False)
        messages = self.thread(channel, str(params.get("ts") or ""))
        if not messages:
            raise SlackError("thread_not_found")
        return {"ok": True, "messages": messages, "has_more": False,
                "response_metadata": {"next_cursor": ""}}

    def _on_hook(self, path: str, headers: dict[str, str],
                 body: bytes) -> tuple[int, dict[str, str], str, bytes]:
        """A response_url: "replace_original" edits the source message, "delete_original"
        deletes it, response_type "in_channel" posts to the channel, else an ephemeral."""
        text_type = "text/plain; charset=utf-8"
        with self.lock:
            target = self._hook_targets.get(path)
            if target is None:
                return 404, {}, text_type, b"no_service"
            try:
                payload = json.loads(body)
            except ValueError:
                return 400, {}, text_type, b"invalid_payload"
            if not isinstance(payload, dict):
                return 400, {}, text_type, b"invalid_payload"
            self.hooks.append(HookPost(path, payload, dict(headers)))
            key = (target["channel"], target["ts"] or "")
            if payload.get("delete_original") and key in self._messages:
                del self._messages[key]
            elif payload.get("replace_original") and key in self._messages:
                msg = self._messages[key]
                msg["text"] = str(payload.get("text") or "")
                msg.pop("blocks", None)
                if payload.get("blocks"):
                    msg["blocks"] = payload["blocks"]
                msg["edited"] = {"user": self.bot_user_id, "ts": self._next_ts()}
                self._versions[key].append(copy.deepcopy(msg))
            elif payload.get("response_type") == "in_channel":
                msg = {"type": "message", "subtype": "bot_message",
                       "text": str(payload.get("text") or ""), "ts": self._next_ts(),
                       "username": self.bot_name, "bot_id": self.bot_id, "app_id": self.app_id}
                if payload.get("blocks"):
                    msg["blocks"] = payload["blocks"]
                self._store(target["channel"], msg, payload.get("thread_ts"))
            else:
                entry = {"channel": target["channel"], "user": target["user"],
                         "ts": self._next_ts(), "text": str(payload.get("text") or "")}
                if payload.get("blocks"):
                    entry["blocks"] = payload["blocks"]
                self.ephemerals.append(entry)
        return 200, {}, text_type, b"ok"


@contextmanager
def serve_slack(fake: FakeSlack | None = None) -> Iterator[FakeSlack]:
    """Serve `fake` (a fresh FakeSlack by default) on 127.0.0.1 for the duration."""
    fake = fake or FakeSlack()
    server = _Server(fake)
    fake._server = server
    server.start()
    try:
        yield fake
    finally:
        server.stop()
        fake._server = None
