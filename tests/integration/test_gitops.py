"""GitOps tools against real git repositories: seeding, reads, writes, staleness, push, races."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from tests.support import SCENARIOS
from tools.base import ReadTool, ToolResult, WriteTool
from tools.gitops import (
    SAMPLE_DIR,
    GitCommandError,
    GitOpsError,
    GitOpsRefused,
    GitOpsRepo,
    gitops_tools,
    open_gitops_repo,
)
from tools.gitops.args import (
    BlockUserArgs,
    DiffPromptArgs,
    GetConfigArgs,
    GetFlagsArgs,
    ListPromptVersionsArgs,
    RollbackPromptArgs,
    SetFlagArgs,
    SetModelAliasArgs,
    SetRateLimitArgs,
)
from tools.gitops.repo import PushOutcome
from tools.registry import ToolRegistry

SCENARIO = SCENARIOS / "hallucination-storm"
PROMPT = "prompts/shoppal-system.md"
HISTORY: list[dict[str, str]] = json.loads((SAMPLE_DIR / "history.json").read_text())
V1, V2, V3 = (h["content"] for h in HISTORY)


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(cwd), *args], capture_output=True, text=True,
                          check=True).stdout


def count(cwd: Path, ref: str = "HEAD") -> int:
    return int(git(cwd, "rev-list", "--count", ref))


def human_commit(cwd: Path, path: str, content: str, message: str = "hand edit") -> str:
    """Someone else commits straight into the working tree (not through metaops)."""
    (cwd / path).write_text(content)
    git(cwd, "add", path)
    git(cwd, "-c", "user.name=Hu Man", "-c", "user.email=human@example.com", "commit", "-q",
        "-m", message)
    return git(cwd, "rev-parse", "HEAD").strip()


def trailers(cwd: Path, rev: str = "HEAD") -> list[tuple[str, str]]:
    out = git(cwd, "log", "-1", "--format=%(trailers:only,unfold)", rev)
    return [(k.strip(), v.strip()) for k, _, v in
            (line.partition(":") for line in out.splitlines() if line.strip())]


def read(cwd: Path, path: str, rev: str = "HEAD") -> str:
    return git(cwd, "show", f"{rev}:{path}")


@pytest.fixture
def repo(tmp_path: Path) -> GitOpsRepo:
    return open_gitops_repo(tmp_path / "var")


@pytest.fixture
def registry(repo: GitOpsRepo) -> ToolRegistry:
    return ToolRegistry(gitops_tools(repo))


def write_tool(registry: ToolRegistry, name: str) -> WriteTool:
    tool = registry.get(name)
    assert isinstance(tool, WriteTool)
    return tool


def read_tool(registry: ToolRegistry, name: str) -> ReadTool:
    tool = registry.get(name)
    assert isinstance(tool, ReadTool)
    return tool


def apply(tool: WriteTool, args: BaseModel, action_id: str,
          approvers: list[str] | None = None) -> ToolResult:
    snap = tool.snapshot(args)
    return tool.execute(args, action_id=action_id, approved_by=approvers or ["alice"],
                        snapshot=snap)


def remote_pair(tmp_path: Path) -> tuple[Path, GitOpsRepo]:
    """A bare remote holding the sample, and metaops' clone of it."""
    open_gitops_repo(tmp_path / "seed")
    bare = tmp_path / "remote.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(tmp_path / "seed" / "gitops"), str(bare)],
                   check=True)
    return bare, open_gitops_repo(tmp_path / "var", remote=str(bare), fetch_interval=0)


# -- seeding -------------------------------------------------------------------------------------


def test_seed_reproduces_the_sample_history(repo: GitOpsRepo) -> None:
    log = git(repo.path, "log", "--reverse", "--format=%s|%ae|%aI|%cI").splitlines()
    assert len(log) == len(HISTORY) == count(repo.path)
    for line, entry in zip(log, HISTORY, strict=True):
        subject, email, authored, committed = line.split("|")
        assert subject == entry["message"] and email == entry["author"]
        assert authored == committed == entry["at"].replace(".000000Z", "+00:00")
    for i, entry in enumerate(HISTORY):  # each version's content, oldest first
        assert read(repo.path, entry["path"], f"HEAD~{len(HISTORY) - 1 - i}") == entry["content"]
    scenario_files = sorted(p.relative_to(SCENARIO / "gitops").as_posix()
                            for p in (SCENARIO / "gitops").rglob("*")
                            if p.is_file() and p.name != "history.json")
    assert git(repo.path, "ls-files").split() == scenario_files
    for rel in scenario_files:  # HEAD equals the scenario's files, as is the working tree
        assert read(repo.path, rel) == (SCENARIO / "gitops" / rel).read_text()
        assert (repo.path / rel).read_text() == (SCENARIO / "gitops" / rel).read_text()
    assert repo.is_clean() and repo.branch == "main"


