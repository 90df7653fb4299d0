"""Settings: environment prefix, defaults, secrets, placeholder refusal outside dev."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from core.settings import Settings, normalize_async_url


def test_defaults_and_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("METAOPS_DATA_DIR", "METAOPS_DATABASE_URL", "METAOPS_PORT", "METAOPS_HOST"):
        monkeypatch.delenv(key, raising=False)
    s = Settings()
    assert (s.host, s.port, s.data_dir) == ("127.0.0.1", 8080, Path("./var"))
    assert s.resolved_database_url.startswith("sqlite+aiosqlite:///")
    assert s.resolved_database_url.endswith("/var/metaops.db")
    monkeypatch.setenv("METAOPS_DATABASE_URL", "postgresql://u@h/db")
    monkeypatch.setenv("METAOPS_PORT", "9000")
    s = Settings()
    assert s.resolved_database_url == "postgresql+psycopg://u@h/db"
    assert s.port == 9000


def test_secrets_are_secretstr_and_hidden_in_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("METAOPS_ADMIN_TOKEN", "a-real-long-admin-token-value")
    s = Settings()
    assert s.admin_token is not None
    assert s.admin_token.get_secret_value() == "a-real-long-admin-token-value"
    assert "a-real-long-admin-token-value" not in repr(s)


@pytest.mark.parametrize("value", ["changeme", "secret", "short", "PASSWORD"])
def test_placeholder_secrets_refused_unless_dev(monkeypatch: pytest.MonkeyPatch,
                                                value: str) -> None:
    monkeypatch.setenv("METAOPS_WEBHOOK_TOKEN", value)
    monkeypatch.setenv("METAOPS_ENV", "prod")
    with pytest.raises(ValidationError, match="METAOPS_WEBHOOK_TOKEN looks like a placeholder"):
        Settings()
    monkeypatch.setenv("METAOPS_ENV", "dev")
    assert Settings().webhook_token is not None


def test_invalid_port_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("METAOPS_PORT", "70000")
    with pytest.raises(ValidationError):
        Settings()


def test_url_normalisation() -> None:
    assert normalize_async_url("sqlite:////tmp/x.db") == "sqlite+aiosqlite:////tmp/x.db"
    assert normalize_async_url("postgres://a@b/c") == "postgresql+psycopg://a@b/c"
    assert normalize_async_url("postgresql+psycopg://a@b/c") == "postgresql+psycopg://a@b/c"
