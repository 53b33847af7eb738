"""Keeps the control plane's copy of the conversation current, so another worker can pick the
session up (stateless resume) and an escalation carries the transcript.

Finished messages are queued as the session adds them and sent in order, in batches, by one
task; a failed send is retried with backoff (the control plane may be restarting) and the
message ids make a resend harmless. The queue is bounded: a control plane gone for good costs
the oldest unsent messages, never the worker's memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from datetime import UTC, datetime
from typing import Any

from livekit.agents import AgentSession, llm
from livekit.agents.voice.events import ConversationItemAddedEvent

from shared.schemas import ConversationMessage

from .control_plane_client import ControlPlaneError, SessionApi

logger = logging.getLogger(__name__)

MAX_PENDING = 1_000
BATCH = 50
_RETRY_SECONDS = (0.5, 1.0, 2.0, 4.0)


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
    def __init__(self, session: AgentSession[Any], deck: SessionApi) -> None:
        self._deck = deck
        self._pending: deque[ConversationMessage] = deque(maxlen=MAX_PENDING)
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task = asyncio.create_task(self._send_forever(), name="conversation_sync")
        session.on("conversation_item_added", self._on_item)

    def _on_item(self, event: ConversationItemAddedEvent) -> None:
        message = to_message(event.item)
        if message is None:
            return
        if len(self._pending) == MAX_PENDING:
            logger.warning("conversation backlog is full; dropping the oldest message")
        self._pending.append(message)
        self._idle.clear()
        self._wake.set()

    async def flush(self, within_seconds: float = 5.0) -> bool:
        """Wait until every message so far reached the control plane; False if it took longer."""
        try:
            await asyncio.wait_for(self._idle.wait(), within_seconds)
        except TimeoutError:
            return False
        return True

    async def aclose(self) -> None:
        await self.flush()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _send_forever(self) -> None:
        failures = 0
        while True:
            if not self._pending:
                self._idle.set()
                self._wake.clear()
                await self._wake.wait()
                continue
            batch = list(self._pending)[:BATCH]
            try:
                await self._deck.add_messages(batch)
            except ControlPlaneError as exc:
                delay = _RETRY_SECONDS[min(failures, len(_RETRY_SECONDS) - 1)]
                failures += 1
                logger.warning(
                    "could not store the conversation, retrying",
                    extra={"status": exc.status_code, "retry_in": delay},
                )
                await asyncio.sleep(delay)
                continue
            failures = 0
            sent = {id(message) for message in batch}
            while self._pending and id(self._pending[0]) in sent:
                self._pending.popleft()
