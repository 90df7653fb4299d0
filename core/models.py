"""ORM models: incidents, alerts, work items, audit events, tokens, actions, approvals, findings,
post-mortem revisions, Slack identities and the Slack outbox."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from core.timeutil import as_utc, utcnow

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on both backends (SQLite would otherwise hand back naive ones)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = as_utc(value)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else as_utc(value)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {  # noqa: RUF012 - SQLAlchemy reads this class attribute
        datetime: UTCDateTime(),
        dict[str, Any]: JSON(),
        list[Any]: JSON(),
    }


class Incident(Base):
    """A group of alerts sharing a group key; at most one open incident per key."""

    __tablename__ = "incidents"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(32))
    group_key: Mapped[str] = mapped_column(Text)
    # sha256 of source+group key while open, NULL once resolved: a unique index then allows
    # exactly one open incident per group on both SQLite and PostgreSQL.
    open_key: Mapped[str | None] = mapped_column(String(64), unique=True)
    title: Mapped[str] = mapped_column(String(512))
    severity: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default="open", index=True)
    investigation: Mapped[str] = mapped_column(String(32), default="queued")
    labels: Mapped[dict[str, Any]] = mapped_column(default=dict)
    services: Mapped[list[Any]] = mapped_column(default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    resolved_at: Mapped[datetime | None] = mapped_column(default=None)

    alerts: Mapped[list[Alert]] = relationship(back_populates="incident", lazy="raise")


class Alert(Base):
    """One alert episode: identity (source, fingerprint, starts_at), redacted payload."""

    __tablename__ = "alerts"
    __table_args__ = (
        UniqueConstraint("source", "fingerprint", "starts_at", name="uq_alerts_identity"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id"), index=True)
    source: Mapped[str] = mapped_column(String(32))
    fingerprint: Mapped[str] = mapped_column(String(128))
    # "source:fingerprint" while firing, NULL once resolved: one firing episode per fingerprint.
    firing_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    status: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(256))
    title: Mapped[str] = mapped_column(Text)
    severity: Mapped[str] = mapped_column(String(32))
    service: Mapped[str | None] = mapped_column(String(256))
    labels: Mapped[dict[str, Any]] = mapped_column(default=dict)
    annotations: Mapped[dict[str, Any]] = mapped_column(default=dict)
    starts_at: Mapped[datetime] = mapped_column()
    ends_at: Mapped[datetime | None] = mapped_column(default=None)
    generator_url: Mapped[str | None] = mapped_column(Text)
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    redacted_paths: Mapped[list[Any]] = mapped_column(default=list)
    first_seen: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen: Mapped[datetime] = mapped_column(default=utcnow)
    times_seen: Mapped[int] = mapped_column(Integer, default=1)

    incident: Mapped[Incident] = relationship(back_populates="alerts", lazy="raise")


class WorkItem(Base):
    """Durable unit of background work (an investigation), committed with the alert."""

    __tablename__ = "work_items"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    # "kind:incident" while pending: at most one queued item of a kind per incident.
    pending_key: Mapped[str | None] = mapped_column(String(64), unique=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    claimed_by: Mapped[str | None] = mapped_column(String(128))
    lease_until: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)
    error: Mapped[str | None] = mapped_column(Text)


class AuditEvent(Base):
    """Append-only, hash-chained audit record (database triggers refuse UPDATE/DELETE)."""

    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_events_incident_seq", "incident_id", "seq"),
        Index("ix_audit_events_type_seq", "type", "seq"),
    )

    seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
                                     autoincrement=False)
    id: Mapped[str] = mapped_column(String(36), unique=True)
    ts: Mapped[datetime] = mapped_column(index=True)
    type: Mapped[str] = mapped_column(String(64))
    actor_kind: Mapped[str] = mapped_column(String(16))
    actor_id: Mapped[str] = mapped_column(String(256), index=True)
    actor_via: Mapped[str] = mapped_column(String(16))
    target: Mapped[str | None] = mapped_column(Text)
    incident_id: Mapped[int | None] = mapped_column(Integer)
    action_id: Mapped[str | None] = mapped_column(String(64))
    outcome: Mapped[str | None] = mapped_column(String(32))
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class ApiToken(Base):
    """A bearer token: only its SHA-256 is stored; role viewer < approver < admin, or webhook."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    source: Mapped[str | None] = mapped_column(String(32))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(128))
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)