def test_seed_is_deterministic_and_happens_once(tmp_path: Path, repo: GitOpsRepo) -> None:
    other = open_gitops_repo(tmp_path / "other")
    assert other.head() == repo.head()  # fixed authors and dates: identical commit ids
    human_commit(repo.path, "config/limits.yaml", "global_rpm: 5\n")
    again = open_gitops_repo(tmp_path / "var")  # a restart must not re-seed
    assert count(again.path) == len(HISTORY) + 1


def test_seed_on_another_branch(tmp_path: Path) -> None:
    repo = open_gitops_repo(tmp_path / "var", branch="config")
    assert git(repo.path, "symbolic-ref", "HEAD").strip() == "refs/heads/config"
    assert count(repo.path) == len(HISTORY)


# -- READ tools ----------------------------------------------------------------------------------


def test_list_prompt_versions(registry: ToolRegistry, repo: GitOpsRepo) -> None:
    tool = read_tool(registry, "gitops.list_prompt_versions")
    result = tool.run(ListPromptVersionsArgs(path=PROMPT))
    assert result.status == "ok", result.error
    rows = result.data["versions"]
    assert [r["subject"] for r in rows] == [h["message"] for h in reversed(HISTORY)]
    assert [r["version"] for r in rows] == [3, 2, 1]
    assert [r["first_line"] for r in rows] == [h["content"].splitlines()[0]
                                               for h in reversed(HISTORY)]
    assert rows[0]["date"] == "2026-11-27T09:20:00+00:00"
    assert rows[0]["short"] == repo.head()[:7] and rows[0]["author"].endswith(
        "<intern@shop.example>")
    assert result.data["current"]["version"] == 3
    limited = tool.run(ListPromptVersionsArgs(path=PROMPT, limit=1))
    assert len(limited.data["versions"]) == 1 and limited.data["total"] == 3
    none = tool.run(ListPromptVersionsArgs(path="prompts/nope.md"))
    assert none.status == "no_data" and "prompts/nope.md" in (none.error or "")


def test_diff_prompt(registry: ToolRegistry, repo: GitOpsRepo) -> None:
    tool = read_tool(registry, "gitops.diff_prompt")
    by_subject = tool.run(DiffPromptArgs(path=PROMPT,
                                         from_version="shoppal prompt v2: shorter answers"))
    assert by_subject.status == "ok", by_subject.error
    diff = by_subject.data["diff"]
    assert "-Only state policies found in the retrieved documents.\n" in diff
    assert "+Make the customer happy whatever they ask.\n" in diff
    assert " Keep answers under 80 words.\n" in diff and "@@ -1,4 +1,3 @@" in diff
    v2 = git(repo.path, "rev-parse", "--short=9", "HEAD~1").strip()
    by_sha = tool.run(DiffPromptArgs(path=PROMPT, from_version=v2, to_version="HEAD"))
    by_number = tool.run(DiffPromptArgs(path=PROMPT, from_version="v2", to_version="v3"))
    assert by_sha.data["diff"].splitlines()[2:] == diff.splitlines()[2:]
    assert by_number.data["diff"].splitlines()[2:] == diff.splitlines()[2:]
    same = tool.run(DiffPromptArgs(path=PROMPT, from_version="v3"))
    assert same.data["identical"] is True and same.data["diff"] == ""
    missing = tool.run(DiffPromptArgs(path=PROMPT, from_version="v9"))
    assert missing.status == "error" and "no v9" in (missing.error or "")
    unknown = tool.run(DiffPromptArgs(path=PROMPT, from_version="prompt v4"))
    assert unknown.status == "error" and "'prompt v4'" in (unknown.error or "")


