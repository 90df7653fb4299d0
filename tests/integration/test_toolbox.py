"""The registry follows the settings: families appear only when their source is configured."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from agents.toolbox import build_registry
from core.settings import Settings
from tests.support import SCENARIOS
from tools.base import ReadTool


def test_embedded_default_has_gitops_and_no_log_metrics_or_cache(tmp_path: Path) -> None:
    names = build_registry(Settings(env="test", data_dir=tmp_path)).names()
    assert all(n.startswith("gitops.") for n in names) and len(names) == 10
    assert "gitops.publish_postmortem" in names  # no kube.*: no kubeconfig is configured


def test_configured_logs_bring_log_tools_and_embedded_metrics(tmp_path: Path) -> None:
    settings = Settings(env="test", data_dir=tmp_path, redis_url="redis://127.0.0.1:6379/0",
                        logs_path=[str(SCENARIOS / "provider-outage" / "logs.jsonl")])
    registry = build_registry(settings)
    for name in ("logs.search", "logs.count_by", "metrics.golden_signals", "cache.flush"):
        assert name in registry.names()
    assert "metrics.query" not in registry.names()  # no Prometheus configured
    tool = registry.get("metrics.golden_signals")
    assert isinstance(tool, ReadTool)
    args = tool.spec.args.model_validate({
        "service": "chat-api", "start": datetime(2026, 11, 27, 9, 30, tzinfo=UTC),
        "end": datetime(2026, 11, 27, 10, 0, tzinfo=UTC)})
    result = tool.run(args)
    assert result.status == "ok"
    burn = result.data["signals"]["burn_rate_usd_per_h"]["value"]
    assert burn is not None and burn > 0
