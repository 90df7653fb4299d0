"""Where the GitOps repo comes from: the seeded ShopPal sample, or a clone of the remote."""

from __future__ import annotations

import json
import shutil
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

from tools.gitops.errors import GitOpsError, redact_url
from tools.gitops.repo import (
    METAOPS_IDENTITY,
    Git,
    GitOpsRepo,
    Identity,
    check_branch_name,
    run_git,
    utc,
)

SAMPLE_DIR = Path(__file__).parent / "sample"
SAMPLE_SUBJECT = "ShopPal sample config"
REMOTE_NAME = "origin"


def open_gitops_repo(data_dir: Path, *, remote: str | None = None, branch: str = "main",
                     sample_dir: Path = SAMPLE_DIR, **options: Any) -> GitOpsRepo:
    """The repo under `<data_dir>/gitops`.

    Without `remote` (the embedded default) it is seeded with the sample on first start and used
    as is. With `remote` (METAOPS_GITOPS_REPO: a URL or a path) it is a clone of that remote,
    made on first start, fetched and reset to `<remote>/<branch>` on later starts, and every
    write is pushed. `options` go to GitOpsRepo (timeouts, identity, fetch_interval...).
    """
    check_branch_name(branch)
    dest = Path(data_dir) / "gitops"
    if remote is None:
        if not (dest / ".git").exists():
            seed_sample_repo(dest, branch=branch, sample_dir=sample_dir)
        remotes = run_git(["remote"], cwd=dest).stdout.decode().split()
        if remotes:  # a clone made while METAOPS_GITOPS_REPO was set: do not fork it silently
            url = run_git(["remote", "get-url", remotes[0]], cwd=dest).stdout.decode().strip()
            raise GitOpsError(
                f"{dest} is a clone of {redact_url(url)} but no remote is configured; set "
                "METAOPS_GITOPS_REPO to it, or move the folder away to get the embedded sample")
        return GitOpsRepo(dest, branch=branch, **options)
    timeout = float(options.get("network_timeout", 120.0))
    if not (dest / ".git").exists():
        clone_repo(remote, dest, branch=branch, timeout=timeout)
    else:
        current = run_git(["remote", "get-url", REMOTE_NAME], cwd=dest,
                          ok_codes=(0, 2)).stdout.decode().strip()
        if not _same_remote(current, remote):
            raise GitOpsError(
                f"{dest} already holds a repository whose {REMOTE_NAME!r} is "
                f"{redact_url(current) or 'not set'}, not {redact_url(remote)}; move it away "
                "or point METAOPS_DATA_DIR elsewhere")
    repo = GitOpsRepo(dest, branch=branch, remote=REMOTE_NAME, **options)
    with repo.write_lock():
        repo.sync()
    return repo


def _same_remote(current: str, configured: str) -> bool:
    """Equal URLs, or two spellings of one local path (git stores a cloned path absolute)."""
    if current == configured:
        return True
    if "://" in configured or not current or not Path(configured).exists():
        return False
    return Path(current).resolve() == Path(configured).resolve()


def clone_repo(source: str, dest: Path, *, branch: str, timeout: float = 120.0) -> None:
    """Clone `source` (URL or path) into `dest` through a temporary sibling folder."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".gitops-clone-", dir=dest.parent))
    try:
        run_git(["clone", "--quiet", "--no-tags", "--single-branch", "--branch", branch,
                 "--origin", REMOTE_NAME, "--", source, str(tmp / "repo")], timeout=timeout)
        _install(tmp / "repo", dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def seed_sample_repo(dest: Path, *, branch: str = "main", sample_dir: Path = SAMPLE_DIR) -> None:
    """Create `dest` as a repo holding the sample files, replaying `history.json` as commits.

    The first history commit also adds every file the history does not mention; each history
    entry is one commit by its author at its date (author = committer, so ids are
    deterministic). If the replay does not end at the sample's files, one more commit makes it.
    """
    history: list[dict[str, str]] = json.loads((sample_dir / "history.json").read_text("utf-8"))
    files = {p.relative_to(sample_dir).as_posix(): p.read_bytes()
             for p in sorted(sample_dir.rglob("*")) if p.is_file() and p.name != "history.json"}
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".gitops-seed-", dir=dest.parent))
    try:
        work = tmp / "repo"
        run_git(["init", "--quiet", "--initial-branch", branch, str(work)])
        repo = Git(work)
        parent: str | None = None
        tree: dict[str, bytes] = {}
        for i, entry in enumerate(history):
            changes = {p: c for p, c in files.items()
                       if i == 0 and p not in {h["path"] for h in history}}
            changes[entry["path"]] = entry["content"].encode()
            tree.update(changes)
            parent = repo.make_commit(changes, entry["message"].rstrip("\n") + "\n", parent,
                                      identity=Identity.parse(entry["author"]),
                                      when=utc(entry["at"]))
        rest = {p: c for p, c in files.items() if tree.get(p) != c}
        if rest or parent is None:
            when = (utc(history[-1]["at"]) + timedelta(minutes=1) if history
                    else utc("2026-01-01T00:00:00Z"))
            parent = repo.make_commit(rest, SAMPLE_SUBJECT + "\n", parent,
                                      identity=METAOPS_IDENTITY, when=when)
        run_git(["update-ref", f"refs/heads/{branch}", parent], cwd=work)
        run_git(["reset", "--quiet", "--hard"], cwd=work)
        _install(work, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _install(src: Path, dest: Path) -> None:
    """Move a finished repo into place; if another process got there first, keep theirs."""
    if dest.exists() and any(dest.iterdir()):
        if (dest / ".git").exists():
            return
        raise GitOpsError(f"{dest} exists and is not a git repository; move it away")
    if dest.exists():
        dest.rmdir()
    try:
        src.rename(dest)
    except OSError:
        if not (dest / ".git").exists():
            raise
