"""Builds the tool registry from settings (the tool families that are configured)."""

from __future__ import annotations

from core.settings import Settings
from tools.cache import cache_tools
from tools.gitops import gitops_tools
from tools.gitops.bootstrap import open_gitops_repo
from tools.registry import ToolRegistry


def build_registry(settings: Settings) -> ToolRegistry:
    repo = open_gitops_repo(settings.data_dir, remote=settings.gitops_repo,
                            branch=settings.gitops_branch)
    registry = ToolRegistry(gitops_tools(repo))
    if settings.redis_url:
        for tool in cache_tools(settings.redis_url):
            registry.register(tool)
    return registry