def test_get_flags_and_config(registry: ToolRegistry, repo: GitOpsRepo) -> None:
    flags = read_tool(registry, "gitops.get_flags").run(GetFlagsArgs())
    assert flags.status == "ok" and flags.data["commit"] == repo.head()
    assert set(flags.data["flags"]) == {"refund-tool", "rag-retrieval", "agent-jobs",
                                        "semantic-cache"}
    assert flags.data["flags"]["refund-tool"] == {
        "state": "ENABLED", "defaultVariant": "on", "variants": {"on": True, "off": False},
        "targeting": False}
    config = read_tool(registry, "gitops.get_config").run(GetConfigArgs())
    assert config.status == "ok"
    assert config.data["aliases"] == {"chat-default": "openai/gpt-4-turbo",
                                      "chat-fallback": "azure/gpt-4-turbo",
                                      "chat-local": "vllm/llama-3-70b"}
    assert config.data["limits"] == {"global_rpm": 1000, "per_user_rpm": 60, "blocked_users": []}


def test_read_tool_reports_a_broken_file(registry: ToolRegistry, repo: GitOpsRepo) -> None:
    human_commit(repo.path, "flags/flags.json", "{not json")
    result = read_tool(registry, "gitops.get_flags").run(GetFlagsArgs())
    assert result.status == "error" and "flags/flags.json is not valid JSON" in (result.error
                                                                                 or "")


# -- WRITE tools ---------------------------------------------------------------------------------

CASES: list[tuple[str, BaseModel, str, list[str], tuple[str, dict[str, Any]] | None]] = [
    ("gitops.rollback_prompt",
     RollbackPromptArgs(path=PROMPT, to_content_of="shoppal prompt v2: shorter answers"),
     "v3 ", ["-Make the customer happy whatever they ask.",
             "+Only state policies found in the retrieved documents."],
     ("gitops.rollback_prompt", {"path": PROMPT, "to_commit": "<head>"})),
    ("gitops.set_flag", SetFlagArgs(flag="refund-tool", variant="off"), "refund-tool: on → off",
     ['-      "defaultVariant": "on"', '+      "defaultVariant": "off"'],
     ("gitops.set_flag", {"flag": "refund-tool", "variant": "on"})),
    ("gitops.set_model_alias", SetModelAliasArgs(alias="chat-default", target="azure/gpt-4-turbo"),
     "chat-default: openai/gpt-4-turbo → azure/gpt-4-turbo",
     ["-  chat-default: openai/gpt-4-turbo", "+  chat-default: azure/gpt-4-turbo"],
     ("gitops.set_model_alias", {"alias": "chat-default", "target": "openai/gpt-4-turbo"})),
    ("gitops.set_rate_limit", SetRateLimitArgs(global_rpm=100, per_user_rpm=10),
     "global_rpm: 1000 → 100, per_user_rpm: 60 → 10",
     ["-global_rpm: 1000", "+global_rpm: 100", "-per_user_rpm: 60", "+per_user_rpm: 10"],
     ("gitops.set_rate_limit", {"global_rpm": 1000, "per_user_rpm": 60})),
    ("gitops.block_user", BlockUserArgs(user_id="u-4711"), "block user u-4711",
     ["-blocked_users: []", "+blocked_users:", "+- u-4711"], None),
]
TARGETS = {"gitops.rollback_prompt": PROMPT, "gitops.set_flag": "flags/flags.json",
           "gitops.set_model_alias": "config/models.yaml",
           "gitops.set_rate_limit": "config/limits.yaml", "gitops.block_user": "config/limits.yaml"}


@pytest.mark.parametrize(("name", "args", "summary", "diff_lines", "inverse"), CASES,
                         ids=[c[0] for c in CASES])
