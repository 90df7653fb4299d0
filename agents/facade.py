"""The one module api/ calls into agents through: intake, workers, graph runs, decisions."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable
from contextlib import AsyncExitStack
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from agents.chat import service as chat
from agents.chat.freeform import Freeform, FreeformReply
from agents.chat.grammar import Proposal
from agents.checkpoint import open_checkpointer
from agents.intake.batcher import IngestBatcher
from agents.intake.normalize import (
    Delivery,
    from_alertmanager,
    from_generic,
    from_grafana,
    from_pagerduty,
)
from agents.intake.payloads import (
    AlertmanagerWebhook,
    GenericAlert,
    GrafanaWebhook,
    PagerDutyEvent,
)
from agents.intake.store import POSTMORTEM, IngestResult, enqueue
from agents.investigation import InvestigationRunner, start_investigation
from agents.postmortem import service as postmortem
from agents.postmortem.polish import polish
from agents.reasoner import RuleReasoner
from agents.runbooks.loader import load_runbooks
from agents.specialists.config import SpecialistConfig
from agents.specialists.verification import (
    VERIFY_EVENTS,
    delay,
    needs_check,
    step_of,
    verify_action,
)
from agents.supervisor import GraphDeps, build_graph
from agents.toolbox import build_registry
from agents.worker import WorkerPool
from core.database import Database
from core.errors import NotFound, ValidationFailed
from core.models import Action, AuditEvent, Incident, WorkItem
from core.settings import Settings
from core.timeutil import iso, utcnow
from guardrails import audit
from guardrails.actions import DecisionResult, decide_and_commit, escalate_due, expire_due
from guardrails.audit import row_to_export
from guardrails.executor import Executor, set_kill_switch
from guardrails.policy import Policy
from guardrails.tokens import Principal

if TYPE_CHECKING:
    from agents.llm import LLM, CallRecord

log = logging.getLogger("metaops.runtime")


class Runtime:
    """Background machinery of one server process: ingest, workers, graph runs, the sweep."""

    def __init__(self, db: Database, settings: Settings, *,
                 llm_observe: Callable[[CallRecord], None] | None = None) -> None:
        self.db = db
        self.settings = settings
        self.workers = WorkerPool(
            db, _handle_item, concurrency=settings.worker_concurrency,
            poll_seconds=settings.worker_poll_seconds, lease_seconds=settings.worker_lease_seconds,
            after=self._after_item,
        )
        self.batcher = IngestBatcher(
            db, max_batch=settings.ingest_batch_max, wait_ms=settings.ingest_batch_wait_ms,
            on_commit=self.workers.notify,
        )
        self.registry = build_registry(settings)
        self.policy = Policy.load(settings.policy_file)
        self.executor = Executor(db, self.registry, crash_hook=self._crash_hook,
                                 on_succeeded=self._after_success)
        self.runbooks = load_runbooks(settings.runbooks_dir)
        self.deps = GraphDeps(db, self.registry, self.policy, RuleReasoner(self.runbooks),
                              self.executor, SpecialistConfig.from_settings(settings),
                              llm=_llm(settings, db, llm_observe))
        self.runner: InvestigationRunner | None = None
        self._stack = AsyncExitStack()
        self._tasks: set[asyncio.Task[Any]] = set()
        # Jobs live in the database (the job store), so scheduled work survives restarts.
        self._scheduler = AsyncIOScheduler(
            jobstores={"default": SQLAlchemyJobStore(
                engine=db.jobstore_engine(settings.data_dir))})

    def _crash_hook(self, point: str) -> None:
        if self.settings.env == "test" and self.settings.test_crash_point == point:
            log.warning("test hook: dying at %s", point)
            os._exit(137)

    async def start(self) -> None:
        saver = await self._stack.enter_async_context(
            open_checkpointer(self.db, self.settings.data_dir))
        graph = build_graph(self.deps, saver)
        self.runner = InvestigationRunner(self.db, graph)
        _CURRENT["runtime"] = self
        await self.executor.reconcile()
        await self._recover_checks()
        await self.batcher.start()
        await self.workers.start()
        self._scheduler.add_job(scheduled_sweep, "interval", seconds=self.settings.sweep_seconds,
                                id="sweep", max_instances=1, coalesce=True,
                                replace_existing=True, misfire_grace_time=60)
        self._scheduler.start()
        self._spawn(self.runner.recover())

    async def stop(self) -> None:
        self._scheduler.shutdown(wait=False)
        await self.batcher.stop()
        await self.workers.stop()
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self._stack.aclose()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _after_item(self, item: WorkItem) -> None:
        if item.kind == POSTMORTEM:
            try:
                await polish(self.deps, item.incident_id)  # LLM mode only; never blocks publish
            except Exception:
                log.exception("post-mortem prose for incident %d failed", item.incident_id)
            await postmortem.publish(self.deps, item.incident_id)
            return
        assert self.runner is not None
        await self.runner.run(item.incident_id)

    # -- incidents: human resolve, notes, post-mortems -----------------------------------------

    async def resolve_incident(self, incident_id: int, principal: Principal,
                               via: audit.Via) -> bool:
        """A human closes the incident; its post-mortem is drafted by the next worker cycle.
        False if it was already resolved."""
        async with self.db.write() as session:
            incident = await session.get(Incident, incident_id)
            if incident is None:
                raise NotFound(f"no incident {incident_id}", {"field": "incident_id"})
            if incident.status != "open":
                return False
            now = utcnow()
            incident.status, incident.open_key = "resolved", None
            incident.resolved_at = incident.updated_at = now
            await audit.append(session, type="incident.resolved",
                               actor=audit.Actor("human", principal.name, via),
                               incident_id=incident_id, target=f"incident:{incident_id}",
                               outcome="resolved", payload={"reason": "resolved by a human"})
            await session.run_sync(lambda s: enqueue(s, incident_id, POSTMORTEM))
        self.workers.notify()
        return True

    async def add_note(self, incident_id: int, principal: Principal, text: str,
                       via: audit.Via) -> dict[str, Any]:
        """A human note is a new audit event (it never alters one); on a resolved incident it
        re-resolves the post-mortem."""
        async with self.db.write() as session:
            incident = await session.get(Incident, incident_id)
            if incident is None:
                raise NotFound(f"no incident {incident_id}", {"field": "incident_id"})
            row = await audit.append(
                session, type="note.added", actor=audit.Actor("human", principal.name, via),
                incident_id=incident_id, target=f"incident:{incident_id}", outcome="noted",
                payload={"text": text, "author": principal.name}, flush=True)
            if incident.status == "resolved":
                await session.run_sync(lambda s: enqueue(s, incident_id, POSTMORTEM))
            event = row_to_export(row)
        self.workers.notify()
        return event

    async def postmortem(self, incident_id: int) -> dict[str, Any] | None:
        """The latest revision with what the validator and lint say of it now."""
        async with self.db.read() as session:
            if await session.get(Incident, incident_id) is None:
                raise NotFound(f"no incident {incident_id}", {"field": "incident_id"})
            row = await postmortem.latest(session, incident_id)
            if row is None:
                return None
            inp = await postmortem.load_input(session, incident_id)
            published = await session.get(
                Action, f"incident-{incident_id}:postmortem:r{row.revision}")
        return {"incident_id": incident_id, "revision": row.revision, "author": row.author,
                "created_at": iso(row.created_at), "markdown": row.markdown,
                "problems": [vars_of(p) for p in postmortem.check(row.markdown, inp)],
                "published": None if published is None else {
                    "action_id": published.id, "status": published.status,
                    "path": published.args.get("path")}}

    async def edit_postmortem(self, incident_id: int, principal: Principal,
                              markdown: str) -> dict[str, Any]:
        async with self.db.write() as session:
            if await session.get(Incident, incident_id) is None:
                raise NotFound(f"no incident {incident_id}", {"field": "incident_id"})
            row, problems = await postmortem.save_edit(session, incident_id, markdown,
                                                       principal.name)
        if row is None:
            raise ValidationFailed("the post-mortem does not pass the validator and the lint",
                             {"field": "markdown", "problems": [vars_of(p) for p in problems]})
        await postmortem.publish(self.deps, incident_id)
        found = await self.postmortem(incident_id)
        assert found is not None
        return found

    async def request_postmortem(self, incident_id: int) -> None:
        async with self.db.write() as session:
            if await session.get(Incident, incident_id) is None:
                raise NotFound(f"no incident {incident_id}", {"field": "incident_id"})
            await session.run_sync(lambda s: enqueue(s, incident_id, POSTMORTEM))
        self.workers.notify()

    # -- chat (agents/chat/service.py) ----------------------------------------------------------
    # Imported here so this block stays self-contained; it can move to the top-level imports.

    async def chat_logs(self, service: str, window: timedelta) -> dict[str, Any]:
        """`service`'s error log patterns over the last `window` (redacted)."""
        return await chat.read_logs(self.deps, service, window)

    async def chat_cost(self, window: timedelta) -> dict[str, Any]:
        """LLM spend over the last `window` (redacted)."""
        return await chat.read_cost(self.deps, window)

    async def chat_propose(self, proposal: Proposal, principal: Principal, via: audit.Via,
                           incident_id: int | None = None) -> str:
        """A chat proposal through the gate; its action id."""
        action_id = await chat.propose(self.deps, proposal, principal, via, incident_id)
        async with self.db.read() as session:
            action = await session.get(Action, action_id)
        if action is not None and action.status == "approved":
            # Allowed by policy without approval: no graph holds this action, so run it here.
            self._spawn(self.executor.execute(action_id))
        return action_id

    async def chat_freeform(self, text: str, principal: Principal, via: audit.Via, *,
                            incident_id: int | None, conversation: str) -> FreeformReply | None:
        """LLM mode: the model answers a question the grammar does not know, with READ tools;
        None without a model or when none answered (the caller shows the help)."""
        if self.deps.llm is None or not self.deps.llm.enabled:
            return None
        return await Freeform(self.deps, self.deps.llm, self.chat_propose).answer(
            text, principal, via, incident_id=incident_id, conversation=conversation)

    async def ingest(self, delivery: Delivery) -> IngestResult:
        return await self.batcher.submit(delivery)

    async def decide(self, action_id: str, principal: Principal, decision: str, via: str,
                     reason: str | None = None) -> DecisionResult:
        """Record a human decision, then let the incident's graph carry on in the background
        (an action of no incident, e.g. proposed in chat, is simply run once approved)."""
        result = await decide_and_commit(self.db, action_id, principal, decision, via, reason)
        if result.changed and result.action.incident_id is not None:
            self._spawn(self._continue(result.action.incident_id, action_id))
        elif result.changed and result.status == "approved":
            self._spawn(self.executor.execute(action_id))
        return result

    async def _continue(self, incident_id: int, action_id: str) -> None:
        assert self.runner is not None
        try:
            await self.runner.resume_if_decided(incident_id)
            # The graph may not hold this action (a rollback proposed by a check) or may be
            # busy: run it here. A no-op unless it is still approved (idempotency key).
            await self.executor.execute(action_id)
        except Exception:
            log.exception("continuing incident %d failed", incident_id)

    async def _after_success(self, action_id: str) -> None:
        """A runbook step with `verify` gets its check scheduled (`wait` later) in the job store:
        a scheduled resume that survives restarts, not a sleeping task."""
        async with self.db.read() as session:
            action = await session.get(Action, action_id)
        ref = None if action is None else step_of(action, self.runbooks)
        if ref is None or not needs_check(ref):
            return
        self._schedule_check(action_id, utcnow() + delay(ref))

    def _schedule_check(self, action_id: str, when: datetime) -> None:
        self._scheduler.add_job(
            scheduled_verify, "date", run_date=when, args=[action_id], id=f"verify:{action_id}",
            replace_existing=True, misfire_grace_time=None, coalesce=True)

    async def _recover_checks(self) -> None:
        """Succeeded runbook actions whose check was never recorded nor scheduled (the process
        died between the two): schedule it, at once if its time has passed."""
        since = utcnow() - timedelta(days=1)
        async with self.db.read() as session:
            actions = list(await session.scalars(select(Action).where(
                Action.status == "succeeded", Action.executed_at >= since,
                Action.source.like("runbook:%"))))
            checked = set(await session.scalars(select(AuditEvent.action_id).where(
                AuditEvent.type.in_(VERIFY_EVENTS),
                AuditEvent.action_id.in_([a.id for a in actions]))))
        for action in actions:
            ref = step_of(action, self.runbooks)
            if (action.id in checked or not needs_check(ref) or ref is None
                    or self._scheduler.get_job(f"verify:{action.id}") is not None):
                continue
            self._schedule_check(action.id, (action.executed_at or utcnow()) + delay(ref))

    async def verify(self, action_id: str) -> str | None:
        return await verify_action(self.deps, self.runbooks, action_id)

    async def set_kill_switch(self, on: bool, actor: audit.Actor) -> None:
        async with self.db.write() as session:
            await set_kill_switch(session, on, actor)
        if not on:
            self._spawn(self._release())

    async def _release(self) -> None:
        await self.executor.run_approved()
        assert self.runner is not None
        await self.runner.recover()

    async def sweep(self) -> None:
        """Periodic: escalate slow approvals, expire overdue ones (default deny), settle graphs."""
        try:
            async with self.db.write() as session:
                expired: list[Action] = await expire_due(session)
                await escalate_due(session)
            assert self.runner is not None
            for incident_id in {a.incident_id for a in expired if a.incident_id is not None}:
                await self.runner.resume_if_decided(incident_id)
        except Exception:
            log.exception("sweep failed")


