"""The READ tools: prompt versions and diffs, flags, model aliases and limits."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from tools.base import Effect, ToolResult, ToolSpec
from tools.gitops import files, history
from tools.gitops.args import DiffPromptArgs, GetConfigArgs, GetFlagsArgs, ListPromptVersionsArgs
from tools.gitops.errors import GitOpsError
from tools.gitops.repo import GitOpsRepo

A = TypeVar("A", bound=BaseModel)


def coerce(model: type[A], args: BaseModel | dict[str, Any]) -> A:
    """`args` as an instance of `model` (validating a dict or another model's fields)."""
    if isinstance(args, model):
        return args
    return model.model_validate(args.model_dump() if isinstance(args, BaseModel) else args)


class _ReadTool(Generic[A]):
    spec: ToolSpec
    args_model: type[A]

    def __init__(self, repo: GitOpsRepo) -> None:
        self.repo = repo

    def run(self, args: BaseModel) -> ToolResult:
        try:
            parsed = coerce(self.args_model, args)
        except ValidationError as exc:
            return ToolResult.fail(f"{self.spec.name}: invalid arguments: {exc}")
        try:
            self.repo.refresh()
            return self._run(parsed)
        except GitOpsError as exc:
            return ToolResult.fail(f"{self.spec.name}: {exc.message}")

    def _run(self, args: A) -> ToolResult:
        raise NotImplementedError


class ListPromptVersions(_ReadTool[ListPromptVersionsArgs]):
    spec = ToolSpec("gitops.list_prompt_versions",
                    "Commits that changed a prompt file, newest first: version number, short "
                    "sha, date, author, subject and the first line of the prompt at that version.",
                    ListPromptVersionsArgs, Effect.READ)
    args_model = ListPromptVersionsArgs

    def _run(self, args: ListPromptVersionsArgs) -> ToolResult:
        found = history.versions(self.repo, args.path)
        if not found:
            return ToolResult("no_data", {"path": args.path, "versions": []},
                              f"no commit on {self.repo.branch} touches {args.path}")
        head_blob = self.repo.blob_id(args.path)
        rows = []
        for v in found[:args.limit]:
            row = v.describe()
            row.update(date=v.commit.date, author=v.commit.author, deleted=v.content is None)
            rows.append(row)
        current = next((v for v in found if v.content is not None), None)
        return ToolResult.ok(path=args.path, branch=self.repo.branch, total=len(found),
                             versions=rows, head_blob=head_blob,
                             current=current.describe() if current else None)


class DiffPrompt(_ReadTool[DiffPromptArgs]):
    spec = ToolSpec("gitops.diff_prompt",
                    "Unified diff of a prompt file between two versions (commit id, exact "
                    "commit subject, v<N> or HEAD).", DiffPromptArgs, Effect.READ)
    args_model = DiffPromptArgs

    def _run(self, args: DiffPromptArgs) -> ToolResult:
        found = history.versions(self.repo, args.path)
        old_sha, old_label = history.resolve(self.repo, args.path, found, args.from_version)
        new_sha, new_label = history.resolve(self.repo, args.path, found, args.to_version)
        old = self.repo.read(args.path, old_sha)
        new = self.repo.read(args.path, new_sha)
        diff = history.unified_diff(args.path, old, new, f"a/{args.path} ({old_label})",
                                    f"b/{args.path} ({new_label})")
        return ToolResult.ok(path=args.path, diff=diff, identical=old == new,
                             **{"from": {"commit": old_sha, "label": old_label},
                                "to": {"commit": new_sha, "label": new_label}})


class GetFlags(_ReadTool[GetFlagsArgs]):
    spec = ToolSpec("gitops.get_flags",
                    "Feature flags from flags/flags.json (flagd format): state, default "
                    "variant, variants, whether targeting rules apply.", GetFlagsArgs, Effect.READ)
    args_model = GetFlagsArgs

    def _run(self, args: GetFlagsArgs) -> ToolResult:
        head = self.repo.head()
        flags = files.parse_flags(files.decode(files.FLAGS_PATH,
                                               self.repo.read(files.FLAGS_PATH, head)))
        out = {key: {"state": flag.get("state"), "defaultVariant": flag.get("defaultVariant"),
                     "variants": flag.get("variants", {}), "targeting": bool(flag.get("targeting"))}
               for key, flag in flags.items()}
        return ToolResult.ok(path=files.FLAGS_PATH, commit=head, flags=out)


class GetConfig(_ReadTool[GetConfigArgs]):
    spec = ToolSpec("gitops.get_config",
                    "Model aliases (config/models.yaml) and rate limits and blocked users "
                    "(config/limits.yaml).", GetConfigArgs, Effect.READ)
    args_model = GetConfigArgs

    def _run(self, args: GetConfigArgs) -> ToolResult:
        head = self.repo.head()
        models, limits = self.repo.read_many([(head, files.MODELS_PATH), (head, files.LIMITS_PATH)])
        aliases = files.parse_aliases(files.decode(files.MODELS_PATH, models))
        parsed = files.parse_limits(files.decode(files.LIMITS_PATH, limits))
        return ToolResult.ok(commit=head, aliases=aliases,
                             limits={"global_rpm": parsed.global_rpm,
                                     "per_user_rpm": parsed.per_user_rpm,
                                     "blocked_users": parsed.blocked_users})