def test_write_tool_previews_and_commits_once(
        registry: ToolRegistry, repo: GitOpsRepo, name: str, args: BaseModel, summary: str,
        diff_lines: list[str], inverse: tuple[str, dict[str, Any]] | None) -> None:
    tool = write_tool(registry, name)
    path = TARGETS[name]
    head = repo.head()
    preview = tool.preview(args)
    assert summary in preview.summary
    assert preview.diff.startswith(f"--- a/{path}\n+++ b/{path}\n@@ ")
    for line in diff_lines:
        assert line in preview.diff.splitlines()
    assert preview.current is not None and preview.proposed is not None
    if inverse is not None and inverse[1].get("to_commit") == "<head>":
        inverse = (inverse[0], {**inverse[1], "to_commit": head})
    assert tool.inverse(args, preview) == inverse

    snap = tool.snapshot(args)
    assert snap == git(repo.path, "rev-parse", f"HEAD:{path}").strip()
    assert tool.reconcile("act-1") is False
    result = tool.execute(args, action_id="act-1", approved_by=["alice", "bob@slack"],
                          snapshot=snap)
    assert result.status == "ok", result.error
    assert result.data["already_applied"] is False and result.data["changed"] is True
    assert count(repo.path) == len(HISTORY) + 1 and repo.is_clean()
    assert git(repo.path, "rev-parse", "HEAD").strip() == result.data["commit"]
    assert git(repo.path, "diff", "--name-only", "HEAD~1", "HEAD").split() == [path]
    assert trailers(repo.path) == [("Metaops-Action-Id", "act-1"), ("Approved-By", "alice"),
                                   ("Approved-By", "bob@slack")]
    # The committed change is the previewed diff.
    committed = git(repo.path, "diff", "HEAD~1", "HEAD", "--", path)
    assert [x for x in committed.splitlines() if x[:1] in "+-" and x[:3] not in ("+++", "---")] \
        == [x for x in preview.diff.splitlines() if x[:1] in "+-" and x[:3] not in ("+++", "---")]
    assert tool.reconcile("act-1") is True and tool.reconcile("act-") is False

    again = tool.execute(args, action_id="act-1", approved_by=["alice"], snapshot=snap)
    assert again.status == "ok" and again.data["already_applied"] is True
    assert again.data["commit"] == result.data["commit"]
    assert count(repo.path) == len(HISTORY) + 1


def test_inverse_of_set_flag_restores_it(registry: ToolRegistry, repo: GitOpsRepo) -> None:
    tool = write_tool(registry, "gitops.set_flag")
    args = SetFlagArgs(flag="refund-tool", variant="off")
    inverse = tool.inverse(args, tool.preview(args))
    assert apply(tool, args, "a1").status == "ok"
    assert inverse is not None and inverse[0] == "gitops.set_flag"
    undo = SetFlagArgs.model_validate(inverse[1])
    assert apply(tool, undo, "a2").status == "ok"
    assert read(repo.path, "flags/flags.json") == (SAMPLE_DIR / "flags/flags.json").read_text()


def test_hallucination_storm_rollback_restores_v2(registry: ToolRegistry, repo: GitOpsRepo) -> None:
    expected = json.loads((SCENARIO / "expected.json").read_text())
    proposal = next(p for p in expected["proposals"] if p["tool"] == "gitops.rollback_prompt")
    tool = write_tool(registry, proposal["tool"])
    args = RollbackPromptArgs.model_validate(proposal["args"])
    named = next(h for h in HISTORY if h["message"] == proposal["args"]["to_content_of"])
    preview = tool.preview(args)
    assert "v3" in preview.summary and "v2" in preview.summary
    result = apply(tool, args, "storm-rollback", ["oncall"])
    assert result.status == "ok", result.error
    assert read(repo.path, PROMPT) == named["content"] == V2
    assert (repo.path / PROMPT).read_text() == V2  # the working tree follows
    # Its inverse (recorded before the run) brings v3 back.
    inverse = tool.inverse(args, preview)
    assert inverse is not None
    back = apply(tool, RollbackPromptArgs.model_validate(inverse[1]), "storm-undo")
    assert back.status == "ok" and read(repo.path, PROMPT) == V3
    # The prompt's history shows all five versions; nothing was rewritten.
    versions = read_tool(registry, "gitops.list_prompt_versions").run(
        ListPromptVersionsArgs(path=PROMPT))
    assert versions.data["total"] == 5