def _llm(settings: Settings, db: Database,
         observe: Callable[[CallRecord], None] | None) -> LLM | None:
    """The model client in LLM mode, else None (langchain-openai is then never imported)."""
    if not settings.llm_providers:
        return None
    from agents.llm import LLM  # noqa: PLC0415

    return LLM(settings, db, observe=observe)


def vars_of(problem: postmortem.Check) -> dict[str, Any]:
    return {"line": problem.line, "message": problem.message}


async def _handle_item(session: AsyncSession, item: WorkItem) -> None:
    """The exactly-once part of a work item, inside the transaction that completes it."""
    if item.kind == POSTMORTEM:
        await postmortem.regenerate(session, item.incident_id)
    else:
        await start_investigation(session, item)


# The job store keeps jobs by reference ("module:function"), so jobs find the runtime here.
_CURRENT: dict[str, Runtime] = {}


async def scheduled_sweep() -> None:
    runtime = _CURRENT.get("runtime")
    if runtime is not None:
        await runtime.sweep()


async def scheduled_verify(action_id: str) -> None:
    runtime = _CURRENT.get("runtime")
    if runtime is None:
        return
    try:
        await runtime.verify(action_id)
    except Exception:
        log.exception("check of %s failed", action_id)


__all__ = [
    "AlertmanagerWebhook",
    "Delivery",
    "GenericAlert",
    "GrafanaWebhook",
    "IngestResult",
    "PagerDutyEvent",
    "Runtime",
    "from_alertmanager",
    "from_generic",
    "from_grafana",
    "from_pagerduty",
]
