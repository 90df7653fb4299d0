"""kv-cache-saturation and cost-spike end to end against a wire-level Kubernetes API server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fake_kube import FakeKube, serve
from tests.integration.test_cli import cli
from tests.support import (
    ADMIN_TOKEN,
    SCENARIOS,
    WEBHOOK_TOKEN,
    ServerProcess,
    load_json,
    wait_until,
)

# Their SQL (proposals, approvals, claims) runs on PostgreSQL in test_actions and test_rollbacks.
pytestmark = [pytest.mark.slow, pytest.mark.sqlite_pass]
KV = SCENARIOS / "kv-cache-saturation"
COST = SCENARIOS / "cost-spike"


@pytest.fixture
def cluster(request: pytest.FixtureRequest) -> Iterator[FakeKube]:
    with serve(FakeKube.from_cluster(request.param / "cluster.json")) as fake:
        yield fake


def _start(server_factory: Any, scenario: Path, fake: FakeKube, tmp_path: Path,
           **env: str) -> ServerProcess:
    kubeconfig = fake.kubeconfig(tmp_path / "kubeconfig")
    server: ServerProcess = server_factory(
        METAOPS_KUBECONFIG=str(kubeconfig),
        METAOPS_LOGS_PATH=json.dumps([str(scenario / "logs.jsonl")]), **env)
    server.start()
    sent = cli(["alert", "send", str(scenario / "alerts.json")], METAOPS_TOKEN=WEBHOOK_TOKEN,
               METAOPS_URL=server.url)
    assert sent.returncode == 0, sent.stderr
    return server


def _pending(server: ServerProcess, n: int) -> dict[str, dict[str, Any]]:
    with server.client(ADMIN_TOKEN) as admin:
        def ready() -> list[dict[str, Any]]:
            got = admin.get("/api/v1/actions", params={"status": "pending_approval"}).json()
            return got["actions"] if len(got["actions"]) >= n else []

        return {a["tool"]: a for a in wait_until(ready, f"{n} pending actions", server)}


def _status(server: ServerProcess, action_id: str, want: str) -> dict[str, Any]:
    with server.client(ADMIN_TOKEN) as admin:
        def done() -> dict[str, Any] | None:
            got: dict[str, Any] = admin.get(f"/api/v1/actions/{action_id}").json()
            return got if got["status"] == want else None

        result: dict[str, Any] = wait_until(done, f"{action_id} {want}", server)
        return result


@pytest.mark.parametrize("cluster", [KV], indirect=True)
def test_kv_cache_scale_out_runs_once(server_factory: Any, cluster: FakeKube,
                                      tmp_path: Path) -> None:
    expected = load_json(KV / "expected.json")
    server = _start(server_factory, KV, cluster, tmp_path)
    actions = _pending(server, 1)
    assert set(actions) == {p["tool"] for p in expected["proposals"]}
    (want,) = expected["proposals"]
    scale = actions["kube.scale_deployment"]
    assert scale["args"] == want["args"]
    for text in want["preview_contains"]:
        assert text in scale["preview"]["summary"], scale["preview"]
    assert scale["preview"]["diff"].startswith("---")
    assert cluster.replicas("llm-serving", "vllm-llama3-70b") == 2  # only a dry run so far
    assert cluster.writes(dry_run=True) and not cluster.writes()
    with server.client(ADMIN_TOKEN) as admin:
        detail = admin.get(f"/api/v1/incidents/{scale['incident_id']}").json()
        (finding,) = detail["findings"]
        top = finding["data"]["patterns"][0]
        (pattern,) = expected["top_patterns"]
        assert pattern["contains"] in top["template"]
        assert (top["count"], top["share"]) == (pattern["count"], pattern["share"])
        assert admin.post(f"/api/v1/actions/{scale['id']}/approve").status_code == 200
    done = _status(server, scale["id"], "succeeded")
    assert cluster.replicas("llm-serving", "vllm-llama3-70b") == 4
    (write,) = cluster.writes()
    assert scale["id"] in write.user_agent
    assert done["result"] and done["error"] is None
    # Approving again changes nothing: still one write, still 4 replicas.
    with server.client(ADMIN_TOKEN) as admin:
        admin.post(f"/api/v1/actions/{scale['id']}/approve")
    assert len(cluster.writes()) == 1 and cluster.replicas("llm-serving", "vllm-llama3-70b") == 4


@pytest.mark.parametrize("cluster", [KV], indirect=True)
def test_kv_cache_scale_is_stale_after_a_concurrent_change(server_factory: Any,
                                                           cluster: FakeKube,
                                                           tmp_path: Path) -> None:
    server = _start(server_factory, KV, cluster, tmp_path)
    scale = _pending(server, 1)["kube.scale_deployment"]
    cluster.bump("llm-serving", "vllm-llama3-70b")  # someone edits the deployment meanwhile
    with server.client(ADMIN_TOKEN) as admin:
        assert admin.post(f"/api/v1/actions/{scale['id']}/approve").status_code == 200
    _status(server, scale["id"], "stale")
    assert cluster.replicas("llm-serving", "vllm-llama3-70b") == 2
    assert cluster.writes() == []


@pytest.mark.parametrize("cluster", [COST], indirect=True)
def test_cost_spike_deletes_the_agent_jobs_after_two_approvals(server_factory: Any,
                                                               cluster: FakeKube,
                                                               tmp_path: Path) -> None:
    expected = load_json(COST / "expected.json")
    server = _start(server_factory, COST, cluster, tmp_path,
                    METAOPS_COST_BUDGET_USD_PER_HOUR="20")
    actions = _pending(server, 3)
    assert set(actions) == {p["tool"] for p in expected["proposals"]}
    for proposal in expected["proposals"]:
        assert actions[proposal["tool"]]["args"] == proposal["args"]
    delete = actions["kube.delete_jobs"]
    assert "7 jobs" in delete["preview"]["summary"]
    tokens = []
    with server.client(ADMIN_TOKEN) as admin:
        for name in ("alice", "bob"):
            made = admin.post("/api/v1/tokens", json={"name": name, "role": "approver"})
            assert made.status_code in (200, 201), made.text
            tokens.append(made.json()["token"])
    with server.client(tokens[0]) as alice:
        assert alice.post(f"/api/v1/actions/{delete['id']}/approve").status_code == 200
        # One person twice still counts once: nothing is deleted yet.
        assert alice.post(f"/api/v1/actions/{delete['id']}/approve").status_code == 200
    with server.client(ADMIN_TOKEN) as admin:
        assert admin.get(f"/api/v1/actions/{delete['id']}").json()["status"] == \
            "pending_approval"
    assert len(cluster.jobs_in("shop")) == 7
    with server.client(tokens[1]) as bob:
        assert bob.post(f"/api/v1/actions/{delete['id']}/approve").status_code == 200
    done = _status(server, delete["id"], "succeeded")
    assert cluster.jobs_in("shop") == []
    deletes = [w for w in cluster.writes() if w.method == "DELETE"]
    assert len(deletes) == 7 and all(delete["id"] in w.user_agent for w in deletes)
    assert done["result"] and done["error"] is None