def test_rollback_by_commit_and_refusals(registry: ToolRegistry, repo: GitOpsRepo) -> None:
    tool = write_tool(registry, "gitops.rollback_prompt")
    v1 = git(repo.path, "rev-parse", "HEAD~2").strip()
    result = apply(tool, RollbackPromptArgs(path=PROMPT, to_commit=v1[:8]), "to-v1")
    assert result.status == "ok" and read(repo.path, PROMPT) == V1
    with pytest.raises(GitOpsRefused, match=r"no commit touching .* has the subject 'v9'"):
        tool.preview(RollbackPromptArgs(path=PROMPT, to_content_of="v9"))
    with pytest.raises(GitOpsRefused, match="is not on main"):
        tool.preview(RollbackPromptArgs(path=PROMPT, to_commit="deadbeef"))
    missing = RollbackPromptArgs(path="prompts/other.md", to_commit=v1)
    refused = tool.execute(missing, action_id="x", approved_by=["a"],
                           snapshot=tool.snapshot(missing))
    assert refused.status == "error" and "prompts/other.md does not exist" in (refused.error or "")


def test_stale_snapshot_is_refused_with_the_diff(registry: ToolRegistry, repo: GitOpsRepo) -> None:
    tool = write_tool(registry, "gitops.set_flag")
    args = SetFlagArgs(flag="refund-tool", variant="off")
    snap = tool.snapshot(args)
    flags = (repo.path / "flags/flags.json").read_text()
    human_commit(repo.path, "flags/flags.json",
                 flags.replace('"defaultVariant": "on"', '"defaultVariant": "off"', 2))
    before = count(repo.path)
    result = tool.execute(args, action_id="late", approved_by=["alice"], snapshot=snap)
    assert result.status == "error" and (result.error or "").startswith("stale:")
    assert '-      "defaultVariant": "on"' in (result.error or "")
    assert '+      "defaultVariant": "off"' in (result.error or "")
    assert result.data["snapshot"] == snap and result.data["diff"] in (result.error or "")
    assert count(repo.path) == before and tool.reconcile("late") is False
    # A commit to another file does not make it stale.
    human_commit(repo.path, "config/limits.yaml", "global_rpm: 1\n")
    fresh = tool.snapshot(args)
    human_commit(repo.path, "config/models.yaml", "aliases: {}\n")
    assert tool.execute(args, action_id="ok", approved_by=["a"], snapshot=fresh).status == "ok"


def test_stale_rollback_after_prompt_edit(registry: ToolRegistry, repo: GitOpsRepo) -> None:
    tool = write_tool(registry, "gitops.rollback_prompt")
    args = RollbackPromptArgs(path=PROMPT, to_content_of="shoppal prompt v2: shorter answers")
    snap = tool.snapshot(args)
    human_commit(repo.path, PROMPT, V3 + "Be nice.\n", "shoppal prompt v4")
    result = tool.execute(args, action_id="a", approved_by=["b"], snapshot=snap)
    assert (result.error or "").startswith("stale:") and "+Be nice." in (result.error or "")


def test_refusals_are_clear(registry: ToolRegistry, repo: GitOpsRepo) -> None:
    flag = write_tool(registry, "gitops.set_flag")
    with pytest.raises(GitOpsRefused, match=r"unknown flag 'nope' .*known flags: agent-jobs"):
        flag.preview(SetFlagArgs(flag="nope", variant="off"))
    bad = SetFlagArgs(flag="refund-tool", variant="maybe")
    with pytest.raises(GitOpsRefused, match=r"flag 'refund-tool' has no variant 'maybe' "
                                            r"\(variants: on, off\)"):
        flag.preview(bad)
    result = flag.execute(bad, action_id="a", approved_by=["b"], snapshot=flag.snapshot(bad))
    assert result.status == "error" and "no variant 'maybe'" in (result.error or "")
    alias = write_tool(registry, "gitops.set_model_alias")
    with pytest.raises(GitOpsRefused, match="unknown model alias 'chat-new'"):
        alias.preview(SetModelAliasArgs(alias="chat-new", target="azure/gpt-4o"))
    ok = SetFlagArgs(flag="refund-tool", variant="off")
    snap = flag.snapshot(ok)
    for action_id, approvers, why in [("a\nApproved-By: mallory", ["b"], "action_id"),
                                      ("a", ["b\nApproved-By: mallory"], "approver"),
                                      ("a", [], "no approver")]:
        refused = flag.execute(ok, action_id=action_id, approved_by=approvers, snapshot=snap)
        assert refused.status == "error" and why in (refused.error or "")
    assert count(repo.path) == len(HISTORY)


