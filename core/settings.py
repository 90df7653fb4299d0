"""Settings: the only place that reads the environment (prefix METAOPS_)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Values people paste from examples; refusing them outside dev stops a demo secret reaching prod.
PLACEHOLDER_SECRETS = frozenset(
    {"", "changeme", "change-me", "secret", "password", "placeholder", "token", "xxx", "todo",
     "example", "test", "admin", "default", "replace-me", "your-token-here"}
)


class SlackRoute(BaseModel):
    """Incidents whose labels (and `severity`) equal all of `match` go to `channel`."""

    match: dict[str, str] = Field(min_length=1)
    channel: str = Field(min_length=1, max_length=80)


class LLMProvider(BaseModel):
    """One OpenAI-compatible endpoint: the primary (from METAOPS_LLM_*) or a fallback."""

    name: str = Field(min_length=1, max_length=64)
    base_url: str = Field(min_length=1)
    model: str = Field(min_length=1, max_length=200)
    api_key: SecretStr | None = None


class Settings(BaseSettings):
    """Runtime configuration of one metaops process."""

    model_config = SettingsConfigDict(env_prefix="METAOPS_", extra="ignore")

    env: Literal["dev", "prod", "test"] = "prod"
    data_dir: Path = Path("./var")
    database_url: str | None = None
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    admin_token: SecretStr | None = None
    webhook_token: SecretStr | None = None
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    worker_concurrency: int = Field(default=4, ge=1, le=64)
    worker_poll_seconds: float = Field(default=0.5, gt=0)
    worker_lease_seconds: float = Field(default=300.0, gt=0)
    ingest_batch_max: int = Field(default=256, ge=1)
    ingest_batch_wait_ms: float = Field(default=2.0, ge=0)
    log_level: str = "INFO"
    # GitOps repository of the LLM app's config: a path or URL; default a seeded local repo.
    gitops_repo: str | None = None
    gitops_branch: str = "main"
    policy_file: Path | None = None
    runbooks_dir: Path | None = None  # default: the repository's runbooks/
    redis_url: str | None = None  # the LLM app's cache (cache.flush); off when unset
    # Kubernetes: a kubeconfig path, or "in-cluster"; the kube tools are off when unset.
    kubeconfig: str | None = None
    kube_context: str | None = None
    prometheus_url: str | None = None  # metrics source; the request log stands in when unset
    logs_path: list[str] = Field(default_factory=list)  # JSONL log globs (JSON list in env)
    loki_url: str | None = None  # Loki instead of JSONL files when set
    sweep_seconds: float = Field(default=15.0, gt=0)
    # Investigation window: startsAt - lookback .. min(endsAt, startsAt + max, now).
    investigation_lookback_minutes: float = Field(default=30.0, ge=0, le=24 * 60)
    investigation_max_minutes: float = Field(default=120.0, gt=0, le=7 * 24 * 60)
    # Cost investigator: the spend budget and what makes a user look like a runaway loop.
    cost_budget_usd_per_hour: float | None = Field(default=None, gt=0)
    runaway_min_rpm: float = Field(default=20.0, gt=0)
    runaway_min_minutes: float = Field(default=5.0, gt=0)
    runaway_context_factor: float = Field(default=3.0, gt=1)
    # Test hook: the process dies at this point of an execution (only with METAOPS_ENV=test).
    test_crash_point: Literal["before_tool", "after_tool"] | None = None
    # Slack: off until a bot token and a signing secret (HTTP mode) or an app token (Socket
    # Mode) are given. Incidents go to the first route whose labels all match, else `channel`.
    slack_bot_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_app_token: SecretStr | None = None
    slack_channel: str | None = None
    slack_routes: list[SlackRoute] = Field(default_factory=list)  # JSON list in env
    slack_api_url: str = "https://slack.com/api/"
    slack_socket_mode: bool = False  # set by `metaops slack socket`
    slack_retry_max_seconds: float = Field(default=300.0, gt=0)
    # LLM mode: off (deterministic reasoning) until a base URL and a model are given. Fallbacks
    # are tried in order after the primary, then the deterministic path.
    llm_base_url: str | None = None
    llm_api_key: SecretStr | None = None
    llm_model: str | None = None
    llm_fallbacks: list[LLMProvider] = Field(default_factory=list)  # JSON list in env
    llm_timeout_seconds: float = Field(default=30.0, gt=0, le=600)
    llm_max_retries: int = Field(default=2, ge=0, le=10)  # ours, with backoff, per provider
    llm_backoff_base_seconds: float = Field(default=0.5, ge=0)
    llm_backoff_cap_seconds: float = Field(default=8.0, ge=0)
    llm_prices: dict[str, dict[str, float]] = Field(default_factory=dict)  # USD per 1M tokens
    llm_budget: dict[str, float] = Field(default_factory=dict)  # guardrails.budget.BudgetLimits
    llm_breaker: dict[str, float] = Field(default_factory=dict)  # guardrails.breaker.BreakerConfig
    llm_log_content: bool = False  # prompts and answers (redacted) in the audit trail
    # Tracing: OpenTelemetry spans are no-ops unless an OTLP/HTTP endpoint is set (a base URL such
    # as http://collector:4318, /v1/traces is appended); headers as "k=v,k2=v2" (e.g. auth).
    otel_exporter_otlp_endpoint: str | None = None
    otel_exporter_otlp_headers: SecretStr | None = None
    otel_exporter_otlp_timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    # Client side (CLI): where the server is and which token to present.
    url: str = "http://127.0.0.1:8080"
    token: SecretStr | None = None

    @field_validator("admin_token", "webhook_token", "slack_bot_token", "slack_signing_secret",
                     "slack_app_token", "llm_api_key")
    @classmethod
    def _not_blank(cls, v: SecretStr | None) -> SecretStr | None:
        if v is not None and not v.get_secret_value().strip():
            return None
        return v

    @model_validator(mode="after")
    def _refuse_placeholders(self) -> Settings:
        if self.env == "dev":
            return self
        for name in ("admin_token", "webhook_token"):
            value: SecretStr | None = getattr(self, name)
            if value is None:
                continue
            raw = value.get_secret_value().strip()
            if raw.lower() in PLACEHOLDER_SECRETS or len(raw) < 16:
                raise ValueError(
                    f"METAOPS_{name.upper()} looks like a placeholder (too short or a default "
                    "word); set a real secret of 16+ characters or METAOPS_ENV=dev"
                )
        return self

    @property
    def llm_providers(self) -> list[LLMProvider]:
        """The primary (when configured) then the fallbacks, in the order they are tried."""
        primary = ([LLMProvider(name="primary", base_url=self.llm_base_url, model=self.llm_model,
                                api_key=self.llm_api_key)]
                   if self.llm_base_url and self.llm_model else [])
        return primary + list(self.llm_fallbacks)

    @property
    def slack_enabled(self) -> bool:
        """A bot token plus a way in: a signing secret (HTTP) or an app token (Socket Mode)."""
        inbound = self.slack_app_token if self.slack_socket_mode else self.slack_signing_secret
        return self.slack_bot_token is not None and inbound is not None

    @property
    def resolved_database_url(self) -> str:
        """The async SQLAlchemy URL: METAOPS_DATABASE_URL or SQLite under the data dir."""
        if self.database_url:
            return normalize_async_url(self.database_url)
        return f"sqlite+aiosqlite:///{(self.data_dir / 'metaops.db').resolve()}"


def normalize_async_url(url: str) -> str:
    """Map plain driver URLs onto the async drivers we ship (aiosqlite, psycopg)."""
    if url.startswith("sqlite:///"):
        return "sqlite+aiosqlite:///" + url.removeprefix("sqlite:///")
    for prefix in ("postgresql://", "postgres://", "postgresql+asyncpg://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url.removeprefix(prefix)
    return url


def sync_url(async_url: str) -> str:
    """The sync-driver twin of an async URL (Alembic and the CLI's verify run sync)."""
    return async_url.replace("sqlite+aiosqlite://", "sqlite://", 1)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Process-wide settings, read once."""
    return Settings()
