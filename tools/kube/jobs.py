"""kube.delete_jobs: delete exactly the Jobs a label selector matched when it was approved."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from kubernetes import client as k8s
from pydantic import BaseModel, ValidationError

from tools.base import Effect, Preview, ToolResult, ToolSpec
from tools.kube.args import DeleteJobsArgs, coerce
from tools.kube.client import KubeApi, KubeClient
from tools.kube.deployment_write import checked_approvers, one_line
from tools.kube.errors import KubeApiError, KubeError, KubeRefused

PAGE = 500
MAX_JOBS = 1000  # more than this is not a runaway to clean up but a selector to narrow
_SHOWN = 20


@dataclass(frozen=True, slots=True)
class Job:
    name: str
    uid: str
    active: int

    def key(self) -> list[str]:
        return [self.name, self.uid]


def matching(api: KubeApi, what: str, namespace: str, selector: str) -> list[Job]:
    """Every job in `namespace` matching `selector`, by name, paging through the list."""
    jobs: list[Job] = []
    token: str | None = None
    while True:
        page = api.call(what, api.batch.list_namespaced_job, namespace,
                        label_selector=selector, limit=PAGE, _continue=token)
        for item in page.items or []:
            status = item.status
            jobs.append(Job(item.metadata.name, item.metadata.uid or "",
                            int(status.active or 0) if status else 0))
        if len(jobs) > MAX_JOBS:
            raise KubeRefused(f"{what}: more than {MAX_JOBS} jobs in {namespace} match "
                              f"{selector!r}; narrow the selector")
        meta = page.metadata
        token = (getattr(meta, "var_continue", None) or getattr(meta, "_continue", None)
                 if meta is not None else None)
        if not token:
            return sorted(jobs, key=lambda j: j.name)


def fingerprint(namespace: str, selector: str, jobs: list[Job]) -> str:
    """The snapshot: which jobs (name and uid) match. Status changes of a running job (which
    move its resourceVersion all the time) do not count; a job added, gone or recreated does."""
    text = json.dumps([namespace, selector, [j.key() for j in jobs]], separators=(",", ":"))
    return f"jobs {namespace} {selector} {len(jobs)}:{hashlib.sha256(text.encode()).hexdigest()}"


def _names(jobs: list[Job]) -> str:
    shown = ", ".join(j.name for j in jobs[:_SHOWN])
    return shown + (f", … and {len(jobs) - _SHOWN} more" if len(jobs) > _SHOWN else "")


class DeleteJobs:
    """DESTRUCTIVE: deletes the matching jobs (their pods go too, in the background)."""

    spec = ToolSpec("kube.delete_jobs",
                    "Delete the Jobs in a namespace that match a label selector (their pods "
                    "are removed in the background). Only the jobs that matched at approval "
                    "time are deleted.", DeleteJobsArgs, Effect.DESTRUCTIVE)

    def __init__(self, client: KubeClient) -> None:
        self.client = client

    def _delete(self, api: KubeApi, namespace: str, job: Job, *, dry_run: bool) -> Any:
        # The uid precondition: never delete a same-named job created after the snapshot.
        body = k8s.V1DeleteOptions(preconditions=k8s.V1Preconditions(uid=job.uid))
        what = f"{self.spec.name}: dry run" if dry_run else self.spec.name
        return api.call(what, api.batch.delete_namespaced_job, job.name, namespace,
                        body=body, propagation_policy="Background",
                        dry_run="All" if dry_run else None)

    def preview(self, args: BaseModel) -> Preview:
        a = coerce(DeleteJobsArgs, args)
        api = self.client.reader
        jobs = matching(api, self.spec.name, a.namespace, a.label_selector)
        for job in jobs:
            self._delete(api, a.namespace, job, dry_run=True)
        active = sum(1 for j in jobs if j.active)
        if jobs:
            summary = (f"delete {len(jobs)} jobs in {a.namespace} matching {a.label_selector}: "
                       f"{_names(jobs)} ({active} still running)")
        else:
            summary = f"no jobs in {a.namespace} match {a.label_selector}; nothing to delete"
        diff = ""
        if jobs:
            where = f"jobs in {a.namespace} matching {a.label_selector}"
            diff = f"--- {where} (current)\n+++ {where} (proposed)\n" + "".join(
                f"-job {j.name}{' (running)' if j.active else ''}\n" for j in jobs)
        return Preview(summary=summary, diff=diff,
                       current={"jobs": len(jobs), "active": active,
                                "names": [j.name for j in jobs]},
                       proposed={"jobs": 0, "names": []})

    def snapshot(self, args: BaseModel) -> str:
        a = coerce(DeleteJobsArgs, args)
        jobs = matching(self.client.reader, self.spec.name, a.namespace, a.label_selector)
        return fingerprint(a.namespace, a.label_selector, jobs)

    def execute(self, args: BaseModel, *, action_id: str, approved_by: list[str],
                snapshot: str) -> ToolResult:
        name = self.spec.name
        try:
            a = coerce(DeleteJobsArgs, args)
            action_id = one_line("action_id", action_id)
            approvers = checked_approvers(approved_by)
        except ValidationError as exc:
            return ToolResult.fail(f"{name}: invalid arguments: {exc}")
        except KubeRefused as exc:
            return ToolResult.fail(f"{name}: {exc.message}")
        with self.client.writer(action_id) as api:
            try:
                jobs = matching(api, name, a.namespace, a.label_selector)
            except KubeError as exc:
                return ToolResult.fail(exc.message, action_id=action_id, **exc.details)
            now = fingerprint(a.namespace, a.label_selector, jobs)
            if now != snapshot:
                return ToolResult.fail(
                    f"stale: the jobs in {a.namespace} matching {a.label_selector} changed "
                    f"since the proposal ({len(jobs)} match now: {_names(jobs) or 'none'}); "
                    "a fresh proposal is needed",
                    snapshot=snapshot, current=now, names=[j.name for j in jobs],
                    action_id=action_id)
            deleted, gone, errors = [], [], []
            for job in jobs:
                try:
                    self._delete(api, a.namespace, job, dry_run=False)
                    deleted.append(job.name)
                except KubeApiError as exc:
                    if exc.not_found:
                        gone.append(job.name)  # finished and cleaned up meanwhile: same outcome
                    else:
                        errors.append(exc.message)
                except KubeError as exc:
                    errors.append(exc.message)
        data = {"namespace": a.namespace, "label_selector": a.label_selector,
                "deleted": len(deleted), "names": deleted, "already_gone": gone,
                "action_id": action_id, "approved_by": approvers}
        if errors:
            return ToolResult.fail(f"{name}: {len(errors)} of {len(jobs)} deletions failed: "
                                   + "; ".join(errors[:5]), errors=errors, **data)
        return ToolResult.ok(**data)

    def reconcile(self, action_id: str) -> bool | None:
        return None  # deleted jobs leave no record that names the action

    def inverse(self, args: BaseModel, before: Preview) -> tuple[str, dict[str, Any]] | None:
        return None  # a deleted job cannot be restored
