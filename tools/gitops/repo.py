"""The GitOps repository handle: the git CLI, serialised compare-and-set commits, fetch and push."""

from __future__ import annotations

import fcntl
import os
import re
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from tools.gitops.errors import GitCommandError, GitOpsError

NULL_OID = "0" * 40
# Variables that would point git at another repository, index or object store than ours.
_REPO_ENV = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY",
             "GIT_ALTERNATE_OBJECT_DIRECTORIES", "GIT_NAMESPACE", "GIT_COMMON_DIR", "GIT_PREFIX")
_NON_FAST_FORWARD = ("fetch first", "non-fast-forward", "stale info")
_BRANCH = re.compile(r"^(?!-)(?!.*\.\.)[A-Za-z0-9._/-]{1,200}(?<![./])$")


@dataclass(frozen=True, slots=True)
class Identity:
    """Who a commit is by (author and committer)."""

    name: str
    email: str

    @classmethod
    def parse(cls, text: str) -> Identity:
        """'Name <email>' or a bare email (the name is then its local part)."""
        m = re.fullmatch(r"\s*(.*?)\s*<([^<>]+)>\s*", text)
        if m:
            return cls(m.group(1) or m.group(2).split("@", maxsplit=1)[0], m.group(2))
        return cls(text.split("@", maxsplit=1)[0] or text, text)


METAOPS_IDENTITY = Identity("metaops", "metaops@localhost")


@dataclass(frozen=True, slots=True)
class CommitInfo:
    sha: str
    short: str
    date: str  # author date, ISO 8601
    author: str
    subject: str


@dataclass(frozen=True, slots=True)
class TreeEntry:
    mode: str
    type: str
    oid: str


@dataclass(frozen=True, slots=True)
class PushOutcome:
    ok: bool
    retryable: bool = False  # the remote moved on (non-fast-forward): sync and try again
    error: str = ""


def git_env(identity: Identity | None = None, when: datetime | None = None) -> dict[str, str]:
    """The environment for a git child process: never prompts, C locale, our identity and date."""
    env = {k: v for k, v in os.environ.items() if k not in _REPO_ENV}
    env.update(GIT_TERMINAL_PROMPT="0", LC_ALL="C", LANGUAGE="C", GIT_ASKPASS="/bin/false",
               GCM_INTERACTIVE="never")
    if identity is not None:
        env.update(GIT_AUTHOR_NAME=identity.name, GIT_AUTHOR_EMAIL=identity.email,
                   GIT_COMMITTER_NAME=identity.name, GIT_COMMITTER_EMAIL=identity.email)
    if when is not None:
        stamp = f"{int(when.timestamp())} +0000"
        env.update(GIT_AUTHOR_DATE=stamp, GIT_COMMITTER_DATE=stamp)
    return env


def run_git(args: Sequence[str], *, cwd: Path | None = None, input: bytes | None = None,
            timeout: float = 30.0, env: Mapping[str, str] | None = None,
            ok_codes: Sequence[int] = (0,)) -> subprocess.CompletedProcess[bytes]:
    """Run `git <args>`; raise GitCommandError (command + stderr) on failure or timeout."""
    argv = ["git", *args]
    shown = argv if cwd is None else ["git", "-C", str(cwd), *args]
    try:
        proc = subprocess.run(argv, cwd=cwd, input=input, capture_output=True, timeout=timeout,
                              env=dict(env) if env is not None else git_env(), check=False)
    except subprocess.TimeoutExpired as exc:
        stderr = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else ""
        raise GitCommandError(shown, None, f"after {timeout:g}s. {stderr}") from None
    except OSError as exc:
        raise GitCommandError(shown, -1, str(exc)) from None
    if proc.returncode not in ok_codes:
        raise GitCommandError(shown, proc.returncode, proc.stderr.decode(errors="replace"),
                              proc.stdout.decode(errors="replace"))
    return proc


def check_branch_name(branch: str) -> str:
    if not _BRANCH.match(branch) or branch.endswith(".lock") or "//" in branch:
        raise GitOpsError(f"invalid branch name {branch!r}")
    return branch


