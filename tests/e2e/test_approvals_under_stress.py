"""Approvals across replicas and crashes: one execution per action, whatever happens."""

from __future__ import annotations

import copy
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import ADMIN_TOKEN, SCENARIOS, WEBHOOK_TOKEN, ServerProcess, load_json

pytestmark = pytest.mark.slow
ALERTS = SCENARIOS / "hallucination-storm" / "alerts.json"


def _alert(i: int) -> dict[str, Any]:
    body = copy.deepcopy(load_json(ALERTS))
    body["groupKey"] = f'{{}}:{{alertname="HallucinationRateHigh", n="{i}"}}'
    body["alerts"][0]["fingerprint"] = f"{i:016x}"
    return body


def _git_count(data_dir: Path, *args: str) -> int:
    out = subprocess.run(["git", "-C", str(data_dir / "gitops"), "rev-list", "--count",
                          "HEAD", *args], check=True, capture_output=True, text=True)
    return int(out.stdout)


def _wait(predicate: Any, what: str, servers: list[ServerProcess], within: float = 40.0) -> Any:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    logs = "\n".join(s.logs()[-3000:] for s in servers)
    raise AssertionError(f"timed out waiting for {what}\n{logs}")


def _actions(server: ServerProcess, **params: str) -> list[dict[str, Any]]:
    with server.client(ADMIN_TOKEN) as c:
        return list(c.get("/api/v1/actions", params={"limit": 500, **params}).json()["actions"])


def test_two_replicas_fifty_concurrent_approvals_one_commit(server_factory: Any,
                                                            tmp_path: Path) -> None:
    shared = {"METAOPS_DATA_DIR": str(tmp_path / "shared-data")}
    a: ServerProcess = server_factory(**shared)
    a.start()
    b: ServerProcess = server_factory(**shared)
    b.start()
    with a.client(WEBHOOK_TOKEN) as hook:
        assert hook.post("/webhooks/alertmanager", json=_alert(1)).status_code == 202
    pending = _wait(lambda: [x for x in _actions(a, status="pending_approval")
                             if x["tool"] == "gitops.set_flag"], "a pending flag change", [a, b])
    action_id = pending[0]["id"]
    before = _git_count(tmp_path / "shared-data")
    with a.client(ADMIN_TOKEN) as c:
        tokens = {}
        for i in range(50):  # fifty distinct approvers, half of them on each replica
            created = c.post("/api/v1/tokens", json={"name": f"ap{i}", "role": "approver"})
            tokens[i] = created.json()["token"]

    def click(i: int) -> int:
        target = a if i % 2 else b
        with httpx.Client(base_url=target.url, timeout=30,
                          headers={"Authorization": f"Bearer {tokens[i]}"}) as c:
            return c.post(f"/api/v1/actions/{action_id}/approve").status_code

    with ThreadPoolExecutor(16) as pool:
        codes = list(pool.map(click, range(50)))
    assert set(codes) <= {200, 409}, codes
    assert codes.count(200) >= 1
    done = _wait(lambda: [x for x in _actions(a) if x["id"] == action_id
                          and x["status"] == "succeeded"], "the flag change to run", [a, b])
    assert done
    assert _git_count(tmp_path / "shared-data") == before + 1
    with a.client(ADMIN_TOKEN) as c:
        events = c.get("/api/v1/audit", params={"type": "action.succeeded", "limit": 100}).json()
        assert [e["action_id"] for e in events["events"]].count(action_id) == 1
        assert c.get("/api/v1/audit/verify").json()["ok"] is True


def test_sigkill_keeps_pending_actions_and_never_runs_an_action_twice(
        server_factory: Any, tmp_path: Path) -> None:
    data = {"METAOPS_DATA_DIR": str(tmp_path / "data")}
    first: ServerProcess = server_factory(**data)
    first.start()
    with first.client(WEBHOOK_TOKEN) as hook:
        for i in range(5):  # 5 incidents x 2 proposals
            assert hook.post("/webhooks/alertmanager", json=_alert(i)).status_code == 202
    _wait(lambda: len(_actions(first, status="pending_approval")) == 10, "10 pending", [first])
    first.kill()

    # Restart with a hook that kills the process right after the tool did its work.
    second: ServerProcess = server_factory(METAOPS_TEST_CRASH_POINT="after_tool", **data)
    second.start()
    pending = _actions(second, status="pending_approval")
    assert len(pending) == 10  # nothing lost, nothing expired, all approvable
    victim = next(x for x in pending if x["tool"] == "gitops.set_flag")
    before = _git_count(tmp_path / "data")
    with second.client(ADMIN_TOKEN) as c:
        assert c.post(f"/api/v1/actions/{victim['id']}/approve").status_code == 200
    assert second.proc is not None
    second.proc.wait(30)  # the hook killed it inside the execution
    assert _git_count(tmp_path / "data") == before + 1

    third: ServerProcess = server_factory(**data)
    third.start()
    settled = _wait(lambda: [x for x in _actions(third) if x["id"] == victim["id"]
                             and x["status"] == "succeeded"], "reconciliation", [third])
    assert settled[0]["result"]["reconciled"] is True
    time.sleep(1.0)  # give a wrong re-execution the chance to happen
    assert _git_count(tmp_path / "data") == before + 1
    others = _actions(third, status="pending_approval")
    assert len(others) == 9
    with third.client(ADMIN_TOKEN) as c:
        assert c.post(f"/api/v1/actions/{others[0]['id']}/approve").status_code == 200
    _wait(lambda: [x for x in _actions(third) if x["id"] == others[0]["id"]
                   and x["status"] == "succeeded"], "a later approval to run", [third])
    assert _git_count(tmp_path / "data") == before + 2


def test_crash_before_the_tool_is_not_rerun(server_factory: Any, tmp_path: Path) -> None:
    data = {"METAOPS_DATA_DIR": str(tmp_path / "data")}
    first: ServerProcess = server_factory(METAOPS_TEST_CRASH_POINT="before_tool", **data)
    first.start()
    with first.client(WEBHOOK_TOKEN) as hook:
        assert hook.post("/webhooks/alertmanager", json=_alert(7)).status_code == 202
    action = _wait(lambda: [x for x in _actions(first, status="pending_approval")
                            if x["tool"] == "gitops.set_flag"], "a pending action", [first])[0]
    before = _git_count(tmp_path / "data")
    with first.client(ADMIN_TOKEN) as c:
        assert c.post(f"/api/v1/actions/{action['id']}/approve").status_code == 200
    assert first.proc is not None
    first.proc.wait(30)
    second: ServerProcess = server_factory(**data)
    second.start()
    failed = _wait(lambda: [x for x in _actions(second) if x["id"] == action["id"]
                            and x["status"] == "failed"], "reconciliation", [second])
    assert "not re-run" in failed[0]["error"]
    assert _git_count(tmp_path / "data") == before
