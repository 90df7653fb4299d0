"""Runs each incident's supervisor graph: start, pause at approvals, resume by interrupt id."""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Command
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core.database import Database, execute_count, insert_for
from core.models import Action, GraphThread, Incident, WorkItem
from core.timeutil import utcnow
from guardrails import audit
from guardrails.actions import PENDING

log = logging.getLogger("metaops.investigation")
SUPERVISOR = audit.Actor("agent", "supervisor", "system")


def thread_id_for(incident_id: int) -> str:
    return f"incident-{incident_id}"


async def start_investigation(session: AsyncSession, item: WorkItem) -> None:
    """The exactly-once part of an investigation work item: open the incident's graph thread.

    Runs inside the transaction that completes the item; the graph itself runs after commit.
    """
    opened = await session.execute(
        insert_for(session, GraphThread).values(
            incident_id=item.incident_id, thread_id=thread_id_for(item.incident_id),
            status="running", updated_at=utcnow())
        .on_conflict_do_nothing(index_elements=["incident_id"]).returning(GraphThread.thread_id))
    if opened.scalar() is None:
        return
    await session.execute(update(Incident).where(Incident.id == item.incident_id)
                          .values(investigation="running"))
    await audit.append(session, type="investigation.started", actor=SUPERVISOR,
                       incident_id=item.incident_id, target=f"incident:{item.incident_id}",
                       outcome="running", payload={"work_item": item.id, "attempt": item.attempts})


class InvestigationRunner:
    """One compiled graph per process; at most one run per incident thread at a time."""

    def __init__(self, db: Database, graph: CompiledStateGraph[Any, Any, Any, Any]) -> None:
        self._db = db
        self._graph = graph
        self._locks: defaultdict[int, asyncio.Lock] = defaultdict(asyncio.Lock)

    def _cfg(self, incident_id: int) -> RunnableConfig:
        return {"configurable": {"thread_id": thread_id_for(incident_id)}}

    async def run(self, incident_id: int) -> None:
        """Start the graph, or continue one a crash interrupted; no-op if paused or done."""
        async with self._locks[incident_id]:
            cfg = self._cfg(incident_id)
            snapshot = await self._graph.aget_state(cfg)
            if snapshot.interrupts:
                await self._settle(incident_id)
                return
            if snapshot.next:
                await self._graph.ainvoke(None, cfg, durability="sync")
            elif not snapshot.values:
                await self._graph.ainvoke({"incident_id": incident_id}, cfg, durability="sync")
            await self._settle(incident_id)

    async def resume(self, incident_id: int) -> bool:
        """Resume a paused thread after a decision; False if it was not waiting on us."""
        async with self._locks[incident_id]:
            async with self._db.write() as session:
                thread = await session.get(GraphThread, incident_id)
                if thread is None or thread.interrupt_id is None:
                    return False
                interrupt_id = thread.interrupt_id
                # Compare-and-set: of many replicas handling decisions, one resumes this pause.
                claimed = await execute_count(session, update(GraphThread).where(
                    GraphThread.incident_id == incident_id,
                    GraphThread.interrupt_id == interrupt_id).values(
                        interrupt_id=None, status="running", updated_at=utcnow()))
            if not claimed:
                return False
            cfg = self._cfg(incident_id)
            snapshot = await self._graph.aget_state(cfg)
            if interrupt_id not in {i.id for i in snapshot.interrupts}:
                await self._settle(incident_id)
                return False
            command: Command[Any] = Command(resume={interrupt_id: {"resumed": True}})
            await self._graph.ainvoke(command, cfg, durability="sync")
            await self._settle(incident_id)
            return True

    async def _settle(self, incident_id: int) -> None:
        snapshot = await self._graph.aget_state(self._cfg(incident_id))
        waiting = snapshot.interrupts[0].id if snapshot.interrupts else None
        status = "waiting" if waiting else ("running" if snapshot.next else "done")
        async with self._db.write() as session:
            thread = await session.get(GraphThread, incident_id)
            if thread is None:
                return
            changed = (thread.status, thread.interrupt_id) != (status, waiting)
            thread.status, thread.interrupt_id, thread.updated_at = status, waiting, utcnow()
            await session.execute(update(Incident).where(Incident.id == incident_id).values(
                investigation={"waiting": "waiting_approval"}.get(status, status)))
            if changed:
                await audit.append(
                    session, type=f"investigation.{status}", actor=SUPERVISOR,
                    incident_id=incident_id, target=f"incident:{incident_id}", outcome=status,
                    payload={"runbook": snapshot.values.get("runbook"),
                             "proposals": snapshot.values.get("proposals", [])})

    async def recover(self) -> None:
        """After a restart: finish runs a crash cut short; resume pauses decided meanwhile."""
        async with self._db.read() as session:
            threads = list(await session.scalars(select(GraphThread).where(
                GraphThread.status.in_(("running", "waiting")))))
        for thread in threads:
            try:
                if thread.status == "running":
                    await self.run(thread.incident_id)
                else:
                    await self.resume_if_decided(thread.incident_id)
            except Exception:
                log.exception("recovering incident %d failed", thread.incident_id)

    async def resume_if_decided(self, incident_id: int) -> bool:
        """Resume when nothing the pause waits for is still pending."""
        snapshot = await self._graph.aget_state(self._cfg(incident_id))
        if not snapshot.interrupts:
            return False
        ids = snapshot.values.get("proposals", [])
        async with self._db.read() as session:
            pending = await session.scalar(select(Action.id).where(
                Action.id.in_(ids), Action.status == PENDING).limit(1))
            approved = await session.scalar(select(Action.id).where(
                Action.id.in_(ids), Action.status == "approved").limit(1))
        if pending is not None and approved is None:
            return False
        return await self.resume(incident_id)
