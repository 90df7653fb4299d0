"""The WRITE tools: roll back a prompt, set a flag, repoint an alias, set limits, block a user,
publish a post-mortem."""

from __future__ import annotations

from typing import Any

from tools.base import Effect, Preview, ToolSpec
from tools.gitops import files, history
from tools.gitops.args import (
    BlockUserArgs,
    PublishPostmortemArgs,
    RollbackPromptArgs,
    SetFlagArgs,
    SetModelAliasArgs,
    SetRateLimitArgs,
)
from tools.gitops.change import GitOpsWriteTool, Plan
from tools.gitops.errors import GitOpsRefused


class RollbackPrompt(GitOpsWriteTool[RollbackPromptArgs]):
    spec = ToolSpec("gitops.rollback_prompt",
                    "Restore a prompt file's content as of an earlier version, named by the "
                    "subject of the commit that made it (to_content_of) or a commit id "
                    "(to_commit). One new commit; history is not rewritten.",
                    RollbackPromptArgs, Effect.WRITE)
    args_model = RollbackPromptArgs

    def target(self, args: RollbackPromptArgs) -> str:
        return args.path

    def plan(self, args: RollbackPromptArgs, head: str) -> Plan:
        found = history.versions(self.repo, args.path)
        if args.to_content_of is not None:
            source = history.by_subject(args.path, found, args.to_content_of)
            content, src = source.content, source.describe()
        else:
            assert args.to_commit is not None
            sha = self.repo.resolve_on_branch(args.to_commit)
            if sha is None:
                raise GitOpsRefused(f"commit {args.to_commit!r} is not on {self.repo.branch}")
            content = self.repo.read(args.path, sha)
            # The version it carries: the newest commit touching the file at or before it.
            carrier = next((v for v in found if self.repo.is_ancestor(v.commit.sha, sha)), None)
            src = carrier.describe() if carrier else {"commit": sha, "short": sha[:7]}
            src["requested"] = sha
        if content is None:
            raise GitOpsRefused(f"{args.path} does not exist at {src['short']}; nothing to "
                                "restore")
        src["first_line"] = history.first_line(content)
        old = self.repo.read(args.path, head)
        cur: dict[str, Any] = (found[0].describe() if found and old is not None
                               else {"commit": None})
        if old == content:
            summary = f"{args.path} already has the content of {_label(src)}; no change"
        else:
            summary = f"{args.path}: {_label(cur)} → content of {_label(src)}"
        subject = f"Roll back {args.path} to the content of {src['short']}"
        if src.get("subject"):
            subject += f" ({src['subject']})"
        return Plan(args.path, old, content, subject, summary, cur, src)

    def undo(self, args: RollbackPromptArgs, before: Preview) -> tuple[str, dict[str, Any]] | None:
        current = before.current
        if isinstance(current, dict) and isinstance(current.get("commit"), str):
            return self.spec.name, {"path": args.path, "to_commit": current["commit"]}
        return None


def _label(version: dict[str, Any]) -> str:
    if version.get("commit") is None:
        return "(absent)"
    number = f"v{version['version']} " if version.get("version") else ""
    subject = f" {version['subject']!r}" if version.get("subject") else ""
    return f"{number}{version['short']}{subject}"


class SetFlag(GitOpsWriteTool[SetFlagArgs]):
    spec = ToolSpec("gitops.set_flag",
                    "Set a feature flag's defaultVariant in flags/flags.json; refuses an unknown "
                    "flag or variant.", SetFlagArgs, Effect.WRITE)
    args_model = SetFlagArgs

    def target(self, args: SetFlagArgs) -> str:
        return files.FLAGS_PATH

    def plan(self, args: SetFlagArgs, head: str) -> Plan:
        path = files.FLAGS_PATH
        old = files.decode(path, self.repo.read(path, head))
        new = files.set_default_variant(old, args.flag, args.variant)  # refuses unknown ones
        flag = files.parse_flags(old)[args.flag]
        current = flag.get("defaultVariant")
        summary = f"{args.flag}: {current} → {args.variant}"
        if current == args.variant:
            summary = f"{args.flag} is already {args.variant}; no change"
        if flag.get("state") == "DISABLED":
            summary += " (note: the flag is DISABLED; clients get their code default)"
        elif flag.get("targeting"):
            summary += (" (note: the flag has targeting rules; the default applies where "
                        "they pick no variant)")
        return Plan(path, old.encode(), new.encode(),
                    f"Set flag {args.flag} to {args.variant} (was {current})", summary,
                    current, args.variant)

    def undo(self, args: SetFlagArgs, before: Preview) -> tuple[str, dict[str, Any]] | None:
        if isinstance(before.current, str):
            return self.spec.name, {"flag": args.flag, "variant": before.current}
        return None


