"""cache.flush: delete the keys under one prefix with SCAN + UNLINK, and count them."""

from __future__ import annotations

import re
from typing import Any

import redis
from pydantic import BaseModel, ConfigDict, Field

from tools.base import Effect, Preview, ToolResult, ToolSpec

_SCAN_BATCH = 500
_SAMPLE = 5
# A prefix is literal text: glob characters in it would widen what gets deleted.
_GLOB = re.compile(r"([*?\[\]\\])")


class FlushArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prefix: str = Field(min_length=2, max_length=200, pattern=r"^[^\s\x00]+$",
                        description="Key prefix, e.g. semcache: (never empty: no flush-all)")


def _pattern(prefix: str) -> str:
    return _GLOB.sub(r"\\\1", prefix) + "*"


class CacheFlush:
    """WRITE: removes only keys under the prefix; reports how many."""

    spec = ToolSpec("cache.flush", "Delete cached keys under a prefix (SCAN + UNLINK)",
                    FlushArgs, Effect.WRITE)

    def __init__(self, client: redis.Redis) -> None:
        self._redis = client

    def _keys(self, prefix: str, limit: int | None = None) -> tuple[int, list[str]]:
        count, sample = 0, list[str]()
        for key in self._redis.scan_iter(match=_pattern(prefix), count=_SCAN_BATCH):
            count += 1
            if len(sample) < _SAMPLE:
                sample.append(key.decode("utf-8", "replace") if isinstance(key, bytes)
                              else str(key))
            if limit is not None and count >= limit:
                break
        return count, sample

    def preview(self, args: BaseModel) -> Preview:
        a = FlushArgs.model_validate(args.model_dump())
        count, sample = self._keys(a.prefix)
        return Preview(f"delete {count} keys under {a.prefix!r} (e.g. {', '.join(sample)})",
                       "", {"keys": count}, {"keys": 0})

    def snapshot(self, args: BaseModel) -> str:
        # A live cache changes every second; flushing a prefix has no useful precondition.
        return f"prefix:{FlushArgs.model_validate(args.model_dump()).prefix}"

    def execute(self, args: BaseModel, *, action_id: str, approved_by: list[str],
                snapshot: str) -> ToolResult:
        a = FlushArgs.model_validate(args.model_dump())
        if snapshot != self.snapshot(a):
            return ToolResult.fail("stale: the prefix differs from the approved one")
        deleted = 0
        try:
            batch: list[Any] = []
            for key in self._redis.scan_iter(match=_pattern(a.prefix), count=_SCAN_BATCH):
                batch.append(key)
                if len(batch) >= _SCAN_BATCH:
                    deleted += int(self._redis.unlink(*batch))
                    batch = []
            if batch:
                deleted += int(self._redis.unlink(*batch))
        except redis.RedisError as exc:
            return ToolResult.fail(f"redis: SCAN/UNLINK {_pattern(a.prefix)!r}: {exc}",
                                   deleted=deleted)
        return ToolResult.ok(prefix=a.prefix, deleted=deleted)

    def reconcile(self, action_id: str) -> bool | None:
        return None  # Redis keeps no record of who deleted what

    def inverse(self, args: BaseModel, before: Preview) -> tuple[str, dict[str, Any]] | None:
        return None  # a flushed cache refills itself; there is nothing to restore


def cache_tools(url: str) -> list[CacheFlush]:
    return [CacheFlush(redis.Redis.from_url(url, socket_timeout=10, socket_connect_timeout=5))]
