"""Streaming log-pattern mining: mask variable tokens, cluster with Drain, aggregate per pattern."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from drain3.drain import Drain

from tools.logs.records import LogRecord, norm_level

LEVEL_CLASSES = ("error", "warning")
_CLASS_OF = {"ERROR": "error", "CRITICAL": "error", "WARNING": "warning"}  # after norm_level
_UNSEEN: Any = object()

_H = "[0-9a-fA-F]"
_UUID = rf"{_H}{{8}}-{_H}{{4}}-{_H}{{4}}-{_H}{{4}}-{_H}{{12}}(?![\w-])"
_IP = r"\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}(?!\w|\.\d)"
# a number, maybe decimal, maybe with a unit; not right after "letters-" (gpt-4-turbo)
_NUM = r"(?<![A-Za-z]-)\d++(?:\.\d++)?(?:[mun]s|s|m|h|[KMGT]i?B|%)?+(?!\w|\.\d)"
# >= 8 hex chars with a digit, 0x..., or a short prefix and _ (req_15a345f7aa93)
_HEX = rf"(?:(?=[a-fA-F]*\d){_H}{{8,}}+|0x{_H}++|[A-Za-z]{{2,8}}+_{_H}{{6,}}+)(?!\w)"
# One alternation, one pass; the first kind that matches at a token start wins (group 1-4).
# A token starts where no word character or dot precedes it, so names like
# redis.exceptions.ConnectionError, OpenAI4Error, s3.client or v1.2.3 stay intact. Possessive
# quantifiers keep failed attempts cheap: masking is the main per-message cost of mining.
_MASK = re.compile(rf"(?<![\w.])(?:({_UUID})|({_IP})|({_NUM})|({_HEX}))")
_PLACEHOLDER = ("", "<UUID>", "<IP>", "<NUM>", "<HEX>")  # by group number
_KIND = {name: group for group, name in enumerate(_PLACEHOLDER) if name}
_SPLIT = re.compile("(<UUID>|<IP>|<NUM>|<HEX>)")


def _placeholder(match: re.Match[str]) -> str:
    return _PLACEHOLDER[match.lastindex or 0]


def mask(message: str) -> str:
    """`message` with UUIDs, IPv4 addresses, numbers (with a unit) and hex ids replaced by
    <UUID>, <IP>, <NUM> and <HEX>."""
    return _MASK.sub(_placeholder, message)


# A masked text as (its literal start, then per placeholder: (kind, the literal text after it,
# that text's length)); kind = _MASK group number.
Shape = tuple[str, tuple[tuple[int, str, int], ...]]


def shape_of(masked: str) -> Shape:
    parts = _SPLIT.split(masked)
    return parts[0], tuple((_KIND[kind], text, len(text))
                           for kind, text in zip(parts[1::2], parts[2::2], strict=True))


def fits(message: str, shape: Shape) -> bool:
    """Whether `message` masks to `shape`: its literal texts sit where the shape has them and,
    at each placeholder, the mask's own regex matches that kind (as the left-to-right mask
    does there). Testing the few shapes known for a first word is several times cheaper than
    masking. The literal texts came out of the mask, so they hold nothing it would replace."""
    first, steps = shape
    if not message.startswith(first):
        return False
    pos = len(first)
    at = _MASK.match
    for kind, text, length in steps:
        found = at(message, pos)
        if found is None or found.lastindex != kind:
            return False
        pos = found.end()
        if not message.startswith(text, pos):
            return False
        pos += length
    return pos == len(message)


# For hot shapes, one compiled regex replaces the placeholder-by-placeholder walk (after the
# literal start, which startswith checks). Per kind, its pattern guarded by necessary conditions
# of the earlier kinds that can overlap it (a UUID starts with 8 hex and a dash; a run of >= 8
# digits is a number before it is hex; an IPv4 address overlaps none): a guard only ever rejects
# more, so the regex accepts nothing the mask would not map to the shape; what it rejects goes
# the slow way.
_GUARDED = {
    1: _UUID, 2: _IP, 3: rf"(?!{_H}{{8}}-){_NUM}", 4: rf"(?!{_H}{{8}}-)(?!{_NUM}){_HEX}",
}


def compile_shape(shape: Shape) -> Callable[[str, int], re.Match[str] | None]:
    """A fullmatch from just after the shape's literal start (re.compile is slow, ~1 ms here:
    only for shapes that recur a lot)."""
    return re.compile("".join(r"(?<![\w.])" + _GUARDED[kind] + re.escape(text)
                              for kind, text, _ in shape[1])).fullmatch


_EXCEPTION = re.compile(r"([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*):(?:\s|$)")


def label(template: str) -> str:
    """A short human label: the exception-like name a template starts with (`Name: ...`,
    dotted allowed, its last part capitalized and not all caps), else its first ~60 chars."""
    found = _EXCEPTION.match(template)
    if found:
        last = found.group(1).rsplit(".", 1)[-1]
        if last[0].isupper() and not last.isupper():
            return found.group(1)
    text = template.strip()
    if len(text) <= 60:
        return text
    # Cut at a word boundary so a label never ends inside a token.
    return text[:59].rsplit(" ", 1)[0].rstrip(" ,;:") + "…"


def _iso(ts: datetime) -> str:
    return ts.isoformat().replace("+00:00", "Z")


class _Known:
    """A shape seen under a first word, its cluster, and how often it matched."""

    __slots__ = ("cid", "fast", "first", "hits", "shape", "size", "start")

    def __init__(self, shape: Shape, cid: int, size: int) -> None:
        self.shape = shape
        self.size = size
        self.first = shape[0]
        self.start = len(shape[0])
        self.cid = cid
        self.hits = 0
        self.fast: Callable[[str, int], re.Match[str] | None] | None = None


class _Pattern:
    """The running aggregate of one (level class, cluster)."""

    __slots__ = ("count", "exemplar", "first", "last", "services", "template")

    def __init__(self, template: str, ts: datetime, service: str, exemplar: str) -> None:
        self.template = template  # used only if Drain evicted the cluster since
        self.count = 1
        self.first = self.last = ts
        self.services = {service}
        self.exemplar = exemplar


class PatternMiner:
    """Feed it error/warning records with `add`, read the patterns with `result`.

    Per message (its first `max_chars` characters: a stack trace is mined on its head): if it
    fits a shape already seen for its first word, that shape's cluster; else mask it, look
    the masked text up in a cache, and only on a miss ask Drain.
    Memory is bounded: Drain keeps at most `max_clusters` clusters (LRU), the masked-text
    cache is cleared past `cache_size` entries and the shapes past `max_shapes` (each also
    past `max_cached_chars` characters in all), each pattern keeps at most `max_services`
    services and one exemplar, and patterns of evicted clusters are pruned (smallest first)
    past 4 x max_clusters. Records of other levels (or outside `levels`) are ignored."""

    def __init__(self, *, levels: Iterable[str] | None = None, max_clusters: int = 2000,
                 cache_size: int = 100_000, max_shapes: int = 20_000, hot_after: int = 1000,
                 max_compiled: int = 256, max_services: int = 20, exemplar_chars: int = 500,
                 max_chars: int = 2000, max_cached_chars: int = 20_000_000,
                 sim_th: float = 0.4, depth: int = 4) -> None:
        self._allowed = None if levels is None else frozenset(norm_level(lv) for lv in levels)
        self._drain = Drain(depth=depth, sim_th=sim_th, max_children=100,
                            max_clusters=max_clusters)
        self.max_clusters = max_clusters
        self.cache_size = cache_size
        self.max_shapes = max_shapes
        self.max_services = max_services
        self.exemplar_chars = exemplar_chars
        self.max_chars = max_chars
        self.max_cached_chars = max_cached_chars
        self._cache: dict[str, int] = {}  # masked message -> Drain cluster id
        self._cache_chars = 0
        self._shape_chars = 0
        self._shapes: dict[str, list[_Known]] = {}  # first word -> shapes seen
        self._shape_count = 0
        self.hot_after = hot_after
        self.max_compiled = max_compiled
        self._compiled = 0
        # level as written -> its class and that class's patterns, None if not mined
        self._sinks: dict[str, tuple[str, dict[int, _Pattern]] | None] = {}
        self._patterns: dict[str, dict[int, _Pattern]] = {c: {} for c in LEVEL_CLASSES}
        # patterns dropped past the bound, and their lines (still in the totals)
        self._pruned = dict.fromkeys(LEVEL_CLASSES, 0)
        self._pruned_lines = dict.fromkeys(LEVEL_CLASSES, 0)

    @property
    def totals(self) -> dict[str, int]:
        """Lines mined per level class (summed on demand: no per-line counter)."""
        return {cls: sum(p.count for p in self._patterns[cls].values())
                + self._pruned_lines[cls] for cls in LEVEL_CLASSES}

    @property
    def cache_len(self) -> int:
        return len(self._cache)

    @property
    def shape_count(self) -> int:
        return self._shape_count

    def _sink_for(self, level: str) -> tuple[str, dict[int, _Pattern]] | None:
        """The level class and its patterns for `level` as written; None if not mined."""
        canon = norm_level(level)
        cls = _CLASS_OF.get(canon)
        sink = None
        if cls is not None and (self._allowed is None or canon in self._allowed):
            sink = (cls, self._patterns[cls])
        if len(self._sinks) < 1000:  # a source with garbage levels must not grow this
            self._sinks[level] = sink
        return sink

    def add(self, record: LogRecord) -> None:
        self.add_all((record,))

    def add_all(self, records: Iterable[LogRecord]) -> int:
        """Mine every error/warning record of `records`; returns how many records there were.
        One loop with everything in locals: per record this is the hot path of logs.patterns."""
        sinks, shapes, drain = self._sinks, self._shapes, self._drain
        max_services, hot_after, unseen = self.max_services, self.hot_after, _UNSEEN
        max_chars = self.max_chars
        n = 0
        for record in records:
            n += 1
            level = record.level
            sink = sinks.get(level, unseen)
            if sink is unseen:
                sink = self._sink_for(level)
            if sink is None:
                continue
            raw = message = record.message
            if len(message) > max_chars:
                message = message[:max_chars]
            space = message.find(" ")
            head = message[:space] if space >= 0 else message
            cid = 0  # Drain's cluster ids start at 1
            known = shapes.get(head)
            if known is not None:
                for entry in known:
                    if not message.startswith(entry.first):
                        continue
                    fast = entry.fast
                    if fast is not None:
                        if fast(message, entry.start) is None:
                            continue
                    elif fits(message, entry.shape):
                        entry.hits += 1
                        if entry.hits == hot_after and self._compiled < self.max_compiled:
                            entry.fast = compile_shape(entry.shape)
                            self._compiled += 1
                    else:
                        continue
                    cid = entry.cid
                    if known[0] is not entry:  # up one place: the list drifts into frequency order
                        i = known.index(entry)
                        known[i - 1], known[i] = entry, known[i - 1]
                    break
            template = None
            if not cid:
                cid, template = self._mine(head, message)
            patterns = sink[1]
            pattern = patterns.get(cid)
            ts = record.ts
            if pattern is None:
                patterns[cid] = _Pattern(template or self._template(cid, message), ts,
                                         record.service, raw[:self.exemplar_chars])
                if len(patterns) > 4 * self.max_clusters:
                    self._prune(sink[0])
                continue
            count = pattern.count = pattern.count + 1
            if template is not None:
                pattern.template = template
            elif not count & 63:
                # Shape and cache hits bypass Drain, so its LRU would take a busy cluster for
                # an idle one and evict it: touch it now and then.
                drain.id_to_cluster[cid]  # the read is the touch
            if ts < pattern.first:
                pattern.first = ts
            elif ts > pattern.last:
                pattern.last = ts
            services = pattern.services
            if record.service not in services and len(services) < max_services:
                services.add(record.service)
        return n

    def _mine(self, head: str, message: str) -> tuple[int, str | None]:
        """The slow path: mask, look the masked text up, and only on a miss ask Drain (its
        tree search is the slowest step). Returns the cluster id and, from Drain, its
        current template."""
        masked = _MASK.sub(_placeholder, message)
        cid = self._cache.get(masked)
        template = None
        if cid is None:
            cluster, _ = self._drain.add_log_message(masked)
            cid = int(cluster.cluster_id)
            template = str(cluster.get_template())
            if len(self._cache) >= self.cache_size or \
                    self._cache_chars >= self.max_cached_chars:
                self._cache.clear()
                self._cache_chars = 0
            self._cache[masked] = cid
            self._cache_chars += len(masked)
        self._learn(head, masked, cid)
        return cid, template

    def _learn(self, head: str, masked: str, cid: int) -> None:
        """Remember the shape of `masked` under the message's first word, unless that word is
        itself variable (it would key nothing twice)."""
        shape = shape_of(masked)
        if not shape[0].startswith(head):
            return
        if self._shape_count >= self.max_shapes or \
                self._shape_chars >= self.max_cached_chars:
            self._shapes.clear()
            self._shape_count = self._shape_chars = 0
        known = self._shapes.setdefault(head, [])
        if any(shape == seen.shape for seen in known):
            return
        if len(known) >= 8:  # a first word with many shapes: drop the least used (last)
            self._shape_count -= 1
            self._shape_chars -= known.pop().size
        known.append(_Known(shape, cid, len(masked)))
        self._shape_count += 1
        self._shape_chars += len(masked)

    def _template(self, cid: int, fallback: str) -> str:
        cluster = self._drain.id_to_cluster.get(cid)
        return str(cluster.get_template()) if cluster is not None else mask(fallback)

    def _prune(self, cls: str) -> None:
        """Drop the smaller half of the patterns whose Drain cluster is gone."""
        patterns = self._patterns[cls]
        live = self._drain.id_to_cluster
        gone = sorted((p.count, cid) for cid, p in patterns.items() if live.get(cid) is None)
        for count, cid in gone[:max(1, len(gone) // 2)]:
            del patterns[cid]
            self._pruned[cls] += 1
            self._pruned_lines[cls] += count

    def result(self, top: int = 10) -> dict[str, Any]:
        """{"patterns": [...], "totals": {...}, "distinct": {...}}: errors first, then warnings,
        each by count (most first), at most `top` per level class; `share` is the pattern's
        fraction of the lines of its level class."""
        out: list[dict[str, Any]] = []
        totals = self.totals
        for cls in LEVEL_CLASSES:
            total = totals[cls]
            ranked = sorted(self._patterns[cls].items(),
                            key=lambda item: (-item[1].count, item[1].first, item[0]))
            for cid, p in ranked[:top]:
                cluster = self._drain.id_to_cluster.get(cid)
                out.append({
                    "template": str(cluster.get_template()) if cluster is not None
                    else p.template,
                    "level": cls, "count": p.count, "share": round(p.count / total, 4),
                    "first_seen": _iso(p.first), "last_seen": _iso(p.last),
                    "services": sorted(p.services), "exemplar": p.exemplar})
        return {"patterns": out, "totals": totals,
                "distinct": {c: len(self._patterns[c]) + self._pruned[c]
                             for c in LEVEL_CLASSES}}
