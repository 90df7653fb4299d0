"""Post-mortem revisions in the database: draft on resolve, re-resolve on late events, publish."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from agents.postmortem.lint import lint
from agents.postmortem.model import PostmortemInput
from agents.postmortem.revisions import merge
from agents.postmortem.validator import validate
from agents.postmortem.writer import write
from agents.specialists.deps import GraphDeps
from agents.specialists.runbook_executor import propose_write
from core.models import (
    Action,
    ActionApproval,
    Alert,
    AuditEvent,
    Finding,
    Incident,
    PostmortemRevision,
)
from core.timeutil import iso, utcnow
from guardrails import audit
from guardrails.audit import row_to_export
from tools.base import WriteTool

WRITER = audit.Actor("agent", "postmortem_writer", "system")
PUBLISH_TOOL = "gitops.publish_postmortem"


def _opt(value: Any) -> str | None:
    return None if value is None else iso(value)


async def load_input(session: AsyncSession, incident_id: int) -> PostmortemInput:
    incident = await session.get(Incident, incident_id)
    if incident is None:
        raise LookupError(f"no incident {incident_id}")
    alerts = (await session.scalars(select(Alert).where(Alert.incident_id == incident_id)
                                    .order_by(Alert.id))).all()
    findings = (await session.scalars(select(Finding).where(Finding.incident_id == incident_id)
                                      .order_by(Finding.id))).all()
    actions = (await session.scalars(select(Action).where(Action.incident_id == incident_id)
                                     .order_by(Action.created_at))).all()
    approvals = (await session.scalars(select(ActionApproval).where(
        ActionApproval.action_id.in_([a.id for a in actions])).order_by(ActionApproval.id))).all()
    events = (await session.scalars(select(AuditEvent).where(
        AuditEvent.incident_id == incident_id).order_by(AuditEvent.seq))).all()
    by_action: dict[str, list[dict[str, Any]]] = {}
    for a in approvals:
        by_action.setdefault(a.action_id, []).append(
            {"principal": a.principal, "decision": a.decision, "via": a.via,
             "created_at": iso(a.created_at)})
    return PostmortemInput(
        incident={"id": incident.id, "title": incident.title, "severity": incident.severity,
                  "services": list(incident.services), "status": incident.status,
                  "created_at": iso(incident.created_at),
                  "resolved_at": _opt(incident.resolved_at)},
        alerts=[{"name": a.name, "status": a.status, "severity": a.severity,
                 "service": a.service, "title": a.title, "starts_at": iso(a.starts_at),
                 "ends_at": _opt(a.ends_at)} for a in alerts],
        findings=[{"specialist": f.specialist, "kind": f.kind, "summary": f.summary,
                   "data": f.data, "created_at": iso(f.created_at)} for f in findings],
        actions=[{"id": a.id, "tool": a.tool, "args": a.args, "status": a.status,
                  "preview": (a.preview or {}).get("summary"), "requested_by": a.requested_by,
                  "created_at": iso(a.created_at), "executed_at": _opt(a.executed_at),
                  "approvals": by_action.get(a.id, [])} for a in actions],
        events=[row_to_export(e) for e in events],
        now=utcnow())


async def latest(session: AsyncSession, incident_id: int) -> PostmortemRevision | None:
    return (await session.scalars(select(PostmortemRevision).where(
        PostmortemRevision.incident_id == incident_id)
        .order_by(PostmortemRevision.revision.desc()).limit(1))).first()


def people(inp: PostmortemInput) -> set[str]:
    """Everyone the incident names: approvers, requesters and note authors (for the lint)."""
    names = {str(a["principal"]) for act in inp.actions for a in act["approvals"]}
    names |= {str(e["payload"].get("author")) for e in inp.events
              if e["type"] == "note.added" and e["payload"].get("author")}
    names |= {str(e["actor"]["id"]) for e in inp.events if e["actor"]["kind"] == "human"}
    return names


@dataclass(frozen=True, slots=True)
class Check:
    line: int
    message: str


def check(markdown: str, inp: PostmortemInput) -> list[Check]:
    """The validator's and the blameless lint's problems, by line."""
    found = [*validate(markdown, inp.events, inp.alerts),
             *lint(markdown, inp.events, people(inp))]
    return sorted((Check(p.line, p.message) for p in found), key=lambda c: c.line)


async def regenerate(session: AsyncSession, incident_id: int) -> PostmortemRevision | None:
    """A new auto revision inside the caller's transaction, keeping every section a human
    edited; None when nothing changed since the last revision."""
    inp = await load_input(session, incident_id)
    draft = write(inp)
    last = await latest(session, incident_id)
    markdown = draft.markdown if last is None else merge(last.auto_markdown, last.markdown,
                                                         draft.markdown)
    if last is not None and markdown == last.markdown and draft.markdown == last.auto_markdown:
        return None
    row = PostmortemRevision(incident_id=incident_id, revision=(last.revision + 1) if last else 1,
                             markdown=markdown, auto_markdown=draft.markdown, author="metaops",
                             created_at=utcnow())
    session.add(row)
    await session.flush()
    await audit.append(session, type="postmortem.drafted", actor=WRITER,
                       incident_id=incident_id, target=f"postmortem:{incident_id}",
                       outcome=f"revision {row.revision}",
                       payload={"revision": row.revision, "cited": len(draft.cited),
                                "durations": draft.durations})
    return row


async def save_edit(session: AsyncSession, incident_id: int, markdown: str,
                    author: str) -> tuple[PostmortemRevision | None, list[Check]]:
    """A human edit becomes a new revision if it passes the validator and the lint."""
    inp = await load_input(session, incident_id)
    problems = check(markdown, inp)
    if problems:
        return None, problems
    last = await latest(session, incident_id)
    auto = last.auto_markdown if last is not None else write(inp).markdown
    row = PostmortemRevision(incident_id=incident_id, revision=(last.revision + 1) if last else 1,
                             markdown=markdown, auto_markdown=auto, author=author,
                             created_at=utcnow())
    session.add(row)
    await session.flush()
    await audit.append(session, type="postmortem.edited",
                       actor=audit.Actor("human", author, "api"), incident_id=incident_id,
                       target=f"postmortem:{incident_id}", outcome=f"revision {row.revision}",
                       payload={"revision": row.revision})
    return row, []


def path_for(incident: Incident) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", incident.title.lower()).strip("-")[:60].strip("-")
    return f"postmortems/{incident.created_at:%Y-%m-%d}-{slug or 'incident'}-{incident.id}.md"


async def publish(deps: GraphDeps, incident_id: int) -> str | None:
    """Commit the latest revision to the GitOps repo: a policy-allowed write through the gate
    and the executor (audited, exactly once per revision)."""
    if PUBLISH_TOOL not in deps.registry.names():
        return None
    async with deps.db.read() as session:
        incident = await session.get(Incident, incident_id)
        row = await latest(session, incident_id)
    if incident is None or row is None:
        return None
    tool = deps.registry.get(PUBLISH_TOOL)
    assert isinstance(tool, WriteTool)
    args = tool.spec.args.model_validate({"path": path_for(incident), "content": row.markdown})
    action_id = f"incident-{incident_id}:postmortem:r{row.revision}"
    await propose_write(deps, incident_id, tool, args, action_id, WRITER,
                        requested_by="postmortem_writer", source=f"postmortem:{incident_id}")
    await deps.executor.execute(action_id)
    return action_id