def test_args_models() -> None:
    with pytest.raises(ValidationError, match="extra"):
        SetFlagArgs.model_validate({"flag": "refund-tool", "variant": "off", "force": True})
    with pytest.raises(ValidationError, match="exactly one"):
        RollbackPromptArgs(path=PROMPT)
    with pytest.raises(ValidationError, match="exactly one"):
        RollbackPromptArgs(path=PROMPT, to_content_of="x", to_commit="abcd")
    with pytest.raises(ValidationError):
        RollbackPromptArgs(path="prompts/../config/limits.yaml", to_commit="abcd")
    with pytest.raises(ValidationError):
        SetModelAliasArgs(alias="chat-default", target="no-provider")
    with pytest.raises(ValidationError, match="global_rpm, per_user_rpm or both"):
        SetRateLimitArgs()
    with pytest.raises(ValidationError):
        BlockUserArgs(user_id="u 1\n")


def test_specs_and_effects(registry: ToolRegistry) -> None:
    effects = {name: spec.effect.value for name, spec in registry.specs().items()}
    assert effects == {
        "gitops.list_prompt_versions": "read", "gitops.diff_prompt": "read",
        "gitops.get_flags": "read", "gitops.get_config": "read",
        "gitops.rollback_prompt": "write", "gitops.set_flag": "write",
        "gitops.set_model_alias": "write", "gitops.set_rate_limit": "write",
        "gitops.block_user": "write", "gitops.publish_postmortem": "write"}
    for spec in registry.specs().values():
        assert spec.args.model_config.get("extra") == "forbid"


def test_block_user_is_idempotent(registry: ToolRegistry, repo: GitOpsRepo) -> None:
    tool = write_tool(registry, "gitops.block_user")
    args = BlockUserArgs(user_id="u-4711")
    assert apply(tool, args, "b1").status == "ok"
    preview = tool.preview(args)
    assert "already blocked" in preview.summary and preview.diff == ""
    second = apply(tool, args, "b2")  # another action: recorded, but the list is unchanged
    assert second.status == "ok" and second.data["changed"] is False
    assert read(repo.path, "config/limits.yaml").count("u-4711") == 1
    assert tool.inverse(args, preview) is None
    assert apply(tool, BlockUserArgs(user_id="u-9"), "b3").status == "ok"
    assert read(repo.path, "config/limits.yaml").endswith("blocked_users:\n- u-4711\n- u-9\n")


# -- remote: push, rejected push, remote moved on ---------------------------------------------


