"""Regeneration merge: new auto text replaces untouched sections; human-edited sections stay."""

from __future__ import annotations

from typing import Final

from agents.postmortem.model import (
    AUTO_MARKER,
    CITATION,
    HUMAN_MARKER,
    LINKS,
    Section,
    cited,
    split_sections,
)

_LINK_ENTRY: Final = "- [ev:"


def _norm(body: list[str]) -> str:
    """A section body as compared: trailing spaces and surrounding blank lines do not count."""
    return "\n".join(line.rstrip() for line in body).strip("\n")


def _by_name(sections: list[Section]) -> dict[str, Section]:
    out: dict[str, Section] = {}
    for section in sections:
        out.setdefault(section.name, section)  # a duplicated heading: the first one counts
    return out


def human_sections(previous_auto: str, current: str) -> list[str]:
    """Names of the sections of `current` a person wrote or changed since `previous_auto`
    (in `current`'s order). Links is bookkeeping that merge() always regenerates: not listed."""
    _, auto = split_sections(previous_auto)
    before = _by_name(auto)
    out = []
    for section in split_sections(current)[1]:
        if section.name == LINKS or section.name in out:
            continue
        old = before.get(section.name)
        if old is None or _norm(old.body) != _norm(section.body):
            out.append(section.name)
    return out


def _kept(body: list[str]) -> list[str]:
    """A human section's body, marked as kept: the auto marker goes, the human marker leads."""
    lines = [line for line in body if line.strip() not in (AUTO_MARKER, HUMAN_MARKER)]
    while lines and not lines[0].strip():
        lines.pop(0)
    return [HUMAN_MARKER, *lines]


def _render(name: str, body: list[str]) -> str:
    return "\n".join([f"## {name}", *body]).rstrip("\n")


def _links(new: Section, current: Section | None, needed: set[int]) -> list[str]:
    """The new Links, plus entries from the current Links that kept human text still cites,
    plus any line a person added there that is not an entry."""
    body = [line for line in new.body if line.strip()]
    have = set(cited("\n".join(body)))
    extra: list[str] = []
    for line in (current.body if current is not None else []):
        text = line.strip()
        if not text or text in (AUTO_MARKER, HUMAN_MARKER):
            continue
        seqs = [int(s) for s in CITATION.findall(text)]
        if text.startswith(_LINK_ENTRY) and seqs:
            if seqs[0] in needed and seqs[0] not in have:
                extra.append(line)
                have.add(seqs[0])
        else:
            extra.append(line)
    return [*body, *extra, ""]


def merge(previous_auto: str, previous_current: str, new_auto: str) -> str:
    """The regenerated draft.

    A section of `previous_current` equal to its `previous_auto` text takes the `new_auto`
    text; one a person changed is kept as written, marked `<!-- human: kept on regeneration
    -->` (its `<!-- auto -->` marker removed). Sections new in `new_auto` are added; a section
    a person deleted stays deleted; a section a person added stays after the section it
    followed. The title and preamble follow `new_auto`; Links is regenerated, keeping entries
    the kept human text still cites.
    """
    _, old_auto = split_sections(previous_auto)
    _, current = split_sections(previous_current)
    head, fresh = split_sections(new_auto)
    before, now = _by_name(old_auto), _by_name(current)
    human = set(human_sections(previous_auto, previous_current))

    out: list[tuple[str, list[str]]] = []
    for section in fresh:
        if section.name == LINKS:
            out.append((LINKS, []))  # filled in last, once the cited seqs are known
        elif section.name in human and section.name in now:
            out.append((section.name, [*_kept(now[section.name].body), ""]))
        elif section.name in now or section.name not in before:
            out.append((section.name, section.body))
        # else: in the previous auto text but deleted by a person, so it stays deleted
    placed = {name for name, _ in out}
    for i, section in enumerate(current):
        if section.name in placed or (section.name in before and section.name not in human):
            continue
        body = [*_kept(section.body), ""]
        # After the section it followed, else before Links.
        prior = next((c.name for c in reversed(current[:i]) if c.name in placed), None)
        links_at = next((j for j, (n, _) in enumerate(out) if n == LINKS), len(out))
        at = links_at if prior is None else next(j for j, (n, _) in enumerate(out)
                                                  if n == prior) + 1
        out.insert(at, (section.name, body))
        placed.add(section.name)

    needed = {s for name, body in out if name != LINKS for s in cited("\n".join(body))}
    new_links = _by_name(fresh).get(LINKS)
    result = list(head)
    while result and not result[-1].strip():
        result.pop()
    result.append("")
    for name, body in out:
        lines = (_links(new_links, now.get(LINKS), needed)
                 if name == LINKS and new_links is not None else body)
        result += [_render(name, lines), ""]
    return "\n".join(result)
