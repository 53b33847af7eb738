"""Keeps the control plane's copy of the conversation current, so another worker can pick the
session up (stateless resume) and an escalation carries the transcript.

Finished messages are queued as the session adds them and sent through an :class:`Outbox`: in
order, in batches, retried with backoff while the control plane restarts; the message ids make a
resend harmless, and the queue is bounded.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from livekit.agents import AgentSession, llm
from livekit.agents.voice.events import ConversationItemAddedEvent

from shared.schemas import ConversationMessage

from .audience import Attribution
from .control_plane_client import SessionApi
from .outbox import Outbox

logger = logging.getLogger(__name__)

MAX_PENDING = 1_000
BATCH = 50


def to_message(item: object) -> ConversationMessage | None:
    if not isinstance(item, llm.ChatMessage) or item.role not in ("user", "assistant"):
        return None
    text = (item.text_content or "").replace("\x00", "")
    if not text.strip():
        return None
    metrics = item.metrics
    started = metrics.get("started_speaking_at")
    ended = metrics.get("stopped_speaking_at")
    return ConversationMessage(
        item_id=item.id,
        role=item.role,
        text=text[:10_000],
        interrupted=item.interrupted,
        started_at=_utc(started if started is not None else item.created_at),
        ended_at=_utc(ended) if ended is not None else None,
    )


def _utc(unix: float) -> datetime:
    return datetime.fromtimestamp(unix, UTC)


class ConversationSync:
    def __init__(
        self,
        session: AgentSession[Any],
        deck: SessionApi,
        *,
        speaker: str | Callable[[llm.ChatMessage], Attribution] | None = None,
    ) -> None:
        # the participant identity the user's messages are from, or who said each (a room
        # with several people: audience.Floor.said_by)
        self._speaker = speaker
        self._outbox: Outbox[ConversationMessage] = Outbox(
            deck.add_messages, name="conversation_sync", batch=BATCH, max_pending=MAX_PENDING
        )
        session.on("conversation_item_added", self._on_item)

    def _on_item(self, event: ConversationItemAddedEvent) -> None:
        message = to_message(event.item)
        if message is not None:
            if message.role == "user" and isinstance(event.item, llm.ChatMessage):
                speaker = self._speaker
                if callable(speaker):
                    speaker = speaker(event.item).identity
                message = message.model_copy(update={"speaker": speaker})
            self._outbox.put(message)

    async def flush(self, within_seconds: float = 5.0) -> bool:
        """Wait until every message so far reached the control plane; False if it took longer."""
        return await self._outbox.flush(within_seconds)

    async def aclose(self) -> None:
        await self._outbox.aclose()