class Git:
    """Plumbing on one working tree: run git there, read trees and blobs, write commit objects."""

    def __init__(self, path: Path, *, identity: Identity = METAOPS_IDENTITY,
                 timeout: float = 30.0) -> None:
        self.path = Path(path).resolve()
        self.identity = identity
        self.timeout = timeout
        if not self.path.is_dir():
            raise GitOpsError(f"GitOps repository {self.path} does not exist")
        self.git_dir = Path(self.text("rev-parse", "--absolute-git-dir"))

    def git(self, *args: str, input: bytes | None = None, timeout: float | None = None,
            env: Mapping[str, str] | None = None,
            ok_codes: Sequence[int] = (0,)) -> subprocess.CompletedProcess[bytes]:
        return run_git(args, cwd=self.path, input=input, timeout=timeout or self.timeout,
                       env=env, ok_codes=ok_codes)

    def text(self, *args: str, input: bytes | None = None) -> str:
        return self.git(*args, input=input).stdout.decode().rstrip("\n")

    def entry(self, commit: str, path: str) -> TreeEntry | None:
        """The tree entry of `path` at `commit`, or None if there is none."""
        out = self.git("ls-tree", "-z", "--full-tree", commit, "--", path).stdout.decode()
        for record in out.split("\0"):
            if not record:
                continue
            meta, _, name = record.partition("\t")
            if name == path:
                mode, kind, oid = meta.split()
                return TreeEntry(mode, kind, oid)
        return None

    def make_commit(self, changes: Mapping[str, bytes], message: str, parent: str | None, *,
                    identity: Identity | None = None, when: datetime | None = None) -> str:
        """Write a commit object: `parent`'s tree with `changes` applied. Moves no ref."""
        index = self.git_dir / f"metaops-index-{uuid.uuid4().hex}"
        env = {**git_env(), "GIT_INDEX_FILE": str(index)}
        try:
            if parent is not None:
                self.git("read-tree", parent, env=env)
            for path, content in changes.items():
                blob = self.text("hash-object", "-w", "--no-filters", "--stdin", input=content)
                old = self.entry(parent, path) if parent is not None else None
                mode = old.mode if old is not None and old.type == "blob" else "100644"
                self.git("update-index", "--add", "--cacheinfo", f"{mode},{blob},{path}", env=env)
            tree = self.git("write-tree", env=env).stdout.decode().strip()
        finally:
            with suppress(FileNotFoundError):
                index.unlink()
        args = ["commit-tree", tree]
        if parent is not None:
            args += ["-p", parent]
        cenv = git_env(identity or self.identity, when)
        return self.git(*args, "-F", "-", input=message.encode(), env=cenv).stdout.decode().strip()