def test_push_to_a_bare_remote(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    bare, _ = remote_pair(tmp_path)
    shutil.rmtree(tmp_path / "var")
    repo = open_gitops_repo(tmp_path / "var", remote="./remote.git")  # a relative path
    tool = write_tool(ToolRegistry(gitops_tools(repo)), "gitops.set_flag")
    result = apply(tool, SetFlagArgs(flag="refund-tool", variant="off"), "push-1")
    assert result.status == "ok" and result.data["pushed"] is True, result.error
    assert git(bare, "rev-parse", "main").strip() == result.data["commit"]
    assert ("Metaops-Action-Id", "push-1") in trailers(bare, "main")
    assert '"defaultVariant": "off"' in read(bare, "flags/flags.json", "main")
    assert tool.reconcile("push-1") is True and repo.is_clean()
    # Reopening the clone on restart fetches and keeps working.
    again = open_gitops_repo(tmp_path / "var", remote=str(bare))
    assert again.head() == result.data["commit"]
    with pytest.raises(GitOpsError, match="already holds a repository"):
        open_gitops_repo(tmp_path / "var", remote=str(tmp_path / "elsewhere.git"))
    with pytest.raises(GitOpsError, match=r"is a clone of .*remote\.git but no remote"):
        open_gitops_repo(tmp_path / "var")  # never fork a clone into a local-only repo
    # Another branch of the same remote: the existing clone switches to it.
    git(bare, "branch", "staging", "main~1")
    staging = open_gitops_repo(tmp_path / "var", remote=str(bare), branch="staging")
    assert staging.head() == git(bare, "rev-parse", "staging").strip() and staging.is_clean()


def test_rejected_push_fails_and_leaves_the_clone_clean(tmp_path: Path) -> None:
    bare, repo = remote_pair(tmp_path)
    hook = bare / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'protected branch: no direct pushes' >&2\nexit 1\n")
    hook.chmod(0o755)
    tool = write_tool(ToolRegistry(gitops_tools(repo)), "gitops.set_model_alias")
    remote_head = git(bare, "rev-parse", "main").strip()
    result = apply(tool, SetModelAliasArgs(alias="chat-default", target="azure/gpt-4-turbo"),
                   "rejected-1")
    assert result.status == "error"
    assert "push rejected" in (result.error or "")
    assert "git -C" in (result.error or "") and "push --porcelain origin" in (result.error or "")
    assert "protected branch: no direct pushes" in (result.error or "")
    assert git(bare, "rev-parse", "main").strip() == remote_head
    assert repo.is_clean() and repo.head() == remote_head
    assert git(repo.path, "rev-parse", "HEAD").strip() == remote_head
    assert count(repo.path, "--all") == len(HISTORY)  # no stray commit on any ref
    assert (repo.path / "config/models.yaml").read_text() == read(bare, "config/models.yaml")
    assert tool.reconcile("rejected-1") is False


class RacingRepo(GitOpsRepo):
    """Someone else pushes to the remote just before our first push (a real race, replayed)."""

    race: Callable[[], None] | None = None

    def push(self, commit: str) -> PushOutcome:
        if self.race is not None:
            race, self.race = self.race, None
            race()
        return super().push(commit)


def test_remote_moved_on_is_retried_then_stale_if_the_file_changed(tmp_path: Path) -> None:
    bare, _ = remote_pair(tmp_path)
    other = tmp_path / "other"
    subprocess.run(["git", "clone", "-q", str(bare), str(other)], check=True)

    def push_other(path: str, content: str) -> Callable[[], None]:
        def race() -> None:
            human_commit(other, path, content)
            git(other, "push", "-q", "origin", "HEAD:main")
        return race

    repo = RacingRepo(tmp_path / "var" / "gitops", remote="origin", fetch_interval=0)
    tool = write_tool(ToolRegistry(gitops_tools(repo)), "gitops.set_flag")
    args = SetFlagArgs(flag="refund-tool", variant="off")
    snap = tool.snapshot(args)
    repo.race = push_other("config/limits.yaml", "global_rpm: 7\n")  # another file
    result = tool.execute(args, action_id="race-1", approved_by=["a"], snapshot=snap)
    assert result.status == "ok", result.error
    assert count(bare, "main") == len(HISTORY) + 2
    assert read(bare, "config/limits.yaml", "main") == "global_rpm: 7\n"
    assert git(bare, "rev-parse", "main").strip() == result.data["commit"]

    git(other, "pull", "-q", "--ff-only")
    args = SetFlagArgs(flag="rag-retrieval", variant="off")
    snap = tool.snapshot(args)
    repo.race = push_other("flags/flags.json", read(other, "flags/flags.json") + " ")
    stale = tool.execute(args, action_id="race-2", approved_by=["a"], snapshot=snap)
    assert (stale.error or "").startswith("stale:")
    assert repo.is_clean() and repo.head() == git(bare, "rev-parse", "main").strip()


def test_clone_errors_name_the_command(tmp_path: Path) -> None:
    with pytest.raises(GitCommandError) as info:
        open_gitops_repo(tmp_path / "var", remote=str(tmp_path / "missing.git"))
    assert "git clone" in info.value.message and str(tmp_path / "missing.git") in info.value.message
    assert info.value.stderr and info.value.stderr in info.value.message
    with pytest.raises(GitCommandError) as secret:
        open_gitops_repo(tmp_path / "var2", remote="http://bob:hunter2@127.0.0.1:9/x.git",
                         network_timeout=10)
    assert "hunter2" not in secret.value.message and "***@127.0.0.1" in secret.value.message
    (tmp_path / "plain").mkdir()
    with pytest.raises(GitCommandError, match=r"rev-parse --absolute-git-dir.*not a git repo"):
        GitOpsRepo(tmp_path / "plain")


# -- concurrency ---------------------------------------------------------------------------------


def test_concurrent_executes_make_distinct_commits(registry: ToolRegistry,
                                                   repo: GitOpsRepo) -> None:
    for i in range(6):  # six more prompts with two versions each
        human_commit(repo.path, f"prompts/p{i}.md", f"p{i} old\n", f"p{i} old")
        human_commit(repo.path, f"prompts/p{i}.md", f"p{i} new\n", f"p{i} new")
    base = count(repo.path)
    jobs: list[tuple[str, BaseModel]] = [
        ("gitops.rollback_prompt", RollbackPromptArgs(path=f"prompts/p{i}.md",
                                                      to_content_of=f"p{i} old"))
        for i in range(6)]
    jobs += [("gitops.set_flag", SetFlagArgs(flag="semantic-cache", variant="off")),
             ("gitops.set_model_alias", SetModelAliasArgs(alias="chat-local", target="vllm/x")),
             ("gitops.set_rate_limit", SetRateLimitArgs(per_user_rpm=5)),
             ("gitops.rollback_prompt", RollbackPromptArgs(path=PROMPT, to_content_of="shoppal "
                                                           "prompt v1"))]
    prepared = [(write_tool(registry, n), a) for n, a in jobs]
    snaps = [tool.snapshot(a) for tool, a in prepared]
    results: dict[int, ToolResult] = {}
    start = threading.Barrier(len(prepared))

    def run(i: int) -> None:
        tool, args = prepared[i]
        start.wait()
        results[i] = tool.execute(args, action_id=f"job-{i}", approved_by=["alice"],
                                  snapshot=snaps[i])

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(prepared))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert all(r.status == "ok" for r in results.values()), [r.error for r in results.values()]
    commits = {r.data["commit"] for r in results.values()}
    assert len(commits) == len(jobs) and count(repo.path) == base + len(jobs)
    assert git(repo.path, "rev-list", "--merges", "HEAD") == ""  # one linear chain
    ids = git(repo.path, "log", f"-{len(jobs)}",
              "--format=%(trailers:key=Metaops-Action-Id,valueonly)").split()
    assert sorted(ids) == sorted(f"job-{i}" for i in range(len(jobs)))
    subprocess.run(["git", "-C", str(repo.path), "fsck", "--strict"], check=True,
                   capture_output=True)
    assert repo.is_clean()
    for i in range(6):
        assert read(repo.path, f"prompts/p{i}.md") == f"p{i} old\n"
    assert read(repo.path, PROMPT) == V1


