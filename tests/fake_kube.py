"""A wire-level fake Kubernetes API server (deployments, scale, jobs, pods, events), for tests."""

from __future__ import annotations

import copy
import hashlib
import json
import re
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

TOKEN = "fake-kube-token-0123456789"
USER = "system:serviceaccount:ops:metaops"
CREATED = "2025-05-02T09:14:51Z"
EVENT_TIME = "2025-06-12T14:20:03Z"

Obj = dict[str, Any]
Key = tuple[str, str]  # (namespace, name)

_DEPLOYMENT = re.compile(r"^/apis/apps/v1/namespaces/([^/]+)/deployments/([^/]+)(/scale)?$")
_DEPLOYMENTS = re.compile(r"^/apis/apps/v1(?:/namespaces/([^/]+))?/deployments$")
_JOB = re.compile(r"^/apis/batch/v1/namespaces/([^/]+)/jobs/([^/]+)$")
_JOBS = re.compile(r"^/apis/batch/v1/namespaces/([^/]+)/jobs$")
_PODS = re.compile(r"^/api/v1/namespaces/([^/]+)/pods$")
_EVENTS = re.compile(r"^/api/v1/namespaces/([^/]+)/events$")
_HPAS = re.compile(r"^/apis/autoscaling/v2/namespaces/([^/]+)/horizontalpodautoscalers$")


class Answer(Exception):
    """Raised inside a handler to answer with a Kubernetes Status body."""

    def __init__(self, code: int, reason: str, message: str, details: Obj | None = None) -> None:
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details

    def body(self) -> Obj:
        out: Obj = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                    "message": self.message, "reason": self.reason, "code": self.code}
        if self.details is not None:
            out["details"] = self.details
        return out


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: dict[str, str]
    user_agent: str
    content_type: str
    body: Any

    @property
    def dry_run(self) -> bool:
        return self.query.get("dryRun") == "All"

    @property
    def write(self) -> bool:
        return self.method in ("PATCH", "PUT", "POST", "DELETE")


@dataclass(frozen=True)
class Forbid:
    """Forbid requests matching every field given (verb: get, list, patch, update, delete;
    resource: deployments, deployments/scale, jobs, pods, events, horizontalpodautoscalers)."""

    verb: str | None = None
    namespace: str | None = None
    resource: str | None = None

    def matches(self, verb: str, namespace: str, resource: str) -> bool:
        return ((self.verb is None or self.verb == verb)
                and (self.namespace is None or self.namespace == namespace)
                and (self.resource is None or self.resource == resource))


def _uid(*parts: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "/".join(parts)))


