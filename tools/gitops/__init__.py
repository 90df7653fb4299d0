"""GitOps tools: the LLM app's prompts, flags, model aliases and limits in a Git repository."""

from __future__ import annotations

from tools.gitops.bootstrap import SAMPLE_DIR, open_gitops_repo, seed_sample_repo
from tools.gitops.errors import GitCommandError, GitOpsError, GitOpsRefused
from tools.gitops.read_tools import DiffPrompt, GetConfig, GetFlags, ListPromptVersions
from tools.gitops.repo import NULL_OID, GitOpsRepo, Identity
from tools.gitops.write_tools import (
    BlockUser,
    PublishPostmortem,
    RollbackPrompt,
    SetFlag,
    SetModelAlias,
    SetRateLimit,
)
from tools.registry import Tool

__all__ = [
    "NULL_OID",
    "SAMPLE_DIR",
    "GitCommandError",
    "GitOpsError",
    "GitOpsRefused",
    "GitOpsRepo",
    "Identity",
    "gitops_tools",
    "open_gitops_repo",
    "seed_sample_repo",
]


def gitops_tools(repo: GitOpsRepo) -> list[Tool]:
    """The ten GitOps tools on `repo`: four READ, six WRITE."""
    return [
        ListPromptVersions(repo), DiffPrompt(repo), GetFlags(repo), GetConfig(repo),
        RollbackPrompt(repo), SetFlag(repo), SetModelAlias(repo), SetRateLimit(repo),
        BlockUser(repo), PublishPostmortem(repo),
    ]
