"""Kube and GitOps changes through the runbook path: rollbacks restore, policy limits refuse."""

from __future__ import annotations

from pathlib import Path

from langgraph.checkpoint.memory import InMemorySaver
from sqlalchemy import select

from agents.investigation import InvestigationRunner
from agents.reasoner import RuleReasoner
from agents.runbooks.loader import load_runbooks
from agents.specialists.verification import verify_action
from agents.supervisor import GraphDeps, build_graph
from core.database import Database
from core.models import Action, AuditEvent
from guardrails.actions import decide_and_commit
from guardrails.executor import Executor
from guardrails.policy import Policy
from guardrails.tokens import Principal
from tests.fake_kube import FakeKube, serve
from tests.integration.test_supervisor import _incident_with_alert
from tests.support import SCENARIOS
from tools.gitops import gitops_tools
from tools.gitops.bootstrap import open_gitops_repo
from tools.kube import KubeClient, kube_tools
from tools.registry import ToolRegistry

# No Prometheus is configured: the check cannot be read, which counts as failed.
RUNBOOK = """
name: change-and-check
description: two changes whose check fails
match: {alertname: ChangeAndCheck}
steps:
  - id: prompt
    tool: gitops.rollback_prompt
    args: {path: prompts/shoppal-system.md, to_content_of: "shoppal prompt v1"}
    verify: {promql: "up", op: ">", threshold: 0}
    on_fail: rollback
  - id: scale
    tool: kube.scale_deployment
    args: {namespace: llm-serving, name: vllm-llama3-70b, replicas: 4}
    verify: {promql: "up", op: ">", threshold: 0}
    on_fail: rollback
"""
ALICE = Principal("alice", "approver")


async def _run(executor: Executor, db: Database, action_id: str) -> str:
    result = await decide_and_commit(db, action_id, ALICE, "approve", "api")
    assert result.changed
    return await executor.execute(action_id)


async def test_rollback_restores_prompt_text_and_replicas(db: Database, tmp_path: Path) -> None:
    books = tmp_path / "runbooks"
    books.mkdir()
    (books / "change-and-check.yaml").write_text(RUNBOOK)
    repo = open_gitops_repo(tmp_path / "data")
    before_prompt = repo.read_many([(repo.head(), "prompts/shoppal-system.md")])[0]
    with serve(FakeKube.from_cluster(SCENARIOS / "kv-cache-saturation" / "cluster.json")) as kube:
        client = KubeClient.from_kubeconfig(kube.kubeconfig(tmp_path / "kubeconfig"))
        registry = ToolRegistry([*gitops_tools(repo), *kube_tools(client)])
        runbooks = load_runbooks(books)
        executor = Executor(db, registry)
        deps = GraphDeps(db, registry, Policy.load(), RuleReasoner(runbooks), executor)
        incident = await _incident_with_alert(db, "ChangeAndCheck")
        await InvestigationRunner(db, build_graph(deps, InMemorySaver())).run(incident.id)
        ids = [f"incident-{incident.id}:change-and-check:{s}" for s in ("prompt", "scale")]
        for action_id in ids:
            assert await _run(executor, db, action_id) == "succeeded"
        assert kube.replicas("llm-serving", "vllm-llama3-70b") == 4
        assert repo.read_many([(repo.head(), "prompts/shoppal-system.md")])[0] != before_prompt

        for action_id in ids:
            assert await verify_action(deps, runbooks, action_id) == "failed"
            # A second firing of the same job does nothing more.
            assert await verify_action(deps, runbooks, action_id) is None
        async with db.read() as s:
            rollbacks = {a.id: a for a in await s.scalars(
                select(Action).where(Action.id.like("%:rollback")))}
            failed = list(await s.scalars(select(AuditEvent).where(
                AuditEvent.type == "verify.failed")))
        assert set(rollbacks) == {f"{i}:rollback" for i in ids}
        assert all(a.status == "pending_approval" for a in rollbacks.values())
        assert rollbacks[f"{ids[1]}:rollback"].args == {
            "namespace": "llm-serving", "name": "vllm-llama3-70b", "replicas": 2}
        assert len(failed) == 2 and "metrics.query is not available" in \
            failed[0].payload["reason"]

        for rollback_id in rollbacks:
            assert await _run(executor, db, rollback_id) == "succeeded"
        assert kube.replicas("llm-serving", "vllm-llama3-70b") == 2
        assert repo.read_many([(repo.head(), "prompts/shoppal-system.md")])[0] == before_prompt
        client.close()


LIMITS_POLICY = """
version: 1
defaults:
  write: {decision: require_approval, required_approvals: 1}
limits: {allowed_namespaces: [llm-serving], max_replicas: 10, max_total_gpus: 64}
"""
SCALES = """
name: too-big
description: scales the policy must refuse
match: {alertname: TooBig}
steps:
  - {id: past_max, tool: kube.scale_deployment,
     args: {namespace: llm-serving, name: vllm-llama3-70b, replicas: 12}}
  - {id: past_gpus, tool: kube.scale_deployment,
     args: {namespace: llm-serving, name: vllm-llama3-70b, replicas: 9}}
  - {id: to_zero, tool: kube.scale_deployment,
     args: {namespace: llm-serving, name: vllm-llama3-70b, replicas: 0}}
  - {id: fine, tool: kube.scale_deployment,
     args: {namespace: llm-serving, name: vllm-llama3-70b, replicas: 8}}
"""


async def test_policy_refuses_scales_past_its_limits(db: Database, tmp_path: Path) -> None:
    books = tmp_path / "runbooks"
    books.mkdir()
    (books / "too-big.yaml").write_text(SCALES)
    (tmp_path / "policy.yaml").write_text(LIMITS_POLICY)
    with serve(FakeKube.from_cluster(SCENARIOS / "kv-cache-saturation" / "cluster.json")) as kube:
        client = KubeClient.from_kubeconfig(kube.kubeconfig(tmp_path / "kubeconfig"))
        registry = ToolRegistry(kube_tools(client))
        deps = GraphDeps(db, registry, Policy.load(tmp_path / "policy.yaml"),
                         RuleReasoner(load_runbooks(books)), Executor(db, registry))
        incident = await _incident_with_alert(db, "TooBig")
        await InvestigationRunner(db, build_graph(deps, InMemorySaver())).run(incident.id)
        async with db.read() as s:
            got = {a.id.rsplit(":", 1)[1]: a for a in await s.scalars(select(Action))}
        client.close()
    assert {k: a.status for k, a in got.items()} == {
        "past_max": "rejected", "past_gpus": "rejected", "to_zero": "rejected",
        "fine": "pending_approval"}
    assert got["past_max"].error == ("limit max_replicas: replicas 12 exceeds the maximum of 10")
    # GPUs per pod come from the cluster (8), not from the proposal.
    assert got["past_gpus"].error is not None and "9 replicas × 8 GPUs = 72 GPUs" in \
        got["past_gpus"].error
    assert got["to_zero"].error == "limit allow_scale_to_zero: scaling to 0 replicas is not allowed"
    assert kube.replicas("llm-serving", "vllm-llama3-70b") == 2
