"""Kubernetes tools: read deployments, pods and events; scale, restart; delete runaway jobs."""

from __future__ import annotations

from tools.kube.args import (
    DeleteJobsArgs,
    DeploymentArgs,
    GetEventsArgs,
    ListPodsArgs,
    ScaleDeploymentArgs,
)
from tools.kube.client import KUBE_NOT_CONFIGURED, USER_AGENT, KubeApi, KubeClient, user_agent
from tools.kube.errors import KubeApiError, KubeError, KubeRefused, KubeUnavailable
from tools.kube.jobs import DeleteJobs
from tools.kube.read_tools import GetDeployment, GetEvents, ListPods
from tools.kube.restart import RolloutRestart
from tools.kube.scale import ScaleDeployment
from tools.registry import Tool

__all__ = [
    "KUBE_NOT_CONFIGURED",
    "USER_AGENT",
    "DeleteJobs",
    "DeleteJobsArgs",
    "DeploymentArgs",
    "GetDeployment",
    "GetEvents",
    "GetEventsArgs",
    "KubeApi",
    "KubeApiError",
    "KubeClient",
    "KubeError",
    "KubeRefused",
    "KubeUnavailable",
    "ListPods",
    "ListPodsArgs",
    "RolloutRestart",
    "ScaleDeployment",
    "ScaleDeploymentArgs",
    "kube_tools",
    "user_agent",
]


def kube_tools(client: KubeClient | None) -> list[Tool]:
    """The six Kubernetes tools on `client` (three READ, two WRITE, one DESTRUCTIVE); none when
    Kubernetes is not configured (callers can say why with KUBE_NOT_CONFIGURED)."""
    if client is None:
        return []
    return [GetDeployment(client), ListPods(client), GetEvents(client),
            ScaleDeployment(client), RolloutRestart(client), DeleteJobs(client)]
