"""Cache tools: flush keys under a prefix in Redis (SCAN + UNLINK, never FLUSHALL)."""

from tools.cache.flush import CacheFlush, FlushArgs, cache_tools

__all__ = ["CacheFlush", "FlushArgs", "cache_tools"]