def test_same_action_from_many_threads_commits_once(registry: ToolRegistry,
                                                    repo: GitOpsRepo) -> None:
    tool = write_tool(registry, "gitops.set_flag")
    args = SetFlagArgs(flag="agent-jobs", variant="off")
    snap = tool.snapshot(args)
    results: list[ToolResult] = []
    lock = threading.Lock()

    def run() -> None:
        result = tool.execute(args, action_id="same", approved_by=["a"], snapshot=snap)
        with lock:
            results.append(result)

    threads = [threading.Thread(target=run) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert [r.status for r in results] == ["ok"] * 8
    assert sum(not r.data["already_applied"] for r in results) == 1
    assert count(repo.path) == len(HISTORY) + 1


def test_publish_postmortem_commits_once_and_refuses_other_paths(registry: ToolRegistry,
                                                                repo: GitOpsRepo) -> None:
    from pydantic import ValidationError

    from tools.gitops.args import PublishPostmortemArgs

    tool = write_tool(registry, "gitops.publish_postmortem")
    args = PublishPostmortemArgs(path="postmortems/2026-11-27-storm-1.md", content="# PM\n")
    assert tool.preview(args).summary == "add postmortems/2026-11-27-storm-1.md (2 lines)"
    assert apply(tool, args, "pm1").status == "ok"
    assert repo.read("postmortems/2026-11-27-storm-1.md", repo.head()) == b"# PM\n"
    assert "no change" in tool.preview(args).summary
    assert tool.inverse(args, tool.preview(args)) is None
    for bad in ("prompts/x.md", "postmortems/../x.md", "postmortems/2026-11-27-Storm.md"):
        with pytest.raises(ValidationError):
            PublishPostmortemArgs(path=bad, content="x")