class GitOpsRepo(Git):
    """An existing working tree on `branch`; with `remote` (a remote name such as "origin") every
    write is synced from and pushed to that remote.

    Writes are serialised by a per-handle lock plus an flock on a file inside .git (so two
    processes sharing the directory also take turns), and land by compare-and-set of the branch
    ref (`git update-ref <ref> <new> <old>`), so git itself refuses a lost update.
    """

    def __init__(self, path: Path, *, branch: str = "main", remote: str | None = None,
                 identity: Identity = METAOPS_IDENTITY, timeout: float = 30.0,
                 network_timeout: float = 120.0, fetch_interval: float = 5.0,
                 lock_timeout: float = 60.0) -> None:
        super().__init__(path, identity=identity, timeout=timeout)
        self.branch = check_branch_name(branch)
        self.ref = f"refs/heads/{branch}"
        self.remote = remote
        self.network_timeout = network_timeout
        self.fetch_interval = fetch_interval
        self.lock_timeout = lock_timeout
        self._lock = threading.RLock()
        self._depth = 0
        self._flock_file: IO[str] | None = None
        self._last_fetch = float("-inf")
        if remote is not None:
            self.remote_ref = f"refs/remotes/{remote}/{branch}"
            self.text("remote", "get-url", remote)
        else:
            self.remote_ref = ""
        if remote is None and self.rev(self.ref) is None:  # a clone gets it from sync()
            raise GitOpsError(f"GitOps repository {self.path} has no branch {branch!r}")

    def __repr__(self) -> str:
        return f"GitOpsRepo({str(self.path)!r}, branch={self.branch!r}, remote={self.remote!r})"

    # -- locking -------------------------------------------------------------------------------

    @contextmanager
    def write_lock(self) -> Iterator[None]:
        """Re-entrant: the thread lock, then (outermost only) an flock on .git/metaops.lock."""
        if not self._lock.acquire(timeout=self.lock_timeout):
            raise GitOpsError(f"timed out after {self.lock_timeout:g}s waiting for the "
                              f"write lock of {self.path}")
        try:
            if self._depth == 0:
                self._flock_file = self._acquire_flock()
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
                if self._depth == 0 and self._flock_file is not None:
                    fcntl.flock(self._flock_file, fcntl.LOCK_UN)
                    self._flock_file.close()
                    self._flock_file = None
        finally:
            self._lock.release()

    def _acquire_flock(self) -> IO[str]:
        handle = (self.git_dir / "metaops.lock").open("a")
        deadline = time.monotonic() + self.lock_timeout
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return handle
            except BlockingIOError:
                if time.monotonic() > deadline:
                    handle.close()
                    raise GitOpsError(f"timed out after {self.lock_timeout:g}s waiting for "
                                      f"{self.git_dir / 'metaops.lock'}") from None
                time.sleep(0.02)

    # -- reading -------------------------------------------------------------------------------

    def rev(self, rev: str) -> str | None:
        """The commit id `rev` names, or None."""
        if rev.startswith("-"):
            return None
        out = self.git("rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}",
                       ok_codes=(0, 1)).stdout.decode().strip()
        return out or None

    def head(self) -> str:
        sha = self.rev(self.ref)
        if sha is None:
            raise GitOpsError(f"branch {self.branch!r} is missing in {self.path}")
        return sha

    def blob_id(self, path: str, commit: str | None = None) -> str:
        """The blob id of `path` at `commit` (default: the branch head); NULL_OID if absent."""
        found = self.entry(commit or self.head(), path)
        return found.oid if found is not None and found.type == "blob" else NULL_OID

    def read_blob(self, oid: str) -> bytes | None:
        if oid == NULL_OID or not re.fullmatch(r"[0-9a-f]{4,64}", oid):
            return None
        proc = self.git("cat-file", "blob", oid, ok_codes=(0, 1, 128))
        return proc.stdout if proc.returncode == 0 else None

    def read(self, path: str, commit: str | None = None) -> bytes | None:
        """The content of `path` at `commit` (default: the branch head), None if absent."""
        found = self.entry(commit or self.head(), path)
        if found is None or found.type != "blob":
            return None
        return self.read_blob(found.oid)

    def read_many(self, specs: Sequence[tuple[str, str]]) -> list[bytes | None]:
        """Contents of many (commit, path) pairs in one `git cat-file --batch`."""
        if not specs:
            return []
        stdin = "".join(f"{commit}:{path}\n" for commit, path in specs).encode()
        out = self.git("cat-file", "--batch", input=stdin).stdout
        results: list[bytes | None] = []
        pos = 0
        for _ in specs:
            eol = out.index(b"\n", pos)
            header = out[pos:eol].split()
            pos = eol + 1
            if len(header) == 3 and header[1] == b"blob":
                size = int(header[2])
                results.append(out[pos:pos + size])
                pos += size + 1
            elif len(header) == 3:  # a tree or commit: skip its body
                pos += int(header[2]) + 1
                results.append(None)
            else:  # "<spec> missing"
                results.append(None)
        return results

    def log(self, path: str | None = None, *, max_count: int | None = None,
            grep: str | None = None) -> list[CommitInfo]:
        """Commits on the branch, newest first, optionally only those touching `path`."""
        args = ["log", "--format=%H%x1f%h%x1f%aI%x1f%an <%ae>%x1f%s%x1e"]
        if max_count is not None:
            args.append(f"--max-count={max_count}")
        if grep is not None:
            args += ["--fixed-strings", f"--grep={grep}"]
        args.append(self.ref)
        if path is not None:
            args += ["--", path]
        out = self.git(*args).stdout.decode(errors="replace")
        commits = []
        for raw in out.split("\x1e"):
            record = raw.strip("\n")
            if record:
                sha, short, date, author, subject = record.split("\x1f")
                commits.append(CommitInfo(sha, short, date, author, subject))
        return commits

    def find_action(self, action_id: str) -> str | None:
        """The commit on the branch whose Metaops-Action-Id trailer is exactly `action_id`."""
        fmt = "--format=%H%x1f%(trailers:key=Metaops-Action-Id,valueonly,separator=%x1f)%x1e"
        out = self.git("log", fmt, "--fixed-strings", f"--grep={action_id}",
                       self.ref).stdout.decode(errors="replace")
        for record in out.split("\x1e"):
            fields = [f.strip() for f in record.strip("\n").split("\x1f")]
            if len(fields) > 1 and action_id in fields[1:]:
                return fields[0]
        return None

    def is_ancestor(self, commit: str, of: str) -> bool:
        return self.git("merge-base", "--is-ancestor", commit, of,
                        ok_codes=(0, 1)).returncode == 0

    def resolve_on_branch(self, rev: str) -> str | None:
        """The commit `rev` (a hex id or prefix) names, if it is on the branch."""
        if not re.fullmatch(r"[0-9a-fA-F]{4,64}", rev):
            return None
        sha = self.rev(rev.lower())
        return sha if sha is not None and self.is_ancestor(sha, self.ref) else None

    def is_clean(self) -> bool:
        return not self.git("status", "--porcelain", "--untracked-files=all").stdout.strip()

    def checked_out(self) -> bool:
        """Whether the working tree has our branch checked out."""
        proc = self.git("symbolic-ref", "--quiet", "HEAD", ok_codes=(0, 1))
        return proc.stdout.decode().strip() == self.ref

    # -- writing (callers hold write_lock) -----------------------------------------------------

    def advance(self, new: str, old: str | None, paths: Sequence[str] = (),
                reason: str = "metaops") -> None:
        """Move the branch from `old` to `new` (compare-and-set), then refresh `paths` on disk."""
        self.git("update-ref", "-m", reason, self.ref, new, old or NULL_OID)
        if paths and self.checked_out():
            self.git("checkout", "--quiet", new, "--", *paths)

    def sync(self) -> None:
        """With a remote: fetch it and make the branch, index and files equal to it."""
        if self.remote is None:
            return
        self.fetch()
        self.reset_to_remote()

    def refresh(self, max_age: float | None = None) -> None:
        """Sync unless the last fetch is younger than `max_age` (default fetch_interval)."""
        if self.remote is None:
            return
        age = time.monotonic() - self._last_fetch
        if age >= (self.fetch_interval if max_age is None else max_age):
            with self.write_lock():
                self.sync()

    def fetch(self) -> None:
        assert self.remote is not None
        self.git("fetch", "--quiet", "--no-tags", self.remote,
                 f"+{self.ref}:{self.remote_ref}", timeout=self.network_timeout)
        self._last_fetch = time.monotonic()

    def reset_to_remote(self) -> None:
        """Branch, index and files := the remote-tracking branch; untracked files removed."""
        self.git("checkout", "--quiet", "--force", "-B", self.branch, self.remote_ref)
        self.git("clean", "-fdq")

    def push(self, commit: str) -> PushOutcome:
        """Push `commit` to the remote branch; a rejection is an outcome, not an exception."""
        assert self.remote is not None
        try:
            self.git("push", "--porcelain", self.remote, f"{commit}:{self.ref}",
                     timeout=self.network_timeout)
        except GitCommandError as exc:
            # A push that timed out may still have landed: ask the remote before giving up.
            with suppress(GitOpsError):
                self.fetch()
                if self.is_ancestor(commit, self.remote_ref):
                    return PushOutcome(ok=True)
            text = f"{exc.stdout}\n{exc.stderr}"
            retryable = exc.returncode is not None and any(
                line.startswith("!") and any(r in line for r in _NON_FAST_FORWARD)
                for line in text.splitlines())
            return PushOutcome(ok=False, retryable=retryable, error=str(exc))
        self.git("update-ref", self.remote_ref, commit)
        return PushOutcome(ok=True)

    def discard_unpushed(self) -> None:
        """After a failed push: back to the remote's state (fetched again if reachable)."""
        with suppress(GitOpsError):
            self.fetch()
        self.reset_to_remote()


def utc(text: str) -> datetime:
    """Parse an ISO 8601 timestamp ('...Z' allowed) as UTC."""
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
