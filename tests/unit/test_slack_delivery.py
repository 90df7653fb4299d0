"""Slack delivery rules that need no server: channel routing, retry backoff, trusted hooks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from api.slack.routing import channel_for
from api.slack.sender import Sender, backoff
from core.settings import Settings


def _settings(tmp_path: Path, **values: object) -> Settings:
    return Settings(data_dir=tmp_path, env="dev", **values)  # type: ignore[arg-type]


def test_routes_match_all_their_labels_first_match_wins(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    routes = [{"match": {"team": "payments", "severity": "critical"}, "channel": "C0PAYCRIT"},
              {"match": {"team": "payments"}, "channel": "C0PAY"},
              {"match": {"severity": "critical"}, "channel": "C0CRIT"}]
    monkeypatch.setenv("METAOPS_SLACK_ROUTES", json.dumps(routes))
    monkeypatch.setenv("METAOPS_SLACK_CHANNEL", "C0DEFAULT")
    settings = Settings(data_dir=tmp_path, env="dev")
    assert channel_for(settings, "critical", {"team": "payments"}) == "C0PAYCRIT"
    assert channel_for(settings, "warning", {"team": "payments"}) == "C0PAY"
    assert channel_for(settings, "critical", {"team": "search"}) == "C0CRIT"
    assert channel_for(settings, "warning", {"team": "search"}) == "C0DEFAULT"
    # A label named severity does not override the incident's own severity.
    assert channel_for(settings, "warning", {"severity": "critical"}) == "C0DEFAULT"
    monkeypatch.delenv("METAOPS_SLACK_ROUTES")
    monkeypatch.delenv("METAOPS_SLACK_CHANNEL")
    assert channel_for(_settings(tmp_path), "critical", {}) is None


def test_a_route_needs_a_match_and_a_channel(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("METAOPS_SLACK_ROUTES", json.dumps([{"match": {}, "channel": "C1"}]))
    with pytest.raises(ValidationError, match="slack_routes"):
        Settings(data_dir=tmp_path, env="dev")


def test_slack_is_on_only_with_a_bot_token_and_a_way_in(tmp_path: Path) -> None:
    assert not _settings(tmp_path).slack_enabled
    assert not _settings(tmp_path, slack_bot_token="xoxb-1").slack_enabled
    assert _settings(tmp_path, slack_bot_token="xoxb-1",
                     slack_signing_secret="s3cr3t").slack_enabled
    socket = _settings(tmp_path, slack_bot_token="xoxb-1", slack_socket_mode=True,
                       slack_signing_secret="s3cr3t")
    assert not socket.slack_enabled  # Socket Mode needs the app token
    assert _settings(tmp_path, slack_bot_token="xoxb-1", slack_socket_mode=True,
                     slack_app_token="xapp-1").slack_enabled


def test_backoff_doubles_up_to_the_cap() -> None:
    assert [backoff(n, 30) for n in (1, 2, 3, 4, 5, 6)] == [2, 4, 8, 16, 30, 30]
    assert backoff(10_000, 300) == 300


def test_response_urls_must_point_at_slack(tmp_path: Path) -> None:
    sender = Sender.__new__(Sender)
    sender.settings = _settings(tmp_path, slack_api_url="http://127.0.0.1:8123/api/")
    assert sender._trusted_hook("https://hooks.slack.com/actions/T1/2/abc")
    assert sender._trusted_hook("http://127.0.0.1:8123/hooks/commands/T1/1")
    for url in ("http://hooks.slack.com/actions/T1/2/abc",  # not https
                "https://hooks.slack.com.evil.example/x", "http://127.0.0.1:9999/hooks/x",
                "http://169.254.169.254/latest/meta-data", "", "hooks.slack.com/x"):
        assert not sender._trusted_hook(url), url
