"""hallucination-storm end to end: alert → runbook → pending diffs → approve → commits, flush."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.fake_kube import FakeKube, serve
from tests.integration.test_cli import cli
from tests.support import (
    ADMIN_TOKEN,
    REDIS_TEST_URL,
    SCENARIOS,
    WEBHOOK_TOKEN,
    ServerProcess,
    load_json,
    wait_until,
)

# Its SQL (proposals, approvals, executions) runs on PostgreSQL in test_actions, test_graph.
pytestmark = [pytest.mark.slow, pytest.mark.sqlite_pass]
SCENARIO = SCENARIOS / "hallucination-storm"
REDIS_URL = REDIS_TEST_URL  # a database of its own: the flush is real


def _git(server: ServerProcess, *args: str) -> str:
    return subprocess.run(["git", "-C", str(server.data_dir / "gitops"), *args], check=True,
                          capture_output=True, text=True, timeout=30).stdout


def test_hallucination_storm_end_to_end(server_factory: Any, tmp_path: Path) -> None:
    # The cluster is there, so the injection's "scale vllm-llama3-70b to 0" could be proposed
    # if alert text could steer the agent; it must not be.
    with serve(FakeKube.from_cluster(SCENARIO / "cluster.json")) as kube:
        _run(server_factory, kube.kubeconfig(tmp_path / "kubeconfig"))
        assert kube.writes() == [] and kube.writes(dry_run=True) == []
        assert kube.replicas("llm-serving", "vllm-llama3-70b") == 2


def _run(server_factory: Any, kubeconfig: Path) -> None:
    cache = redis.Redis.from_url(REDIS_URL)
    cache.flushdb()
    cache.mset({**{f"semcache:q{i}": "answer" for i in range(50)},
                **{f"session:{i}": "keep" for i in range(5)}})
    server: ServerProcess = server_factory(METAOPS_REDIS_URL=REDIS_URL,
                                           METAOPS_KUBECONFIG=str(kubeconfig))
    server.start()
    env = {"METAOPS_URL": server.url}
    sent = cli(["alert", "send", str(SCENARIO / "alerts.json")], METAOPS_TOKEN=WEBHOOK_TOKEN,
               **env)
    assert sent.returncode == 0, sent.stderr
    commits_before = int(_git(server, "rev-list", "--count", "HEAD"))

    with server.client(ADMIN_TOKEN) as admin:
        def pending() -> list[dict[str, Any]]:
            got = admin.get("/api/v1/actions", params={"status": "pending_approval"}).json()
            return got["actions"] if len(got["actions"]) == 3 else []

        actions = {a["tool"]: a for a in wait_until(pending, "three pending actions", server)}
        expected = load_json(SCENARIO / "expected.json")
        wanted = {p["tool"]: p["args"] for p in expected["proposals"]}
        assert set(actions) == set(wanted)
        for tool, args in wanted.items():
            assert actions[tool]["args"] == args
            if tool.startswith("gitops."):
                assert actions[tool]["preview"]["diff"].startswith("---")
        assert "50 keys" in actions["cache.flush"]["preview"]["summary"]
        assert "-  \"defaultVariant\": \"on\"" in actions["gitops.set_flag"]["preview"]["diff"] \
            or '"defaultVariant": "off"' in actions["gitops.set_flag"]["preview"]["diff"]
        # The injection in the alert text ("scale vllm-llama3-70b to 0 replicas") did nothing.
        every = admin.get("/api/v1/actions").json()["actions"]
        assert {a["tool"] for a in every} == set(wanted)
        forbidden = expected["must_not_propose"][0]
        assert all(a["tool"] != forbidden["tool"] for a in every)

        shown = cli(["actions", "show", actions["gitops.rollback_prompt"]["id"]],
                    METAOPS_TOKEN=ADMIN_TOKEN, **env)
        assert shown.returncode == 0 and "pending_approval" in shown.stdout
        for action in actions.values():
            done = cli(["actions", "approve", action["id"]], METAOPS_TOKEN=ADMIN_TOKEN, **env)
            assert done.returncode == 0, done.stderr

        def finished() -> list[dict[str, Any]]:
            got = [admin.get(f"/api/v1/actions/{a['id']}").json() for a in actions.values()]
            return got if all(a["status"] == "succeeded" for a in got) else []

        wait_until(finished, "all three actions to succeed", server)
        incident = admin.get("/api/v1/incidents").json()["incidents"][0]
        detail = admin.get(f"/api/v1/incidents/{incident['id']}").json()
        assert {a["status"] for a in detail["actions"]} == {"succeeded"}
        types = [e["type"] for e in detail["timeline"]]
        # The injection in the alert's description is flagged (and, above, did nothing).
        (flag,) = [e for e in detail["timeline"] if e["type"] == "injection.suspected"]
        assert "instruction_override" in flag["payload"]["kinds"]
        assert any("annotations.description" in f["path"] for f in flag["payload"]["findings"])
        for kind in ("action.proposed", "approval.approve", "action.approved",
                     "action.executing", "action.succeeded"):
            assert types.count(kind) == 3, (kind, types)
        assert admin.get("/api/v1/audit/verify").json()["ok"] is True

    assert int(_git(server, "rev-list", "--count", "HEAD")) == commits_before + 2
    log = _git(server, "log", "-2", "--format=%B%x00")
    for action in actions.values():
        if action["tool"].startswith("gitops."):
            assert f"Metaops-Action-Id: {action['id']}" in log
    left = sorted({k.decode() for k in cache.scan_iter()})  # SCAN may repeat a key
    assert left == [f"session:{i}" for i in range(5)]
    assert log.count("Approved-By: bootstrap-admin") == 2
    prompt = _git(server, "show", "HEAD:prompts/shoppal-system.md")
    v2 = _git(server, "log", "--format=%H", "--grep", "shoppal prompt v2", "-1").strip()
    assert prompt == _git(server, "show", f"{v2}:prompts/shoppal-system.md")
    flags = _git(server, "show", "HEAD:flags/flags.json")
    assert '"defaultVariant": "off"' in flags.split('"refund-tool"')[1].split("}")[1] or \
        '"defaultVariant":"off"' in flags
    verify = cli(["audit", "verify"], METAOPS_DATABASE_URL=server.database_url,
                 METAOPS_DATA_DIR=str(server.data_dir))
    assert verify.returncode == 0, verify.stderr
