"""The argument models of the GitOps tools (unknown keys forbidden, values pattern-checked)."""

from __future__ import annotations

from typing import Annotated, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

# A markdown file under prompts/; no segment starts with a dot, so no `..` and no hidden files.
PromptPath = Annotated[str, Field(
    pattern=r"^prompts/(?:[A-Za-z0-9_][A-Za-z0-9_.-]*/)*[A-Za-z0-9_][A-Za-z0-9_.-]*\.md$",
    max_length=300, examples=["prompts/shoppal-system.md"])]
CommitId = Annotated[str, Field(pattern=r"^[0-9a-fA-F]{4,64}$",
                                description="a commit id or unambiguous prefix")]
OneLine = Annotated[str, Field(min_length=1, max_length=500, pattern=r"^[^\r\n\x00]+$")]
Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,199}$")]
Rpm = Annotated[int, Field(ge=0, le=100_000_000)]


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ListPromptVersionsArgs(_Args):
    path: PromptPath
    limit: int = Field(default=20, ge=1, le=500)


class DiffPromptArgs(_Args):
    """Versions are named by commit id (prefix), exact commit subject, `v<N>` (N-th version of
    the file, oldest = v1) or HEAD."""

    path: PromptPath
    from_version: OneLine
    to_version: OneLine = "HEAD"


class GetFlagsArgs(_Args):
    pass


class GetConfigArgs(_Args):
    pass


class RollbackPromptArgs(_Args):
    """Restore the file's content as of an earlier version: give exactly one of `to_content_of`
    (the subject of a commit that touched the file) or `to_commit` (a commit id)."""

    path: PromptPath
    to_content_of: OneLine | None = None
    to_commit: CommitId | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        if (self.to_content_of is None) == (self.to_commit is None):
            raise ValueError("give exactly one of to_content_of or to_commit")
        return self


class SetFlagArgs(_Args):
    flag: Name
    variant: OneLine


class SetModelAliasArgs(_Args):
    alias: Name
    target: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9_.:@/+-]+$",
                        max_length=300, description="provider/model, e.g. azure/gpt-4-turbo")


class SetRateLimitArgs(_Args):
    global_rpm: Rpm | None = None
    per_user_rpm: Rpm | None = None

    @model_validator(mode="after")
    def _at_least_one(self) -> Self:
        if self.global_rpm is None and self.per_user_rpm is None:
            raise ValueError("give global_rpm, per_user_rpm or both")
        return self

    def updates(self) -> dict[str, int]:
        return {k: v for k, v in (("global_rpm", self.global_rpm),
                                  ("per_user_rpm", self.per_user_rpm)) if v is not None}


class BlockUserArgs(_Args):
    user_id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.@:+-]{0,199}$")


PostmortemPath = Annotated[str, Field(
    pattern=r"^postmortems/[0-9]{4}-[0-9]{2}-[0-9]{2}-[a-z0-9][a-z0-9-]{0,99}\.md$",
    examples=["postmortems/2026-11-27-hallucination-rate-high.md"])]


class PublishPostmortemArgs(_Args):
    path: PostmortemPath
    content: str = Field(min_length=1, max_length=500_000)
