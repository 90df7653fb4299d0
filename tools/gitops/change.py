"""The write path every GitOps write tool shares: plan, snapshot, stale check, one commit, push."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from tools.base import Preview, ToolResult, ToolSpec
from tools.gitops.errors import GitOpsError, GitOpsRefused
from tools.gitops.history import unified_diff
from tools.gitops.read_tools import coerce
from tools.gitops.repo import NULL_OID, GitOpsRepo

A = TypeVar("A", bound=BaseModel)
ACTION_TRAILER = "Metaops-Action-Id"
APPROVER_TRAILER = "Approved-By"


@dataclass(frozen=True, slots=True)
class Plan:
    """One file's change as the branch head stands: bytes before and after, and the words."""

    path: str
    old: bytes | None
    new: bytes
    subject: str  # the commit subject
    summary: str  # for humans, e.g. "refund-tool: on → off"
    current: Any
    proposed: Any

    @property
    def changed(self) -> bool:
        return self.old != self.new


def trailer_value(what: str, value: str) -> str:
    """A value safe to put in a commit trailer: one non-empty line."""
    text = value.strip()
    if not text or len(text) > 500 or any(c in text for c in "\r\n\x00"):
        raise GitOpsRefused(f"{what} must be one non-empty line of at most 500 characters, "
                            f"not {value!r}")
    return text


def commit_message(subject: str, tool: str, action_id: str, approvers: list[str]) -> str:
    trailers = [f"{ACTION_TRAILER}: {action_id}"]
    trailers += [f"{APPROVER_TRAILER}: {name}" for name in approvers]
    return f"{subject}\n\nApplied by metaops ({tool}).\n\n" + "\n".join(trailers) + "\n"


class GitOpsWriteTool(Generic[A]):
    """Subclasses name the file (`target`), compute the change (`plan`) and its undo (`undo`).

    execute(): under the repo's write lock, sync with the remote, return `already_applied` if
    a commit carries this action id, refuse `stale:` (with the diff) if the file's blob is not
    the snapshot, else write one commit (trailers Metaops-Action-Id and one Approved-By per
    approver), move the branch by compare-and-set and push. A rejected push resets the clone
    to the remote and fails the action; if the remote merely moved on (non-fast-forward) the
    whole attempt, snapshot check included, is repeated up to `max_attempts` times.
    preview() and snapshot() raise GitOpsRefused for a request that cannot apply (unknown
    flag...) and GitCommandError when git fails.
    """

    spec: ToolSpec
    args_model: type[A]

    def __init__(self, repo: GitOpsRepo, *, max_attempts: int = 3) -> None:
        self.repo = repo
        self.max_attempts = max_attempts

    # -- what subclasses provide ---------------------------------------------------------------

    def target(self, args: A) -> str:
        raise NotImplementedError

    def plan(self, args: A, head: str) -> Plan:
        raise NotImplementedError

    def undo(self, args: A, before: Preview) -> tuple[str, dict[str, Any]] | None:
        raise NotImplementedError

    # -- the WriteTool protocol ----------------------------------------------------------------

    def preview(self, args: BaseModel) -> Preview:
        parsed = coerce(self.args_model, args)
        self.repo.refresh()
        plan = self.plan(parsed, self.repo.head())
        diff = unified_diff(plan.path, plan.old, plan.new) if plan.changed else ""
        return Preview(summary=plan.summary, diff=diff, current=plan.current,
                       proposed=plan.proposed)

    def snapshot(self, args: BaseModel) -> str:
        """The blob id of the target file at the branch head (NULL_OID if it is absent)."""
        parsed = coerce(self.args_model, args)
        self.repo.refresh(max_age=0)
        return self.repo.blob_id(self.target(parsed))

    def inverse(self, args: BaseModel, before: Preview) -> tuple[str, dict[str, Any]] | None:
        return self.undo(coerce(self.args_model, args), before)

    def reconcile(self, action_id: str) -> bool | None:
        """True if a commit on the branch (the remote's, when there is one) carries the action
        id; None if the repository cannot be read."""
        try:
            action_id = trailer_value("action_id", action_id)
            with self.repo.write_lock():
                self.repo.sync()
                return self.repo.find_action(action_id) is not None
        except GitOpsRefused:
            return False
        except GitOpsError:
            return None

    def execute(self, args: BaseModel, *, action_id: str, approved_by: list[str],
                snapshot: str) -> ToolResult:
        name = self.spec.name
        try:
            parsed = coerce(self.args_model, args)
            action_id = trailer_value("action_id", action_id)
            approvers = list(dict.fromkeys(trailer_value("approver", a) for a in approved_by))
            if not approvers:
                raise GitOpsRefused("no approver given; every change needs at least one")
        except ValidationError as exc:
            return ToolResult.fail(f"{name}: invalid arguments: {exc}")
        except GitOpsRefused as exc:
            return ToolResult.fail(f"{name}: {exc.message}")
        try:
            for attempt in range(1, self.max_attempts + 1):
                with self.repo.write_lock():
                    result = self._attempt(parsed, action_id, approvers, snapshot,
                                           last=attempt == self.max_attempts)
                if result is not None:
                    return result
        except GitOpsError as exc:
            return ToolResult.fail(f"{name}: {exc.message}", action_id=action_id)
        raise AssertionError("unreachable: the last attempt always returns")  # pragma: no cover

    # -- internals -----------------------------------------------------------------------------

    def _attempt(self, args: A, action_id: str, approvers: list[str], snapshot: str, *,
                 last: bool) -> ToolResult | None:
        """One try under the write lock; None means: the remote moved on, try again."""
        repo = self.repo
        repo.sync()
        path = self.target(args)
        done = repo.find_action(action_id)
        if done is not None:
            return ToolResult.ok(already_applied=True, commit=done, path=path,
                                 pushed=repo.remote is not None, action_id=action_id)
        head = repo.head()
        current = repo.blob_id(path, head)
        if current != snapshot:
            return self._stale(path, snapshot, current)
        plan = self.plan(args, head)
        message = commit_message(plan.subject, self.spec.name, action_id, approvers)
        commit = repo.make_commit({path: plan.new}, message, head)
        repo.advance(commit, head, [path], reason=f"metaops {self.spec.name} {action_id}")
        if repo.remote is not None:
            outcome = repo.push(commit)
            if not outcome.ok:
                repo.discard_unpushed()
                if outcome.retryable and not last:
                    return None
                return ToolResult.fail(
                    f"{self.spec.name}: push rejected, nothing was applied and the clone is "
                    f"back at {repo.remote}/{repo.branch}: {outcome.error}",
                    action_id=action_id, discarded_commit=commit)
        return ToolResult.ok(already_applied=False, commit=commit, path=path,
                             subject=plan.subject, summary=plan.summary, changed=plan.changed,
                             pushed=repo.remote is not None, action_id=action_id,
                             approved_by=approvers)

    def _stale(self, path: str, snapshot: str, current: str) -> ToolResult:
        repo = self.repo
        old = repo.read_blob(snapshot)
        new = repo.read_blob(current)
        note = ""
        if old is None and snapshot != NULL_OID:
            note = f"(the snapshot blob {snapshot!r} is not in the repository)\n"
        diff = unified_diff(path, old, new, f"a/{path} (snapshot {snapshot[:12]})",
                            f"b/{path} ({repo.branch} {current[:12]})")
        return ToolResult.fail(
            f"stale: {path} changed since the snapshot (blob {snapshot[:12]} → {current[:12]} "
            f"on {repo.branch}); a fresh proposal is needed\n{note}{diff}",
            path=path, snapshot=snapshot, current=current, diff=diff)
