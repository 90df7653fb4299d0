"""Prompt history: the versions of a file, how a version is named, and unified diffs."""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import Any

from tools.gitops.errors import GitOpsRefused
from tools.gitops.repo import CommitInfo, GitOpsRepo


@dataclass(frozen=True, slots=True)
class Version:
    """The file as one commit left it; content None when that commit deleted it."""

    number: int  # 1 = the oldest commit touching the file
    commit: CommitInfo
    content: bytes | None

    @property
    def first_line(self) -> str:
        return first_line(self.content)

    def describe(self) -> dict[str, Any]:
        return {"version": self.number, "commit": self.commit.sha, "short": self.commit.short,
                "subject": self.commit.subject, "first_line": self.first_line}


def first_line(content: bytes | None) -> str:
    lines = (content or b"").decode("utf-8", errors="replace").splitlines()
    return lines[0] if lines else ""


def versions(repo: GitOpsRepo, path: str) -> list[Version]:
    """Every commit on the branch touching `path`, newest first, with the content it left."""
    commits = repo.log(path)
    contents = repo.read_many([(c.sha, path) for c in commits])
    return [Version(len(commits) - i, c, body)
            for i, (c, body) in enumerate(zip(commits, contents, strict=True))]


def by_subject(path: str, found: list[Version], subject: str) -> Version:
    """The one version whose commit subject is exactly `subject`."""
    matches = [v for v in found if v.commit.subject == subject]
    if not matches:
        known = "; ".join(f"{v.commit.short} {v.commit.subject!r}" for v in found[:10])
        raise GitOpsRefused(f"no commit touching {path} has the subject {subject!r} "
                            f"(versions, newest first: {known or 'none'})")
    if len(matches) > 1:
        shas = ", ".join(v.commit.short for v in matches)
        raise GitOpsRefused(f"{len(matches)} commits touching {path} have the subject "
                            f"{subject!r} ({shas}); name one by commit id")
    return matches[0]


def resolve(repo: GitOpsRepo, path: str, found: list[Version], spec: str) -> tuple[str, str]:
    """(commit id, label) for a version named by HEAD, exact subject, v<N> or commit id."""
    if spec in ("HEAD", repo.branch):
        return repo.head(), spec
    if any(v.commit.subject == spec for v in found):
        v = by_subject(path, found, spec)
        return v.commit.sha, f"v{v.number} {v.commit.short}"
    m = re.fullmatch(r"[vV](\d+)", spec)
    if m:
        for v in found:
            if v.number == int(m.group(1)):
                return v.commit.sha, f"v{v.number} {v.commit.short}"
        raise GitOpsRefused(f"{path} has {len(found)} versions; there is no {spec}")
    for v in found:
        if re.fullmatch(r"[0-9a-fA-F]{4,64}", spec) and v.commit.sha.startswith(spec.lower()):
            return v.commit.sha, f"v{v.number} {v.commit.short}"
    sha = repo.resolve_on_branch(spec)
    if sha is None:
        raise GitOpsRefused(f"no version {spec!r} of {path}: name one by commit id, exact "
                            f"commit subject, v<N> or HEAD")
    return sha, sha[:7]


def unified_diff(path: str, old: bytes | None, new: bytes | None,
                 old_label: str | None = None, new_label: str | None = None) -> str:
    """A unified diff of two versions of a file, as `git diff` would show the lines."""
    a = _lines(old)
    b = _lines(new)
    out = difflib.unified_diff(a, b, fromfile=f"a/{path}" if old_label is None else old_label,
                               tofile=f"b/{path}" if new_label is None else new_label)
    text = []
    for line in out:
        text.append(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n")
    return "".join(text)


def _lines(content: bytes | None) -> list[str]:
    if content is None:
        return []
    return content.decode("utf-8", errors="replace").splitlines(keepends=True)