def _merge(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch. Strategic merge differs only for lists, which the tools never
    patch, so both content types use this."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = _merge(out.get(key), value)
    return out


def _split_selector(text: str) -> list[str]:
    parts, depth, cur = [], 0, ""
    for ch in text:
        depth += ch == "("
        depth -= ch == ")"
        if ch == "," and depth == 0:
            parts.append(cur.strip())
            cur = ""
        else:
            cur += ch
    if cur.strip():
        parts.append(cur.strip())
    return parts


def label_match(selector: str, labels: dict[str, str]) -> bool:
    """Kubernetes label selector semantics: =, ==, !=, in, notin, key, !key."""
    for term in _split_selector(selector):
        found = re.fullmatch(r"([^\s!=]+)\s+(in|notin)\s+\((.*)\)", term)
        if found:
            key, op, values = found[1], found[2], {v.strip() for v in found[3].split(",")}
            if (labels.get(key) in values) != (op == "in"):
                return False
        elif "!=" in term:
            key, value = (s.strip() for s in term.split("!=", 1))
            if labels.get(key) == value:
                return False
        elif "=" in term:
            key, value = (s.strip() for s in term.replace("==", "=").split("=", 1))
            if labels.get(key) != value:
                return False
        elif term.startswith("!"):
            if term[1:].strip() in labels:
                return False
        elif term not in labels:
            return False
    return True


def field_match(selector: str, obj: Obj) -> bool:
    """Equality field selectors on dotted paths, e.g. involvedObject.name=x,type=Warning."""
    for term in _split_selector(selector):
        negate = "!=" in term
        path, value = (s.strip() for s in re.split(r"!=|==|=", term, maxsplit=1))
        cur: Any = obj
        for part in path.split("."):
            cur = cur.get(part) if isinstance(cur, dict) else None
        if (str(cur) == value) == negate:
            return False
    return True


@dataclass
class FakeKube:
    """State of a tiny cluster. resourceVersion is one cluster-wide counter (like etcd's); every
    change bumps it and stamps the changed object. Requests are recorded in `requests`."""

    deployments: dict[Key, Obj] = field(default_factory=dict)
    jobs: dict[Key, Obj] = field(default_factory=dict)
    events: list[Obj] = field(default_factory=list)
    hpas: list[Obj] = field(default_factory=list)
    forbidden: list[Forbid] = field(default_factory=list)
    token: str = TOKEN
    requests: list[Request] = field(default_factory=list)
    url: str = ""
    revision: int = 1
    # An admission policy (like a ValidatingAdmissionPolicy): more replicas answer 422.
    max_replicas: int | None = None
    # Runs (once) just before the next non-dry-run write is processed: a concurrent writer.
    before_next_write: Callable[[], None] | None = None
    lock: threading.RLock = field(default_factory=threading.RLock)

    # -- loading -------------------------------------------------------------------------------

    @classmethod
    def from_cluster(cls, path: Path) -> FakeKube:
        data = json.loads(path.read_text(encoding="utf-8"))
        fake = cls()
        versions = [int(d["resourceVersion"]) for d in data.get("deployments", [])
                    if str(d.get("resourceVersion", "")).isdigit()]
        fake.revision = max(versions, default=1)
        for d in data.get("deployments", []):
            fake.add_deployment(d["namespace"], d["name"], int(d["replicas"]),
                                gpus_per_pod=int(d.get("gpus_per_pod", 0)),
                                gpu_resource=d.get("gpu_resource", "nvidia.com/gpu"),
                                resource_version=d.get("resourceVersion"),
                                paused=bool(d.get("paused", False)))
        for j in data.get("jobs", []):
            fake.add_job(j["namespace"], j["name"], dict(j.get("labels", {})),
                         active=int(j.get("active", 0)))
        for h in data.get("hpas", []):
            fake.add_hpa(h["namespace"], h["name"], h["target"], h.get("min", 1), h["max"])
        return fake

    def _next(self) -> str:
        self.revision += 1
        return str(self.revision)

    def add_deployment(self, ns: str, name: str, replicas: int, *, gpus_per_pod: int = 0,
                       gpu_resource: str = "nvidia.com/gpu", resource_version: str | None = None,
                       paused: bool = False) -> Obj:
        labels = {"app.kubernetes.io/name": name}
        resources = {"limits": {gpu_resource: str(gpus_per_pod)},
                     "requests": {gpu_resource: str(gpus_per_pod)}} if gpus_per_pod else {}
        obj: Obj = {
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": ns, "uid": _uid("deploy", ns, name),
                         "resourceVersion": resource_version or self._next(), "generation": 1,
                         "creationTimestamp": CREATED, "labels": dict(labels),
                         "annotations": {"deployment.kubernetes.io/revision": "1"}},
            "spec": {"replicas": replicas, "selector": {"matchLabels": dict(labels)},
                     "paused": paused,
                     "strategy": {"type": "RollingUpdate",
                                  "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}},
                     "template": {"metadata": {"labels": dict(labels)},
                                  "spec": {"containers": [{"name": "main",
                                                           "image": f"registry.local/{name}:1",
                                                           "resources": resources}]}}},
        }
        self._settle(obj)
        with self.lock:
            self.deployments[(ns, name)] = obj
        return obj

    def add_job(self, ns: str, name: str, labels: dict[str, str], *, active: int = 1) -> Obj:
        with self.lock:
            obj: Obj = {
                "apiVersion": "batch/v1", "kind": "Job",
                "metadata": {"name": name, "namespace": ns, "uid": _uid("job", ns, name,
                                                                        self._next()),
                             "resourceVersion": str(self.revision), "labels": dict(labels),
                             "creationTimestamp": CREATED},
                "spec": {"backoffLimit": 6, "template": {
                    "metadata": {"labels": dict(labels)},
                    "spec": {"restartPolicy": "Never", "containers": [
                        {"name": "agent", "image": "registry.local/agent:1"}]}}},
                "status": {"active": active, "startTime": CREATED} if active else
                          {"succeeded": 1, "startTime": CREATED},
            }
            self.jobs[(ns, name)] = obj
        return obj

    def add_hpa(self, ns: str, name: str, target: str, low: int, high: int) -> None:
        self.hpas.append({
            "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": name, "namespace": ns, "uid": _uid("hpa", ns, name)},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment",
                                        "name": target},
                     "minReplicas": low, "maxReplicas": high}})

    def add_event(self, ns: str, kind: str, name: str, reason: str, message: str,
                  type_: str = "Normal", count: int = 1, when: str = EVENT_TIME) -> None:
        with self.lock:
            n = len(self.events)
            self.events.append({
                "apiVersion": "v1", "kind": "Event",
                "metadata": {"name": f"{name}.{n:016x}", "namespace": ns,
                             "resourceVersion": self._next(), "creationTimestamp": when},
                "involvedObject": {"kind": kind, "namespace": ns, "name": name},
                "reason": reason, "message": message, "type": type_, "count": count,
                "firstTimestamp": when, "lastTimestamp": when,
                "source": {"component": "deployment-controller"}})

    # -- test helpers --------------------------------------------------------------------------

    def deployment(self, ns: str, name: str) -> Obj:
        with self.lock:
            return copy.deepcopy(self.deployments[(ns, name)])

    def replicas(self, ns: str, name: str) -> int:
        return int(self.deployment(ns, name)["spec"]["replicas"])

    def bump(self, ns: str, name: str) -> None:
        """Someone else edits the deployment's spec (a pod-template annotation)."""
        with self.lock:
            obj = self.deployments[(ns, name)]
            annotations = obj["spec"]["template"]["metadata"].setdefault("annotations", {})
            annotations["example.com/edited-by"] = f"someone-{self.revision}"
            obj["metadata"]["generation"] += 1
            obj["metadata"]["resourceVersion"] = self._next()
            self._settle(obj)

    def touch_status(self, ns: str, name: str) -> None:
        """The controller rewrites the deployment's status: resourceVersion moves, spec does not."""
        with self.lock:
            obj = self.deployments[(ns, name)]
            obj["status"]["conditions"] = [{"type": "Progressing", "status": "True",
                                            "reason": f"Touched{self.revision}"}]
            obj["metadata"]["resourceVersion"] = self._next()

    def jobs_in(self, ns: str) -> list[Obj]:
        with self.lock:
            return [copy.deepcopy(j) for (n, _), j in sorted(self.jobs.items()) if n == ns]

    def writes(self, *, dry_run: bool = False) -> list[Request]:
        return [r for r in self.requests if r.write and r.dry_run == dry_run]

    def kubeconfig(self, path: Path, token: str | None = None) -> Path:
        """A kubeconfig for this server with bearer-token auth (JSON is valid YAML)."""
        config = {
            "apiVersion": "v1", "kind": "Config", "current-context": "fake",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "metaops", "user": {"token": token or self.token}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "metaops"}}],
        }
        path.write_text(json.dumps(config, indent=2), encoding="utf-8")
        return path

    # -- object behaviour ----------------------------------------------------------------------

    @staticmethod
    def _settle(obj: Obj) -> None:
        """An instant controller: every replica is ready and up to date."""
        n = obj["spec"]["replicas"]
        conditions = obj.get("status", {}).get("conditions")
        obj["status"] = {"observedGeneration": obj["metadata"]["generation"], "replicas": n,
                         "readyReplicas": n, "availableReplicas": n, "updatedReplicas": n}
        if conditions:
            obj["status"]["conditions"] = conditions

    @staticmethod
    def _scale(obj: Obj) -> Obj:
        meta = obj["metadata"]
        selector = ",".join(f"{k}={v}" for k, v in obj["spec"]["selector"]["matchLabels"].items())
        return {"kind": "Scale", "apiVersion": "autoscaling/v1",
                "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion",
                                                  "creationTimestamp")},
                "spec": {"replicas": obj["spec"]["replicas"]},
                "status": {"replicas": obj["status"]["replicas"], "selector": selector}}

    def _pods(self, ns: str) -> list[Obj]:
        pods = []
        for (dns, name), d in sorted(self.deployments.items()):
            if dns != ns:
                continue
            digest = hashlib.sha256(json.dumps(d["spec"]["template"], sort_keys=True)
                                    .encode()).hexdigest()[:10]
            for i in range(d["spec"]["replicas"]):
                pods.append(self._pod(ns, f"{name}-{digest}-{i:05d}",
                                      d["spec"]["template"]["metadata"]["labels"],
                                      f"node-{name[:8]}-{i % 3}"))
        for (jns, name), j in sorted(self.jobs.items()):
            if jns == ns and j["status"].get("active"):
                pods.append(self._pod(ns, f"{name}-x{len(name):04d}",
                                      {**j["metadata"]["labels"], "job-name": name}, "node-cpu-0"))
        return pods

    @staticmethod
    def _pod(ns: str, name: str, labels: dict[str, str], node: str) -> Obj:
        return {"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": name, "namespace": ns, "uid": _uid("pod", ns, name),
                             "labels": dict(labels), "creationTimestamp": CREATED},
                "spec": {"nodeName": node, "containers": [{"name": "main", "image": "x"}]},
                "status": {"phase": "Running", "containerStatuses": [
                    {"name": "main", "ready": True, "restartCount": 0, "image": "x",
                     "imageID": "", "started": True}]}}

    # -- request handling ----------------------------------------------------------------------

    def _check(self, verb: str, ns: str, resource: str, name: str = "") -> None:
        if any(rule.matches(verb, ns, resource) for rule in self.forbidden):
            group = {"deployments": "apps", "deployments/scale": "apps", "jobs": "batch",
                     "horizontalpodautoscalers": "autoscaling"}.get(resource, "")
            plural = resource.split("/", maxsplit=1)[0] + (f".{group}" if group else "")
            subject = f'{plural} "{name}"' if name else plural
            raise Answer(403, "Forbidden",
                         f'{subject} is forbidden: User "{USER}" cannot {verb} resource '
                         f'"{resource}" in API group "{group}" in the namespace "{ns}"',
                         {"name": name, "group": group, "kind": resource.split("/", maxsplit=1)[0]})

    def _deployment(self, ns: str, name: str) -> Obj:
        obj = self.deployments.get((ns, name))
        if obj is None:
            raise Answer(404, "NotFound", f'deployments.apps "{name}" not found',
                         {"name": name, "group": "apps", "kind": "deployments"})
        return obj

    def handle(self, method: str, path: str, query: dict[str, str], body: Any,
               content_type: str) -> tuple[int, Obj]:
        dry = query.get("dryRun") == "All"
        if "dryRun" in query and not dry:
            raise Answer(400, "BadRequest", f"invalid dry run option: {query['dryRun']!r}")
        if method in ("PATCH", "PUT", "POST", "DELETE") and not dry and self.before_next_write:
            hook, self.before_next_write = self.before_next_write, None
            hook()
        if m := _DEPLOYMENT.match(path):
            return self._on_deployment(method, m[1], m[2], bool(m[3]), query, body,
                                       content_type, dry)
        if (m := _DEPLOYMENTS.match(path)) and method == "GET":
            ns = m[1] or ""
            self._check("list", ns, "deployments")
            items = [d for (n, _), d in sorted(self.deployments.items()) if not ns or n == ns]
            return 200, self._list("DeploymentList", "apps/v1", items, query)
        if (m := _JOBS.match(path)) and method == "GET":
            self._check("list", m[1], "jobs")
            items = [j for (n, _), j in sorted(self.jobs.items()) if n == m[1]]
            return 200, self._list("JobList", "batch/v1", items, query)
        if (m := _JOB.match(path)) and method == "DELETE":
            return self._delete_job(m[1], m[2], body, dry)
        if (m := _PODS.match(path)) and method == "GET":
            self._check("list", m[1], "pods")
            return 200, self._list("PodList", "v1", self._pods(m[1]), query)
        if (m := _EVENTS.match(path)) and method == "GET":
            self._check("list", m[1], "events")
            items = [e for e in self.events if e["metadata"]["namespace"] == m[1]]
            return 200, self._list("EventList", "v1", items, query)
        if (m := _HPAS.match(path)) and method == "GET":
            self._check("list", m[1], "horizontalpodautoscalers")
            items = [h for h in self.hpas if h["metadata"]["namespace"] == m[1]]
            return 200, self._list("HorizontalPodAutoscalerList", "autoscaling/v2", items, query)
        raise Answer(404, "NotFound", "the server could not find the requested resource")

    def _list(self, kind: str, api: str, items: list[Obj], query: dict[str, str]) -> Obj:
        if query.get("labelSelector"):
            items = [i for i in items
                     if label_match(query["labelSelector"], i["metadata"].get("labels") or {})]
        if query.get("fieldSelector"):
            items = [i for i in items if field_match(query["fieldSelector"], i)]
        start = int(query.get("continue") or 0)
        limit = int(query.get("limit") or 0) or len(items)
        page = items[start:start + limit]
        meta: Obj = {"resourceVersion": str(self.revision)}
        if start + limit < len(items):
            meta["continue"] = str(start + limit)
            meta["remainingItemCount"] = len(items) - start - limit
        return {"kind": kind, "apiVersion": api, "metadata": meta,
                "items": copy.deepcopy(page)}

    def _on_deployment(self, method: str, ns: str, name: str, scale: bool,
                       query: dict[str, str], body: Any, content_type: str,
                       dry: bool) -> tuple[int, Obj]:
        resource = "deployments/scale" if scale else "deployments"
        verb = {"GET": "get", "PATCH": "patch", "PUT": "update"}.get(method)
        if verb is None:
            raise Answer(405, "MethodNotAllowed", f"{method} is not supported on {resource}")
        self._check(verb, ns, resource, name)
        current = self._deployment(ns, name)
        if method == "GET":
            return 200, copy.deepcopy(self._scale(current) if scale else current)
        if not isinstance(body, dict):
            raise Answer(415 if method == "PATCH" else 400,
                         "UnsupportedMediaType" if method == "PATCH" else "BadRequest",
                         f"the fake accepts JSON object bodies only, not {content_type}")
        if method == "PATCH" and content_type not in ("application/merge-patch+json",
                                                     "application/strategic-merge-patch+json"):
            raise Answer(415, "UnsupportedMediaType",
                         f"the fake does not support patch type {content_type}")
        wanted = (body.get("metadata") or {}).get("resourceVersion")
        if method == "PUT" and not wanted:
            raise Answer(422, "Invalid", "metadata.resourceVersion: Invalid value: 0x0: must be "
                         "specified for an update")
        if wanted is not None and wanted != current["metadata"]["resourceVersion"]:
            raise Answer(409, "Conflict",
                         f'Operation cannot be fulfilled on deployments.apps "{name}": the object '
                         "has been modified; please apply your changes to the latest version and "
                         "try again", {"name": name, "group": "apps", "kind": "deployments"})
        if scale:
            replicas = (body.get("spec") or {}).get("replicas", current["spec"]["replicas"])
            new = _merge(current, {"spec": {"replicas": replicas}})
        else:
            new = _merge(current, body)
            new["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
        replicas = new["spec"].get("replicas")
        if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
            raise Answer(422, "Invalid",
                         f'{"Scale" if scale else "Deployment"}.apps "{name}" is invalid: '
                         f"spec.replicas: Invalid value: {json.dumps(replicas)}: must be "
                         "greater than or equal to 0",
                         {"name": name, "group": "apps", "kind": "Deployment", "causes": [
                             {"reason": "FieldValueInvalid", "field": "spec.replicas",
                              "message": "Invalid value: must be greater than or equal to 0"}]})
        if self.max_replicas is not None and replicas > self.max_replicas:
            raise Answer(422, "Invalid",
                         f'deployments.apps "{name}" is forbidden: ValidatingAdmissionPolicy '
                         "'max-replicas' with binding 'max-replicas' denied request: at most "
                         f"{self.max_replicas} replicas, not {replicas}",
                         {"name": name, "group": "apps", "kind": "deployments"})
        if new["spec"] != current["spec"]:
            new["metadata"]["generation"] = current["metadata"]["generation"] + 1
        changed = new != current
        if changed and not dry:
            before = current["spec"]["replicas"]
            new["metadata"]["resourceVersion"] = self._next()
            self._settle(new)
            self.deployments[(ns, name)] = new
            if replicas != before:
                self.add_event(ns, "Deployment", name, "ScalingReplicaSet",
                               f"Scaled {'up' if replicas > before else 'down'} replica set "
                               f"{name}-7d9c6b5f4 from {before} to {replicas}")
        elif changed:
            self._settle(new)
        result = new if changed else current
        return 200, copy.deepcopy(self._scale(result) if scale else result)

    def _delete_job(self, ns: str, name: str, body: Any, dry: bool) -> tuple[int, Obj]:
        self._check("delete", ns, "jobs", name)
        job = self.jobs.get((ns, name))
        if job is None:
            raise Answer(404, "NotFound", f'jobs.batch "{name}" not found',
                         {"name": name, "group": "batch", "kind": "jobs"})
        pre = (body or {}).get("preconditions") or {}
        meta = job["metadata"]
        for key, label in (("uid", "UID"), ("resourceVersion", "ResourceVersion")):
            if pre.get(key) is not None and pre[key] != meta[key]:
                raise Answer(409, "Conflict",
                             f"Operation cannot be fulfilled on jobs.batch \"{name}\": "
                             f"Precondition failed: {label} in precondition: {pre[key]}, "
                             f"{label} in object meta: {meta[key]}",
                             {"name": name, "group": "batch", "kind": "jobs"})
        if not dry:
            del self.jobs[(ns, name)]
            self._next()
        return 200, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                     "details": {"name": name, "group": "batch", "kind": "jobs",
                                 "uid": meta["uid"]}}


@contextmanager
def serve(fake: FakeKube) -> Iterator[FakeKube]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _answer(self) -> None:
            url = urlparse(self.path)
            query = {k: v[-1] for k, v in parse_qs(url.query).items()}
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip()
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = raw.decode("utf-8", "replace")
            with fake.lock:
                fake.requests.append(Request(self.command, url.path, query,
                                             self.headers.get("User-Agent", ""), ctype, body))
                try:
                    if self.headers.get("Authorization") != f"Bearer {fake.token}":
                        raise Answer(401, "Unauthorized", "Unauthorized")
                    status, out = fake.handle(self.command, url.path, query, body, ctype)
                except Answer as answer:
                    status, out = answer.code, answer.body()
            data = json.dumps(out).encode()
            try:
                self.send_response(status, HTTPStatus(status).phrase)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass

        do_GET = do_PATCH = do_PUT = do_DELETE = do_POST = _answer

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