class SetModelAlias(GitOpsWriteTool[SetModelAliasArgs]):
    spec = ToolSpec("gitops.set_model_alias",
                    "Point an existing model alias in config/models.yaml at another "
                    "provider/model.", SetModelAliasArgs, Effect.WRITE)
    args_model = SetModelAliasArgs

    def target(self, args: SetModelAliasArgs) -> str:
        return files.MODELS_PATH

    def plan(self, args: SetModelAliasArgs, head: str) -> Plan:
        path = files.MODELS_PATH
        old = files.decode(path, self.repo.read(path, head))
        new = files.set_alias(old, args.alias, args.target)  # refuses an unknown alias
        current = files.parse_aliases(old)[args.alias]
        summary = (f"{args.alias} already points at {args.target}; no change"
                   if current == args.target else f"{args.alias}: {current} → {args.target}")
        return Plan(path, old.encode(), new.encode(),
                    f"Point model alias {args.alias} at {args.target} (was {current})",
                    summary, current, args.target)

    def undo(self, args: SetModelAliasArgs,
             before: Preview) -> tuple[str, dict[str, Any]] | None:
        if isinstance(before.current, str):
            return self.spec.name, {"alias": args.alias, "target": before.current}
        return None


class SetRateLimit(GitOpsWriteTool[SetRateLimitArgs]):
    spec = ToolSpec("gitops.set_rate_limit",
                    "Set global_rpm and/or per_user_rpm in config/limits.yaml.",
                    SetRateLimitArgs, Effect.WRITE)
    args_model = SetRateLimitArgs

    def target(self, args: SetRateLimitArgs) -> str:
        return files.LIMITS_PATH

    def plan(self, args: SetRateLimitArgs, head: str) -> Plan:
        path = files.LIMITS_PATH
        old = files.decode(path, self.repo.read(path, head))
        limits = files.parse_limits(old)
        updates = args.updates()
        current = {key: getattr(limits, key) for key in updates}
        new = files.set_limits(old, updates)
        changes = ", ".join(f"{k}: {current[k]} → {v}" for k, v in updates.items())
        summary = changes if new != old else f"{changes}; no change"
        return Plan(path, old.encode(), new.encode(),
                    "Set rate limits: " + ", ".join(f"{k} {current[k]} -> {v}"
                                                    for k, v in updates.items()),
                    summary, current, updates)

    def undo(self, args: SetRateLimitArgs, before: Preview) -> tuple[str, dict[str, Any]] | None:
        current = before.current
        if isinstance(current, dict) and current and all(
                isinstance(v, int) for v in current.values()):
            return self.spec.name, dict(current)
        return None  # a limit that was not set cannot be unset with this tool


class BlockUser(GitOpsWriteTool[BlockUserArgs]):
    spec = ToolSpec("gitops.block_user",
                    "Add a user id to blocked_users in config/limits.yaml (idempotent).",
                    BlockUserArgs, Effect.WRITE)
    args_model = BlockUserArgs

    def target(self, args: BlockUserArgs) -> str:
        return files.LIMITS_PATH

    def plan(self, args: BlockUserArgs, head: str) -> Plan:
        path = files.LIMITS_PATH
        old = files.decode(path, self.repo.read(path, head))
        before = files.parse_limits(old).blocked_users
        new = files.add_blocked_user(old, args.user_id)
        after = files.parse_limits(new).blocked_users
        summary = (f"{args.user_id} is already blocked; no change" if new == old else
                   f"block user {args.user_id} (blocked_users: {len(before)} → {len(after)})")
        return Plan(path, old.encode(), new.encode(), f"Block user {args.user_id}", summary,
                    before, after)

    def undo(self, args: BlockUserArgs, before: Preview) -> tuple[str, dict[str, Any]] | None:
        return None  # there is no unblock tool; unblocking is a human edit of limits.yaml


class PublishPostmortem(GitOpsWriteTool[PublishPostmortemArgs]):
    spec = ToolSpec("gitops.publish_postmortem",
                    "Commit a post-mortem (Markdown) as postmortems/YYYY-MM-DD-<slug>.md; a new "
                    "revision replaces the file in a new commit.", PublishPostmortemArgs,
                    Effect.WRITE)
    args_model = PublishPostmortemArgs

    def target(self, args: PublishPostmortemArgs) -> str:
        return args.path

    def plan(self, args: PublishPostmortemArgs, head: str) -> Plan:
        old = self.repo.read(args.path, head)
        new = args.content.encode("utf-8")
        lines = args.content.count("\n") + 1
        if old == new:
            summary = f"{args.path} already has this text; no change"
        else:
            summary = f"{'update' if old is not None else 'add'} {args.path} ({lines} lines)"
        return Plan(args.path, old, new, f"Post-mortem {args.path}", summary,
                    {"exists": old is not None}, {"lines": lines})

    def undo(self, args: PublishPostmortemArgs,
             before: Preview) -> tuple[str, dict[str, Any]] | None:
        return None  # documentation: a later revision supersedes it, nothing to roll back