class Action(Base):
    """A proposed change to the world and its lifecycle (see design.md, Action lifecycle)."""

    __tablename__ = "actions"

    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    incident_id: Mapped[int | None] = mapped_column(ForeignKey("incidents.id"), index=True)
    tool: Mapped[str] = mapped_column(String(128))
    effect: Mapped[str] = mapped_column(String(16))
    args: Mapped[dict[str, Any]] = mapped_column(default=dict)
    params_hash: Mapped[str] = mapped_column(String(64))
    preview: Mapped[dict[str, Any]] = mapped_column(default=dict)
    snapshot: Mapped[str | None] = mapped_column(Text)
    inverse: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    status: Mapped[str] = mapped_column(String(24), index=True)
    decision: Mapped[dict[str, Any]] = mapped_column(default=dict)
    required_approvals: Mapped[int] = mapped_column(Integer, default=1)
    approver_role: Mapped[str] = mapped_column(String(16), default="approver")
    separation_of_duties: Mapped[bool] = mapped_column(default=True)
    requested_by: Mapped[str] = mapped_column(String(256))
    source: Mapped[str | None] = mapped_column(String(256))
    expires_at: Mapped[datetime | None] = mapped_column(default=None, index=True)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    executed_at: Mapped[datetime | None] = mapped_column(default=None)


class ActionApproval(Base):
    """One human's decision on an action; one row per person however many channels they use."""

    __tablename__ = "action_approvals"
    __table_args__ = (UniqueConstraint("action_id", "principal", name="uq_action_approvals_once"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    action_id: Mapped[str] = mapped_column(ForeignKey("actions.id"), index=True)
    principal: Mapped[str] = mapped_column(String(256))
    decision: Mapped[str] = mapped_column(String(16))
    via: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ActionClaim(Base):
    """Idempotency key of an execution: inserted once, before the tool runs."""

    __tablename__ = "action_claims"

    action_id: Mapped[str] = mapped_column(ForeignKey("actions.id"), primary_key=True)
    claimed_by: Mapped[str] = mapped_column(String(128))
    claimed_at: Mapped[datetime] = mapped_column(default=utcnow)


class Control(Base):
    """Service-wide switches (the kill switch), changed only through audited calls."""

    __tablename__ = "controls"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[dict[str, Any]] = mapped_column(default=dict)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(256))


class GraphThread(Base):
    """One supervisor-graph thread per incident, and the interrupt it is waiting on."""

    __tablename__ = "graph_threads"

    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id"), primary_key=True)
    thread_id: Mapped[str] = mapped_column(String(64), unique=True)
    status: Mapped[str] = mapped_column(String(16))
    interrupt_id: Mapped[str | None] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class Finding(Base):
    """What one specialist concluded about an incident (redacted before it is stored)."""

    __tablename__ = "findings"
    # One finding per specialist and kind: a node that re-runs after a crash finds its own.
    __table_args__ = (UniqueConstraint("incident_id", "specialist", "kind",
                                       name="uq_findings_once"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id"), index=True)
    specialist: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(64))
    summary: Mapped[str] = mapped_column(Text)
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class PostmortemRevision(Base):
    """One revision of an incident's post-mortem: drafted by metaops or edited by a human."""

    __tablename__ = "postmortem_revisions"
    __table_args__ = (UniqueConstraint("incident_id", "revision",
                                       name="uq_postmortem_revisions_once"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id"), index=True)
    revision: Mapped[int] = mapped_column(Integer)
    markdown: Mapped[str] = mapped_column(Text)
    # The writer's own text this revision started from: what regeneration compares against to
    # tell the sections a human changed (kept) from the auto-filled ones (re-resolved).
    auto_markdown: Mapped[str] = mapped_column(Text)
    author: Mapped[str] = mapped_column(String(256))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class SlackIdentity(Base):
    """A Slack user mapped to a metaops principal: the only source of authority in Slack
    (channel membership never is)."""

    __tablename__ = "slack_identities"

    slack_user_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(128), index=True)
    role: Mapped[str] = mapped_column(String(16))
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class SlackMessage(Base):
    """The Slack outbox: one message to post, refresh or show to one user. Rows are written in
    the transactions that cause them (or by the feed that follows the audit trail) and sent
    later, so a Slack outage delays messages and never blocks anything else."""

    __tablename__ = "slack_messages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(255), unique=True)  # what makes a row once-only
    # incident | finding | card | execution | escalation | postmortem | text
    kind: Mapped[str] = mapped_column(String(16))
    ref: Mapped[str] = mapped_column(String(255))  # incident id, finding id, action id, seq
    op: Mapped[str] = mapped_column(String(16))  # post | refresh | ephemeral | respond
    incident_id: Mapped[int | None] = mapped_column(Integer, index=True)
    channel: Mapped[str | None] = mapped_column(String(80))
    thread_ts: Mapped[str | None] = mapped_column(String(32))  # a reply in a known thread
    user: Mapped[str | None] = mapped_column(String(32))  # ephemeral: who sees it
    body: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)  # text replies
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    claimed_until: Mapped[datetime | None] = mapped_column(default=None)
    last_error: Mapped[str | None] = mapped_column(Text)
    ts: Mapped[str | None] = mapped_column(String(32))  # the posted message's id
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(default=None)


class SlackReceipt(Base):
    """An inbound Slack request seen once (event id, click, command): retries are dropped."""

    __tablename__ = "slack_receipts"

    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    received_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class SlackFeed(Base):
    """How far the Slack feed has read the audit trail (one row)."""

    __tablename__ = "slack_feed"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
