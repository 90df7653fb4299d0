"""Tamper-evident audit trail: append with a SHA-256 hash chain, verify, export NDJSON."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass
from typing import IO, Any, Literal

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from core.database import WRITE_LOCK_KEY
from core.errors import AuditAppendFailed, AuditChainBroken
from core.models import AuditEvent
from core.timeutil import iso, utcnow
from guardrails.redaction import redact

GENESIS_HASH = "0" * 64
# The database's write lock: every write transaction already holds it (core/database.py); taken
# again here (re-entrant) so an append made through another engine is serialised all the same.
_PG_AUDIT_LOCK = WRITE_LOCK_KEY
_HEAD_KEY = "metaops.audit_head"

ActorKind = Literal["human", "agent", "system"]
Via = Literal["slack", "api", "cli", "web", "webhook", "scheduler", "system"]


@dataclass(frozen=True, slots=True)
class Actor:
    """Who did it, and through which channel."""

    kind: ActorKind
    id: str
    via: Via


SYSTEM = Actor("system", "metaops", "system")
WORKER = Actor("system", "worker", "scheduler")


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def event_body(row: dict[str, Any]) -> dict[str, Any]:
    """The hashed fields of an event, in the shape used by exports."""
    return {
        "seq": row["seq"],
        "id": row["id"],
        "ts": row["ts"],
        "type": row["type"],
        "actor": row["actor"],
        "target": row["target"],
        "incident_id": row["incident_id"],
        "action_id": row["action_id"],
        "outcome": row["outcome"],
        "payload": row["payload"],
        "prev_hash": row["prev_hash"],
    }


def chain_hash(prev_hash: str, body: dict[str, Any]) -> str:
    """hash = SHA-256(prev_hash ‖ canonical JSON of the event body)."""
    return hashlib.sha256((prev_hash + canonical_json(body)).encode("utf-8")).hexdigest()


def row_to_export(row: AuditEvent) -> dict[str, Any]:
    """An event as exported and shown by the API (body plus its hash)."""
    body = event_body(
        {
            "seq": row.seq,
            "id": row.id,
            "ts": iso(row.ts),
            "type": row.type,
            "actor": {"kind": row.actor_kind, "id": row.actor_id, "via": row.actor_via},
            "target": row.target,
            "incident_id": row.incident_id,
            "action_id": row.action_id,
            "outcome": row.outcome,
            "payload": row.payload,
            "prev_hash": row.prev_hash,
        }
    )
    body["hash"] = row.hash
    return body


def _head(session: Session) -> tuple[int, str]:
    cached = session.info.get(_HEAD_KEY)
    if cached is not None:
        return int(cached[0]), str(cached[1])
    if session.get_bind().dialect.name == "postgresql":
        # Serialises appenders across replicas until this transaction ends: the chain never forks.
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_AUDIT_LOCK})
    # On SQLite the write session already holds the database write lock (BEGIN IMMEDIATE).
    last = session.execute(
        select(AuditEvent.seq, AuditEvent.hash).order_by(AuditEvent.seq.desc()).limit(1)
    ).first()
    return (0, GENESIS_HASH) if last is None else (int(last[0]), str(last[1]))


def append_sync(
    session: Session,
    *,
    type: str,
    actor: Actor,
    target: str | None = None,
    incident_id: int | None = None,
    action_id: str | None = None,
    outcome: str | None = None,
    payload: dict[str, Any] | None = None,
    flush: bool = False,
) -> AuditEvent:
    """Append one event inside the caller's write transaction (payload is redacted first).

    The row is written with the transaction's next flush (batched with its neighbours); pass
    flush=True where the event must be in the database before the caller goes on. Either way,
    if the append fails the caller's transaction fails with it, so nothing it guarded commits.
    """
    try:
        seq, prev = _head(session)
        now = utcnow()
        clean = redact(payload or {}).value
        clean_target = None if target is None else str(redact(target).value)
        body = event_body(
            {
                "seq": seq + 1,
                "id": str(uuid.uuid4()),
                "ts": iso(now),
                "type": type,
                "actor": {"kind": actor.kind, "id": actor.id, "via": actor.via},
                "target": clean_target,
                "incident_id": incident_id,
                "action_id": action_id,
                "outcome": outcome,
                "payload": clean,
                "prev_hash": prev,
            }
        )
        digest = chain_hash(prev, body)
        row = AuditEvent(
            seq=seq + 1,
            id=body["id"],
            ts=now,
            type=type,
            actor_kind=actor.kind,
            actor_id=actor.id,
            actor_via=actor.via,
            target=clean_target,
            incident_id=incident_id,
            action_id=action_id,
            outcome=outcome,
            payload=clean,
            prev_hash=prev,
            hash=digest,
        )
        session.add(row)
        if flush:
            session.flush()
    except Exception as exc:
        raise AuditAppendFailed(f"audit append failed: {exc.__class__.__name__}") from exc
    session.info[_HEAD_KEY] = (seq + 1, digest)
    return row


async def append(
    session: AsyncSession,
    *,
    type: str,
    actor: Actor,
    target: str | None = None,
    incident_id: int | None = None,
    action_id: str | None = None,
    outcome: str | None = None,
    payload: dict[str, Any] | None = None,
    flush: bool = False,
) -> AuditEvent:
    """append_sync for an AsyncSession."""
    return await session.run_sync(lambda sync: append_sync(
        sync, type=type, actor=actor, target=target, incident_id=incident_id,
        action_id=action_id, outcome=outcome, payload=payload, flush=flush))


@dataclass(frozen=True, slots=True)
class VerifyReport:
    ok: bool
    count: int
    head_seq: int
    head_hash: str
    first_bad_seq: int | None = None
    reason: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "count": self.count,
            "head_seq": self.head_seq,
            "head_hash": self.head_hash,
            "first_bad_seq": self.first_bad_seq,
            "reason": self.reason,
        }


class ChainVerifier:
    """Feeds events in seq order; stops at the first row whose link or hash is wrong."""

    def __init__(self) -> None:
        self.count = 0
        self.prev_seq = 0
        self.prev_hash = GENESIS_HASH

    def feed(self, event: dict[str, Any]) -> None:
        seq = event.get("seq")
        if not isinstance(seq, int):
            raise AuditChainBroken(self.prev_seq + 1, "missing or non-integer seq")
        if seq != self.prev_seq + 1:
            raise AuditChainBroken(seq, f"expected seq {self.prev_seq + 1} (gap or reorder)")
        if event.get("prev_hash") != self.prev_hash:
            raise AuditChainBroken(seq, "prev_hash does not match the previous event's hash")
        try:
            expected = chain_hash(self.prev_hash, event_body(event))
        except KeyError as exc:
            raise AuditChainBroken(seq, f"missing field {exc.args[0]}") from exc
        if event.get("hash") != expected:
            raise AuditChainBroken(seq, "hash does not match the event's content")
        self.count += 1
        self.prev_seq = seq
        self.prev_hash = expected

    def report(self, error: AuditChainBroken | None = None) -> VerifyReport:
        if error is None:
            return VerifyReport(True, self.count, self.prev_seq, self.prev_hash)
        return VerifyReport(
            False, self.count, self.prev_seq, self.prev_hash, error.seq, error.reason
        )


def verify_events(events: Iterable[dict[str, Any]]) -> VerifyReport:
    verifier = ChainVerifier()
    try:
        for event in events:
            verifier.feed(event)
    except AuditChainBroken as exc:
        return verifier.report(exc)
    return verifier.report()


async def iter_events(session: AsyncSession, batch: int = 5000) -> AsyncIterator[dict[str, Any]]:
    """All events in seq order, streamed in batches (constant memory)."""
    after = 0
    while True:
        rows = (
            await session.execute(
                select(AuditEvent).where(AuditEvent.seq > after).order_by(AuditEvent.seq)
                .limit(batch)
            )
        ).scalars().all()
        if not rows:
            return
        for row in rows:
            yield row_to_export(row)
        after = rows[-1].seq
        session.expunge_all()


async def verify_database(session: AsyncSession) -> VerifyReport:
    verifier = ChainVerifier()
    try:
        async for event in iter_events(session):
            verifier.feed(event)
    except AuditChainBroken as exc:
        return verifier.report(exc)
    return verifier.report()


def export_line(event: dict[str, Any]) -> str:
    return canonical_json(event) + "\n"


def _parse_lines(lines: Iterable[str]) -> Iterator[dict[str, Any]]:
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            raise AuditChainBroken(-number, f"line {number} is not valid JSON") from exc
        if not isinstance(value, dict):
            raise AuditChainBroken(-number, f"line {number} is not a JSON object")
        yield value


def verify_file(handle: IO[str]) -> VerifyReport:
    """Verify an NDJSON export offline, without the database."""
    verifier = ChainVerifier()
    try:
        for event in _parse_lines(handle):
            verifier.feed(event)
    except AuditChainBroken as exc:
        if exc.seq < 0:
            # A line that does not parse: name the seq it would have had.
            exc = AuditChainBroken(verifier.prev_seq + 1, exc.reason)
        return verifier.report(exc)
    return verifier.report()
