"""Specialists' findings: redacted, stored once per incident/specialist/kind, and audited."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from core.database import Database, insert_for
from core.models import Finding
from core.timeutil import utcnow
from guardrails import audit
from guardrails.redaction import redact, redact_text


@dataclass(frozen=True, slots=True)
class StoredFinding:
    specialist: str
    kind: str
    summary: str
    data: dict[str, Any]


async def load_finding(db: Database, incident_id: int, specialist: str,
                       kind: str) -> StoredFinding | None:
    async with db.read() as session:
        row = (await session.scalars(select(Finding).where(
            Finding.incident_id == incident_id, Finding.specialist == specialist,
            Finding.kind == kind))).first()
    return None if row is None else StoredFinding(row.specialist, row.kind, row.summary, row.data)


async def record_finding(db: Database, incident_id: int, specialist: str, kind: str,
                         summary: str, data: dict[str, Any],
                         highlights: dict[str, Any] | None = None) -> StoredFinding:
    """Store the finding unless this specialist already recorded one of this kind (a re-run
    after a crash keeps the first); the audit event carries the summary and key figures so a
    post-mortem can cite it."""
    clean = redact(data).value
    text = redact_text(summary)[0]
    actor = audit.Actor("agent", specialist, "system")
    async with db.write() as session:
        inserted = await session.execute(
            insert_for(session, Finding).values(
                incident_id=incident_id, specialist=specialist, kind=kind, summary=text,
                data=clean, created_at=utcnow())
            .on_conflict_do_nothing(index_elements=["incident_id", "specialist", "kind"])
            .returning(Finding.id))
        finding_id = inserted.scalar()
        if finding_id is not None:
            await audit.append(session, type="finding.recorded", actor=actor,
                               incident_id=incident_id, target=f"finding:{finding_id}",
                               outcome=str(clean.get("status", "ok")),
                               payload={"specialist": specialist, "kind": kind,
                                        "summary": text, **(highlights or {})})
    stored = await load_finding(db, incident_id, specialist, kind)
    assert stored is not None
    return stored
