"""cache.flush on a real Redis: only keys under the prefix go, counted; glob text is literal."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import redis

from tools.cache import FlushArgs, cache_tools

URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
def ns() -> Iterator[str]:
    space = f"t{uuid.uuid4().hex[:8]}:"
    yield space
    client = redis.Redis.from_url(URL)
    for key in client.scan_iter(match=space + "*"):
        client.delete(key)


def test_flush_removes_only_the_prefix_and_counts(ns: str) -> None:
    client = redis.Redis.from_url(URL)
    for i in range(1200):
        client.set(f"{ns}semcache:{i}", "x")
    for i in range(30):
        client.set(f"{ns}session:{i}", "keep")
    client.set(f"{ns}semcache", "no trailing colon: not under the prefix")
    (tool,) = cache_tools(URL)
    args = FlushArgs(prefix=f"{ns}semcache:")
    preview = tool.preview(args)
    assert preview.current == {"keys": 1200} and "delete 1200 keys" in preview.summary
    result = tool.execute(args, action_id="a1", approved_by=["bob"], snapshot=tool.snapshot(args))
    assert result.status == "ok" and result.data["deleted"] == 1200
    # SCAN may return a key twice (while Redis rehashes): compare sets.
    left = sorted({k.decode() for k in client.scan_iter(match=ns + "*")})
    assert len(left) == 31 and all(not k.startswith(f"{ns}semcache:") for k in left)
    again = tool.execute(args, action_id="a2", approved_by=["bob"], snapshot=tool.snapshot(args))
    assert again.data["deleted"] == 0


def test_glob_characters_in_a_prefix_are_literal(ns: str) -> None:
    client = redis.Redis.from_url(URL)
    client.set(f"{ns}a1", "keep")
    client.set(f"{ns}*x", "go")
    (tool,) = cache_tools(URL)
    args = FlushArgs(prefix=f"{ns}*")
    result = tool.execute(args, action_id="a", approved_by=["b"], snapshot=tool.snapshot(args))
    assert result.data["deleted"] == 1
    assert client.get(f"{ns}a1") == b"keep"


def test_empty_prefix_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 2 characters"):
        FlushArgs(prefix="")


def test_redis_down_is_a_clear_error() -> None:
    (tool,) = cache_tools("redis://127.0.0.1:1/0")
    args = FlushArgs(prefix="semcache:")
    result = tool.execute(args, action_id="a", approved_by=["b"], snapshot=tool.snapshot(args))
    assert result.status == "error" and "SCAN/UNLINK" in (result.error or "")
