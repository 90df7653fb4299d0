"""The connection to a Kubernetes API server: configuration, timeouts, user agents, errors."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from tools.kube.errors import KubeError, KubeUnavailable, from_api_exception

USER_AGENT = "metaops/0.1"
KUBE_NOT_CONFIGURED = "Kubernetes is not configured (set METAOPS_KUBECONFIG or run in-cluster)"
DEFAULT_TIMEOUT = (5.0, 30.0)  # (connect, read) seconds; no call may hang a worker thread
FIELD_MANAGER = "metaops"
_UNSAFE_HEADER_CHARS = re.compile(r"[^\x21-\x7e]")


def user_agent(action_id: str | None = None) -> str:
    """`metaops/0.1 action=<id>`: the API server's audit log records it, so its entries can be
    joined with ours. Header-unsafe characters become `_`."""
    if not action_id:
        return USER_AGENT
    return f"{USER_AGENT} action={_UNSAFE_HEADER_CHARS.sub('_', action_id)[:200]}"


class KubeApi:
    """The API groups of one ApiClient. `call` adds the request timeout and turns failures
    into KubeApiError (with the Status message) or KubeUnavailable."""

    def __init__(self, api_client: Any, timeout: tuple[float, float]) -> None:
        self.apps = client.AppsV1Api(api_client)
        self.batch = client.BatchV1Api(api_client)
        self.core = client.CoreV1Api(api_client)
        self.autoscaling = client.AutoscalingV2Api(api_client)
        self.timeout = timeout
        self._host = str(api_client.configuration.host)

    def call(self, what: str, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, _request_timeout=self.timeout, **kwargs)
        except ApiException as exc:
            raise from_api_exception(what, exc) from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise KubeUnavailable(f"{what}: cannot reach the Kubernetes API at {self._host}: "
                                  f"{exc.__class__.__name__}: {exc}"[:600]) from None


class KubeClient:
    """A cluster connection. Reads share one ApiClient (urllib3 pools are thread-safe); each
    write gets its own ApiClient (`writer`) whose User-Agent names the action: the client's
    default headers override per-call headers, so a shared client cannot carry it safely when
    executions run in worker threads."""

    def __init__(self, configuration: Any, *, timeout: tuple[float, float] = DEFAULT_TIMEOUT,
                 gpu_resource: str = "nvidia.com/gpu", field_manager: str = FIELD_MANAGER,
                 reconcile_namespaces: Sequence[str] = ()) -> None:
        self.configuration = configuration
        self.timeout = timeout
        self.gpu_resource = gpu_resource
        self.field_manager = field_manager
        # Where reconcile looks for a marked deployment; empty = all namespaces (needs a
        # cluster-wide `list deployments` permission).
        self.reconcile_namespaces = tuple(reconcile_namespaces)
        self._reader_client = client.ApiClient(configuration)
        self._reader_client.user_agent = user_agent()
        self.reader = KubeApi(self._reader_client, timeout)

    @classmethod
    def from_kubeconfig(cls, path: str | Path, *, context: str | None = None,
                        **options: Any) -> KubeClient:
        configuration = client.Configuration()
        try:
            # persist_config=False: never write refreshed credentials back into the file.
            config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=str(path), context=context, client_configuration=configuration,
                persist_config=False)
        except (ConfigException, OSError, ValueError) as exc:
            raise KubeError(f"cannot load kubeconfig {path}: {exc}") from None
        return cls(configuration, **options)

    @classmethod
    def in_cluster(cls, **options: Any) -> KubeClient:
        configuration = client.Configuration()
        try:
            config.load_incluster_config(  # type: ignore[no-untyped-call]
                client_configuration=configuration)
        except ConfigException as exc:
            raise KubeError(f"cannot load the in-cluster configuration: {exc}") from None
        return cls(configuration, **options)

    @property
    def host(self) -> str:
        return str(self.configuration.host)

    @contextmanager
    def writer(self, action_id: str) -> Iterator[KubeApi]:
        api_client = client.ApiClient(self.configuration)
        api_client.user_agent = user_agent(action_id)
        try:
            yield KubeApi(api_client, self.timeout)
        finally:
            api_client.close()  # type: ignore[no-untyped-call]

    def close(self) -> None:
        self._reader_client.close()  # type: ignore[no-untyped-call]
