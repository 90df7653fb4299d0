"""Kubernetes tools through the real client and a kubeconfig, against a wire-level fake API."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fake_kube import FakeKube, Forbid, serve
from tests.support import SCENARIOS, WIRE, free_port, load_json
from tools.base import Effect, ReadTool, WriteTool
from tools.kube import (
    KUBE_NOT_CONFIGURED,
    DeleteJobsArgs,
    DeploymentArgs,
    GetDeployment,
    GetEventsArgs,
    KubeApiError,
    KubeClient,
    KubeError,
    KubeRefused,
    ListPodsArgs,
    ScaleDeploymentArgs,
    kube_tools,
)

NS, NAME = "llm-serving", "vllm-llama3-70b"
TARGET = DeploymentArgs(namespace=NS, name=NAME)
SCALE = ScaleDeploymentArgs(namespace=NS, name=NAME, replicas=4)
JOBS = DeleteJobsArgs(namespace="shop", label_selector="app=shop-agent")
ACTION = "incident-7:kv-cache-saturation:scale-up"


class Cluster:
    def __init__(self, fake: FakeKube, kubeconfig: Path) -> None:
        self.fake = fake
        self.kubeconfig = kubeconfig
        self.client = KubeClient.from_kubeconfig(kubeconfig)
        self.tools = {tool.spec.name: tool for tool in kube_tools(self.client)}

    def read(self, name: str) -> ReadTool:
        tool = self.tools[name]
        assert isinstance(tool, ReadTool)
        return tool

    def write(self, name: str) -> WriteTool:
        tool = self.tools[name]
        assert isinstance(tool, WriteTool)
        return tool


def _cluster(scenario: str, tmp_path: Path) -> Iterator[Cluster]:
    with serve(FakeKube.from_cluster(SCENARIOS / scenario / "cluster.json")) as fake:
        cluster = Cluster(fake, fake.kubeconfig(tmp_path / "kubeconfig"))
        yield cluster
        cluster.client.close()


@pytest.fixture
def kv(tmp_path: Path) -> Iterator[Cluster]:
    yield from _cluster("kv-cache-saturation", tmp_path)


@pytest.fixture
def cost(tmp_path: Path) -> Iterator[Cluster]:
    yield from _cluster("cost-spike", tmp_path)


def _execute(tool: WriteTool, args: Any, snapshot: str, action_id: str = ACTION) -> Any:
    return tool.execute(args, action_id=action_id, approved_by=["alice"], snapshot=snapshot)


# -- reads -----------------------------------------------------------------------------------


def test_get_deployment_counts_gpus(kv: Cluster) -> None:
    got = kv.read("kube.get_deployment").run(TARGET)
    assert got.status == "ok", got.error
    assert got.data["replicas"] == 2 and got.data["ready_replicas"] == 2
    assert got.data["gpus_per_pod"] == 8 and got.data["total_gpus"] == 16
    assert got.data["resourceVersion"] == "48211"
    cpu = kv.read("kube.get_deployment").run(DeploymentArgs(namespace="shop", name="chat-api"))
    assert cpu.data["replicas"] == 6 and cpu.data["total_gpus"] == 0
    # Reads carry the plain user agent and never write.
    assert all(r.user_agent == "metaops/0.1" and r.method == "GET" for r in kv.fake.requests)


def test_list_pods_and_events(kv: Cluster) -> None:
    pods = kv.read("kube.list_pods").run(
        ListPodsArgs(namespace=NS, label_selector=f"app.kubernetes.io/name={NAME}"))
    assert pods.status == "ok" and len(pods.data["pods"]) == 2 and pods.data["ready"] == 2
    assert {p["phase"] for p in pods.data["pods"]} == {"Running"}
    none = kv.read("kube.list_pods").run(ListPodsArgs(namespace=NS, label_selector="app=nope"))
    assert none.status == "no_data" and "app=nope" in (none.error or "")

    kv.fake.add_event(NS, "Pod", f"{NAME}-abc", "FailedScheduling",
                      "0/4 nodes are available: 4 Insufficient nvidia.com/gpu.", type_="Warning",
                      count=3, when="2025-06-12T14:25:00Z")
    kv.fake.add_event(NS, "Deployment", NAME, "ScalingReplicaSet", "Scaled up", when=
                      "2025-06-12T14:21:00Z")
    events = kv.read("kube.get_events").run(GetEventsArgs(namespace=NS))
    assert [e["reason"] for e in events.data["events"]] == ["FailedScheduling",
                                                            "ScalingReplicaSet"]
    first = events.data["events"][0]
    assert first["type"] == "Warning" and first["count"] == 3
    assert first["last_seen"] == "2025-06-12T14:25:00Z" and first["object"] == f"Pod/{NAME}-abc"
    warnings = kv.read("kube.get_events").run(GetEventsArgs(namespace=NS, warnings_only=True))
    assert [e["reason"] for e in warnings.data["events"]] == ["FailedScheduling"]
    of_deploy = kv.read("kube.get_events").run(GetEventsArgs(namespace=NS, involved_object=NAME))
    assert [e["object"] for e in of_deploy.data["events"]] == [f"Deployment/{NAME}"]
    assert kv.fake.requests[-1].query["fieldSelector"] == f"involvedObject.name={NAME}"


# -- scale -----------------------------------------------------------------------------------


def test_scale_preview_matches_the_scenario_and_only_dry_runs(kv: Cluster) -> None:
    (expected,) = load_json(SCENARIOS / "kv-cache-saturation" / "expected.json")["proposals"]
    tool = kv.write(expected["tool"])
    args = tool.spec.args.model_validate(expected["args"])
    preview = tool.preview(args)
    for text in expected["preview_contains"]:
        assert text in preview.summary
    assert preview.summary == f"scale {NS}/{NAME}: replicas 2 → 4, GPUs 16 → 32"
    assert preview.diff.startswith("---") and "-replicas: 2\n+replicas: 4\n" in preview.diff
    assert preview.current["replicas"] == 2 and preview.current["gpus"] == 16
    assert preview.current["gpus_per_pod"] == 8
    assert preview.proposed == {"replicas": 4, "gpus": 32}
    (dry,) = kv.fake.writes(dry_run=True)
    assert dry.method == "PATCH" and dry.path.endswith(f"/deployments/{NAME}")
    assert dry.body["spec"] == {"replicas": 4}
    assert dry.body["metadata"] == {"resourceVersion": "48211"}
    assert kv.fake.writes() == []
    assert kv.fake.replicas(NS, NAME) == 2
    assert kv.fake.deployment(NS, NAME)["metadata"]["resourceVersion"] == "48211"


def test_scale_executes_once_with_the_action_in_the_user_agent(kv: Cluster) -> None:
    tool = kv.write("kube.scale_deployment")
    snapshot = tool.snapshot(SCALE)
    result = _execute(tool, SCALE, snapshot)
    assert result.status == "ok", result.error
    assert result.data["before"] == {"replicas": 2, "gpus": 16}
    assert result.data["after"] == {"replicas": 4, "gpus": 32}
    assert kv.fake.replicas(NS, NAME) == 4
    (write,) = kv.fake.writes()
    assert ACTION in write.user_agent and write.user_agent.startswith("metaops/0.1 action=")
    assert write.content_type == "application/merge-patch+json"
    assert write.body["metadata"]["resourceVersion"] == "48211"
    annotations = kv.fake.deployment(NS, NAME)["metadata"]["annotations"]
    assert annotations["metaops.io/last-action-id"] == ACTION
    assert annotations["metaops.io/last-approved-by"] == "alice"

    # The same action again: recognised as done, nothing sent.
    again = _execute(tool, SCALE, snapshot)
    assert again.status == "ok" and again.data["already_applied"] is True
    # Another action on the old snapshot: stale.
    other = _execute(tool, SCALE, snapshot, action_id="incident-8:kv-cache-saturation:scale-up")
    assert other.status == "error" and (other.error or "").startswith("stale:")
    assert len(kv.fake.writes()) == 1 and kv.fake.replicas(NS, NAME) == 4

    assert tool.reconcile(ACTION) is True
    assert tool.reconcile("incident-8:kv-cache-saturation:scale-up") is False


def test_a_spec_change_after_the_snapshot_is_stale(kv: Cluster) -> None:
    tool = kv.write("kube.scale_deployment")
    snapshot = tool.snapshot(SCALE)
    kv.fake.bump(NS, NAME)
    result = _execute(tool, SCALE, snapshot)
    assert result.status == "error" and (result.error or "").startswith("stale:")
    assert kv.fake.writes() == [] and kv.fake.replicas(NS, NAME) == 2


def test_a_status_update_after_the_snapshot_is_not_stale(kv: Cluster) -> None:
    # The controller rewrites status (resourceVersion moves) all the time; the spec is the same.
    tool = kv.write("kube.scale_deployment")
    snapshot = tool.snapshot(SCALE)
    kv.fake.touch_status(NS, NAME)
    assert _execute(tool, SCALE, snapshot).status == "ok"
    assert kv.fake.replicas(NS, NAME) == 4


def test_a_writer_racing_the_patch_gets_a_conflict_reported_as_stale(kv: Cluster) -> None:
    tool = kv.write("kube.scale_deployment")
    snapshot = tool.snapshot(SCALE)
    kv.fake.before_next_write = lambda: kv.fake.bump(NS, NAME)  # lands between read and patch
    result = _execute(tool, SCALE, snapshot)
    assert result.status == "error" and (result.error or "").startswith("stale:")
    assert "the object has been modified" in (result.error or "")
    (write,) = kv.fake.writes()
    assert write.body["metadata"]["resourceVersion"] == "48211"
    assert kv.fake.replicas(NS, NAME) == 2
    assert tool.reconcile(ACTION) is False


def test_inverse_of_a_scale_restores_the_old_count(kv: Cluster) -> None:
    tool = kv.write("kube.scale_deployment")
    preview = tool.preview(SCALE)
    assert tool.inverse(SCALE, preview) == (
        "kube.scale_deployment", {"namespace": NS, "name": NAME, "replicas": 2})


def test_an_autoscaler_is_named_in_the_preview(kv: Cluster) -> None:
    kv.fake.add_hpa(NS, "vllm-hpa", NAME, 2, 3)
    summary = kv.write("kube.scale_deployment").preview(SCALE).summary
    assert "HorizontalPodAutoscaler vllm-hpa" in summary and "max 3" in summary


def test_scale_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="greater than or equal to 0"):
        ScaleDeploymentArgs(namespace=NS, name=NAME, replicas=-1)
    with pytest.raises(ValueError, match="valid integer"):
        ScaleDeploymentArgs.model_validate({"namespace": NS, "name": NAME, "replicas": "4"})
    with pytest.raises(ValueError, match="pattern"):
        ScaleDeploymentArgs(namespace="Bad_NS", name=NAME, replicas=1)
    with pytest.raises(ValueError, match="at least 1 character"):
        DeleteJobsArgs(namespace="shop", label_selector="")


# -- rollout restart -------------------------------------------------------------------------


def test_rollout_restart_sends_the_kubectl_patch(kv: Cluster) -> None:
    tool = kv.write("kube.rollout_restart")
    preview = tool.preview(TARGET)
    assert "replace all 2 pods" in preview.summary and preview.diff.startswith("---")
    assert tool.inverse(TARGET, preview) is None
    result = _execute(tool, TARGET, tool.snapshot(TARGET), action_id="incident-7:restart")
    assert result.status == "ok", result.error
    (dry,) = kv.fake.writes(dry_run=True)
    (write,) = kv.fake.writes()
    reference = load_json(WIRE / "k8s_rollout_restart_patch.json")
    for sent in (dry, write):
        assert sent.content_type == "application/strategic-merge-patch+json"
        stamp = sent.body["spec"]["template"]["metadata"]["annotations"][
            "kubectl.kubernetes.io/restartedAt"]
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", stamp)
        reference["spec"]["template"]["metadata"]["annotations"][
            "kubectl.kubernetes.io/restartedAt"] = stamp
        assert sent.body["spec"] == reference["spec"]
    live = kv.fake.deployment(NS, NAME)
    assert live["spec"]["template"]["metadata"]["annotations"] == {
        "kubectl.kubernetes.io/restartedAt": result.data["restartedAt"]}
    assert live["metadata"]["generation"] == 2 and live["spec"]["replicas"] == 2


def test_a_paused_deployment_is_not_restarted(kv: Cluster) -> None:
    kv.fake.add_deployment(NS, "paused-one", 1, paused=True)
    with pytest.raises(KubeRefused, match="is paused"):
        kv.write("kube.rollout_restart").preview(DeploymentArgs(namespace=NS, name="paused-one"))
    assert kv.fake.writes(dry_run=True) == [] and kv.fake.writes() == []


# -- delete jobs -----------------------------------------------------------------------------


def test_delete_jobs_deletes_exactly_the_matching_jobs(cost: Cluster) -> None:
    cost.fake.add_job("shop", "nightly-report", {"app": "reporting"})
    (expected,) = [p for p in load_json(SCENARIOS / "cost-spike" / "expected.json")["proposals"]
                   if p["tool"] == "kube.delete_jobs"]
    tool = cost.write("kube.delete_jobs")
    assert tool.spec.effect is Effect.DESTRUCTIVE
    args = tool.spec.args.model_validate(expected["args"])
    preview = tool.preview(args)
    assert preview.summary.startswith(
        "delete 7 jobs in shop matching app=shop-agent: agent-run-0, agent-run-1")
    assert preview.current["jobs"] == 7 and tool.inverse(args, preview) is None
    assert len(cost.fake.writes(dry_run=True)) == 7 and cost.fake.writes() == []
    assert len(cost.fake.jobs_in("shop")) == 8

    result = tool.execute(args, action_id="incident-9:cost-spike:jobs",
                          approved_by=["alice", "bob"], snapshot=tool.snapshot(args))
    assert result.status == "ok", result.error
    assert result.data["deleted"] == 7
    assert [j["metadata"]["name"] for j in cost.fake.jobs_in("shop")] == ["nightly-report"]
    deletes = cost.fake.writes()
    assert len(deletes) == 7 and {d.method for d in deletes} == {"DELETE"}
    assert all(d.query["propagationPolicy"] == "Background" for d in deletes)
    assert all("action=incident-9:cost-spike:jobs" in d.user_agent for d in deletes)
    assert all(d.body["preconditions"]["uid"] for d in deletes)


@pytest.mark.parametrize("change", ["added", "recreated", "deleted"])
def test_delete_jobs_is_stale_when_the_job_set_changed(cost: Cluster, change: str) -> None:
    tool = cost.write("kube.delete_jobs")
    snapshot = tool.snapshot(JOBS)
    if change == "added":
        cost.fake.add_job("shop", "agent-run-7", {"app": "shop-agent"})
    elif change == "recreated":  # same name, new uid
        cost.fake.add_job("shop", "agent-run-3", {"app": "shop-agent"})
    else:
        del cost.fake.jobs[("shop", "agent-run-0")]
    result = tool.execute(JOBS, action_id="a", approved_by=["alice"], snapshot=snapshot)
    assert result.status == "error" and (result.error or "").startswith("stale:")
    assert cost.fake.writes() == []


def test_delete_jobs_status_churn_is_not_stale(cost: Cluster) -> None:
    tool = cost.write("kube.delete_jobs")
    snapshot = tool.snapshot(JOBS)
    cost.fake.jobs[("shop", "agent-run-1")]["status"] = {"succeeded": 1}
    cost.fake.jobs[("shop", "agent-run-1")]["metadata"]["resourceVersion"] = "999999"
    result = tool.execute(JOBS, action_id="a", approved_by=["alice"], snapshot=snapshot)
    assert result.status == "ok" and result.data["deleted"] == 7
    assert tool.reconcile("a") is None


# -- errors ----------------------------------------------------------------------------------


def test_not_found_carries_the_status_message(kv: Cluster) -> None:
    missing = DeploymentArgs(namespace=NS, name="vllm-llama3-8b")
    got = kv.read("kube.get_deployment").run(missing)
    assert got.status == "error"
    assert got.error == ('kube.get_deployment: 404 Not Found: '
                         'deployments.apps "vllm-llama3-8b" not found')
    assert got.data["reason"] == "NotFound"
    scale = ScaleDeploymentArgs(namespace=NS, name="vllm-llama3-8b", replicas=1)
    with pytest.raises(KubeApiError) as raised:
        kv.write("kube.scale_deployment").preview(scale)
    assert raised.value.http_status == 404
    assert raised.value.message.startswith("kube.scale_deployment: 404 Not Found: ")


def test_forbidden_dry_run_stops_the_preview(kv: Cluster) -> None:
    kv.fake.forbidden.append(Forbid(verb="patch", namespace=NS))
    tool = kv.write("kube.scale_deployment")
    with pytest.raises(KubeApiError) as raised:
        tool.preview(SCALE)
    error = raised.value
    assert error.http_status == 403 and error.reason == "Forbidden"
    assert error.message.startswith("kube.scale_deployment: dry run: 403 Forbidden: ")
    assert 'cannot patch resource "deployments"' in error.message
    result = _execute(tool, SCALE, tool.snapshot(SCALE))
    assert result.status == "error" and "403 Forbidden" in (result.error or "")
    assert kv.fake.replicas(NS, NAME) == 2
    # Reconcile without permission to list deployments cannot tell.
    kv.fake.forbidden.append(Forbid(verb="list", resource="deployments"))
    assert tool.reconcile(ACTION) is None


def test_an_admission_denial_stops_the_preview(kv: Cluster) -> None:
    kv.fake.max_replicas = 3
    with pytest.raises(KubeApiError) as raised:
        kv.write("kube.scale_deployment").preview(SCALE)
    assert raised.value.http_status == 422
    assert raised.value.message.startswith("kube.scale_deployment: dry run: 422 Unprocessable")
    assert "at most 3 replicas, not 4" in raised.value.message
    assert kv.fake.replicas(NS, NAME) == 2


def test_unauthorized_and_unreachable(kv: Cluster, tmp_path: Path) -> None:
    bad = KubeClient.from_kubeconfig(kv.fake.kubeconfig(tmp_path / "bad", token="wrong-token"))
    got = GetDeployment(bad).run(TARGET)
    bad.close()
    assert got.status == "error"
    assert got.error == "kube.get_deployment: 401 Unauthorized: Unauthorized"
    assert kv.fake.requests[-1].user_agent == "metaops/0.1"

    kubeconfig = tmp_path / "gone"
    kubeconfig.write_text(kv.kubeconfig.read_text().replace(kv.fake.url,
                                                            f"http://127.0.0.1:{free_port()}"))
    gone = KubeClient.from_kubeconfig(kubeconfig)
    result = GetDeployment(gone).run(TARGET)
    gone.close()
    assert result.status == "error" and "cannot reach the Kubernetes API" in (result.error or "")


def test_not_configured() -> None:
    assert kube_tools(None) == []
    assert "METAOPS_KUBECONFIG" in KUBE_NOT_CONFIGURED and "in-cluster" in KUBE_NOT_CONFIGURED


def test_tool_family(kv: Cluster) -> None:
    effects = {name: tool.spec.effect for name, tool in kv.tools.items()}
    assert effects == {"kube.get_deployment": Effect.READ, "kube.list_pods": Effect.READ,
                       "kube.get_events": Effect.READ, "kube.scale_deployment": Effect.WRITE,
                       "kube.rollout_restart": Effect.WRITE,
                       "kube.delete_jobs": Effect.DESTRUCTIVE}
    with pytest.raises(KubeError, match="cannot load kubeconfig"):
        KubeClient.from_kubeconfig(kv.kubeconfig.parent / "missing")


# -- the fake itself: the scale subresource the wire notes describe ---------------------------


def test_fake_scale_subresource_through_the_real_client(kv: Cluster) -> None:
    from kubernetes import client as k8s
    from kubernetes.client.exceptions import ApiException

    apps = k8s.AppsV1Api(kv.client.reader.apps.api_client)
    scale = apps.read_namespaced_deployment_scale(NAME, NS)
    assert scale.spec.replicas == 2 and scale.metadata.resource_version == "48211"
    assert scale.status.selector == f"app.kubernetes.io/name={NAME}"
    patched = apps.patch_namespaced_deployment_scale(NAME, NS, load_json(
        WIRE / "k8s_scale_patch_request.json"))
    assert patched.spec.replicas == 6 and kv.fake.replicas(NS, NAME) == 6
    assert kv.fake.requests[-1].content_type == "application/strategic-merge-patch+json"
    stale = load_json(WIRE / "k8s_scale_put_request.json")  # carries resourceVersion 48213377
    with pytest.raises(ApiException) as raised:
        apps.replace_namespaced_deployment_scale(NAME, NS, stale)
    assert raised.value.status == 409 and '"reason": "Conflict"' in raised.value.body
    stale["metadata"]["resourceVersion"] = patched.metadata.resource_version
    stale["spec"]["replicas"] = 3
    assert apps.replace_namespaced_deployment_scale(NAME, NS, stale).spec.replicas == 3
    assert kv.fake.deployment(NS, NAME)["metadata"]["generation"] == 3
