"""What a Slack click, mention, DM or /metaops does once acknowledged: dedupe, identity, work."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from sqlalchemy import select

from api.chat import run_chat
from api.slack import blocks, outbox
from api.state import AppState
from core.database import insert_for
from core.errors import MetaopsError
from core.models import SlackMessage, SlackReceipt
from core.timeutil import utcnow
from guardrails import audit
from guardrails.identities import principal_for
from guardrails.tokens import Principal

log = logging.getLogger("metaops.slack")

MAX_REPLY = blocks.SECTION_TEXT


class Inbound:
    """Handlers the Bolt listeners call after ack(); `wake` nudges the outbox sender."""

    def __init__(self, state: AppState, wake: Any) -> None:
        self.state = state
        self.db = state.db
        self.wake = wake

    async def first_time(self, key: str) -> bool:
        """Record a request's identity; False when it was seen before (a Slack retry, or the
        same payload delivered again)."""
        async with self.db.write() as session:
            # RETURNING, not rowcount: psycopg reports -1 for INSERT ... ON CONFLICT DO NOTHING.
            inserted = await session.scalar(
                insert_for(session, SlackReceipt).values(key=key[:255], received_at=utcnow())
                .on_conflict_do_nothing(index_elements=["key"]).returning(SlackReceipt.key))
            return inserted is not None

    async def _principal(self, user_id: str, bot_user_id: str | None) -> Principal | None:
        if not user_id or user_id == bot_user_id:
            return None  # the bot's own identity never acts, whatever it is mapped to
        async with self.db.read() as session:
            return await principal_for(session, user_id)

    async def _refuse(self, *, user_id: str, channel: str | None, thread_ts: str | None,
                      reason: str, outcome: str, action_id: str | None = None,
                      response_url: str | None = None) -> None:
        """An ephemeral refusal to the one person, and an audit event: nothing else changes."""
        message = blocks.ephemeral_refusal(reason)
        async with self.db.write() as session:
            await audit.append(session, type="slack.refused",
                               actor=audit.Actor("human", f"slack:{user_id[:32]}", "slack"),
                               action_id=action_id, target=f"slack-user/{user_id[:32]}",
                               outcome=outcome, payload={"reason": reason})
            await self._reply(session, user_id=user_id, channel=channel, thread_ts=thread_ts,
                              message=message, ephemeral=True, response_url=response_url)
        self.wake()

    async def _reply(self, session: Any, *, user_id: str, channel: str | None,
                     thread_ts: str | None, message: dict[str, Any], ephemeral: bool,
                     response_url: str | None = None) -> None:
        key = f"reply:{uuid.uuid4().hex}"
        body = {"text": message["text"], "blocks": message.get("blocks", [])}
        if response_url:
            await outbox.enqueue(session, key=key, kind="text", ref=user_id, op=outbox.RESPOND,
                                 body={**body, "response_url": response_url,
                                       "response_type": "ephemeral",
                                       "replace_original": False})
        elif ephemeral:
            await outbox.enqueue(session, key=key, kind="text", ref=user_id,
                                 op=outbox.EPHEMERAL, channel=channel, thread_ts=thread_ts,
                                 user=user_id, body=body)
        else:
            await outbox.enqueue(session, key=key, kind="text", ref=user_id, channel=channel,
                                 thread_ts=thread_ts, body=body)

    # -- approve / reject buttons ---------------------------------------------------------

    async def click(self, body: dict[str, Any], decision: str, bot_user_id: str | None) -> None:
        user_id = str((body.get("user") or {}).get("id") or "")
        action = (body.get("actions") or [{}])[0]
        action_id = str(action.get("value") or "")
        container = body.get("container") or {}
        channel = str((body.get("channel") or {}).get("id") or container.get("channel_id") or "")
        message_ts = str(container.get("message_ts") or "")
        # The same click delivered again carries the same action_ts: one decision.
        if not await self.first_time(f"click:{user_id}:{action.get('action_ts')}:"
                                     f"{message_ts}:{action_id}"):
            return

        async def refuse(reason: str, outcome: str) -> None:
            await self._refuse(user_id=user_id, channel=channel or None, thread_ts=None,
                               action_id=action_id or None, reason=reason, outcome=outcome)

        if user_id and user_id == bot_user_id:
            await refuse("the bot's own identity can never decide", "forbidden")
            return
        principal = await self._principal(user_id, bot_user_id)
        if principal is None:
            await refuse("your Slack account is not mapped to a metaops principal; an admin "
                         "can map it with `metaops principal add --name NAME --slack-user "
                         f"{user_id} --role approver`", "unmapped")
            return
        if not principal.at_least("approver"):
            await refuse(f"{principal.name} has role {principal.role}; deciding on actions "
                         "needs the approver role", "forbidden")
            return
        reason = "rejected in Slack" if decision == "reject" else None
        try:
            await self.state.runtime.decide(action_id, principal, decision, "slack", reason)
        except MetaopsError as exc:
            await refuse(exc.message, "refused")

    # -- chat: mentions, DMs, /metaops ----------------------------------------------------

    async def chat(self, *, key: str, user_id: str, text: str, channel: str,
                   thread_ts: str | None, reply_ts: str | None, ephemeral: bool,
                   bot_user_id: str | None, response_url: str | None = None) -> None:
        """Run one chat line as the mapped principal and reply: in the thread (mentions), in
        the DM, or only to the asker (slash commands)."""
        if not await self.first_time(key):
            return
        principal = await self._principal(user_id, bot_user_id)
        if principal is None:
            await self._refuse(user_id=user_id, channel=channel, thread_ts=thread_ts,
                               response_url=response_url, outcome="unmapped", reason=(
                                   "your Slack account is not mapped to a metaops principal; "
                                   "an admin can map it with `metaops principal add --name NAME "
                                   f"--slack-user {user_id} --role viewer`"))
            return
        incident_id = await self._incident_of(channel, thread_ts)
        reply = await run_chat(self.state, principal, text, via="slack", incident_id=incident_id,
                               conversation=f"slack:{channel}:{reply_ts or thread_ts or ''}")
        message = {"text": blocks.truncate(reply.text, blocks.FALLBACK_TEXT),
                   "blocks": [{"type": "section", "text": {
                       "type": "mrkdwn", "verbatim": True,
                       "text": blocks.truncate(reply.text, MAX_REPLY)}}]}
        async with self.db.write() as session:
            await self._reply(session, user_id=user_id, channel=channel, thread_ts=reply_ts,
                              message=message, ephemeral=ephemeral, response_url=response_url)
        self.wake()

    async def _incident_of(self, channel: str, thread_ts: str | None) -> int | None:
        """A message in an incident's thread is about that incident."""
        if not thread_ts:
            return None
        async with self.db.read() as session:
            return await session.scalar(select(SlackMessage.incident_id).where(
                SlackMessage.kind == "incident", SlackMessage.op == outbox.POST,
                SlackMessage.channel == channel, SlackMessage.ts == thread_ts))
