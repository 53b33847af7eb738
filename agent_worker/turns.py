"""The turn log: one record per answer the voice loop gives, sent to the control plane.

A turn is one reply the session generates (a ``generate_reply`` speech): the user's words that
led to it, every tool call with its arguments and result, what the agent said, whether the user
cut it off, the slide before and after (from the room metadata the control plane pushes, as
every client sees it), and the framework's own measurements — end-of-turn and transcription
delay from the user message, time to first token and first audio byte from the LLM and TTS
requests the speech made, end-to-end latency from the reply — with the providers, models and
request ids. Narration (``say``) is not a turn; it is in the transcript.

Records go through an :class:`Outbox`: in order, batched, retried while the control plane
restarts, idempotent by the framework's speech id.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from livekit import rtc
from livekit.agents import AgentSession, llm
from livekit.agents.metrics import LLMMetrics, STTMetrics, TTSMetrics
from livekit.agents.voice import SpeechHandle
from livekit.agents.voice.events import (
    ConversationItemAddedEvent,
    MetricsCollectedEvent,
    SpeechCreatedEvent,
)

from shared.schemas import (
    SlideState,
    StageCall,
    ToolCallRecord,
    TurnRecord,
    TurnTimings,
    WordTiming,
)

from .audience import Attribution
from .control_plane_client import SessionApi
from .narration import slide_state_in
from .outbox import Outbox

logger = logging.getLogger(__name__)

# Metrics of a speech's last TTS request can be emitted just after its playout ends.
_SETTLE_SECONDS = 0.3
_MAX_TEXT = 10_000


class HeardWords:
    """The words the speech recogniser heard, each with when it was spoken (wall clock), for
    the turn log: the control plane silences the recording's user channel over the ones that
    held personal data. Bounded: the newest words only."""

    def __init__(self, keep: int = 5_000) -> None:
        self._words: deque[WordTiming] = deque(maxlen=keep)

    def add(self, words: Iterable[WordTiming]) -> None:
        self._words.extend(words)

    def between(self, start: float, end: float) -> list[WordTiming]:
        return [w for w in self._words if w.end >= start and w.start <= end]


class TurnRecorder:
    def __init__(
        self,
        session: AgentSession[Any],
        deck: SessionApi,
        *,
        room: rtc.Room | None = None,
        job_id: str | None = None,
        speaker: str | Callable[[llm.ChatMessage], Attribution] | None = None,
        heard: HeardWords | None = None,
    ) -> None:
        self._room = room
        self._job_id = job_id
        # the participant identity whose words the turns hold, or who said each message (a
        # room with several people: audience.Floor.said_by)
        self._speaker = speaker
        self._heard = heard
        self._outbox: Outbox[TurnRecord] = Outbox(deck.add_turns, name="turn_log", batch=20)
        self._unanswered: list[llm.ChatMessage] = []  # user messages no reply has taken yet
        self._open: list[_OpenTurn] = []
        self._calls: dict[str, list[StageCall]] = {}  # speech id → its LLM/TTS requests
        self._stt: list[StageCall] = []  # STT requests since the last turn (no speech id)
        self._finishing: set[asyncio.Task[None]] = set()
        session.on("speech_created", self._on_speech)
        session.on("conversation_item_added", self._on_item)
        session.on("metrics_collected", self._on_metrics)

    # -- events ---------------------------------------------------------------------------

    def _on_speech(self, event: SpeechCreatedEvent) -> None:
        if event.source != "generate_reply":
            return
        turn = _OpenTurn(event.speech_handle, self._slide(), self._stt)
        self._stt = []
        # A user message committed before this reply existed belongs to it.
        turn.users.extend(self._unanswered)
        self._unanswered = []
        self._open.append(turn)
        event.speech_handle.add_done_callback(self._on_done)

    def _on_item(self, event: ConversationItemAddedEvent) -> None:
        item = event.item
        if not isinstance(item, llm.ChatMessage) or item.role != "user":
            return
        # The framework adds the user's message once its reply is scheduled: it belongs to the
        # newest reply still open, else to the next one.
        live = [t for t in self._open if not t.handle.done()]
        if live and not live[-1].users:
            live[-1].users.append(item)
        else:
            self._unanswered.append(item)

    def _on_metrics(self, event: MetricsCollectedEvent) -> None:
        m = event.metrics
        meta = getattr(m, "metadata", None)
        provider = meta.model_provider if meta else None
        model = meta.model_name if meta else None
        if isinstance(m, LLMMetrics):
            call = StageCall(
                stage="llm",
                request_id=m.request_id[:200] or None,
                provider=provider,
                model=model,
                started_at=m.timestamp - m.duration,
                duration=max(m.duration, 0.0),
                first_output=m.ttft if m.ttft >= 0 else None,
                cancelled=m.cancelled,
            )
        elif isinstance(m, TTSMetrics):
            call = StageCall(
                stage="tts",
                request_id=m.request_id[:200] or None,
                provider=provider,
                model=model,
                started_at=m.timestamp - m.duration,
                duration=max(m.duration, 0.0),
                first_output=m.ttfb if m.ttfb >= 0 else None,
                cancelled=m.cancelled,
            )
        elif isinstance(m, STTMetrics):
            self._stt.append(
                StageCall(
                    stage="stt",
                    request_id=m.request_id[:200] or None,
                    provider=provider,
                    model=model,
                    started_at=m.timestamp - m.duration,
                    duration=max(m.duration, 0.0),
                )
            )
            return
        else:
            return
        if m.speech_id is not None:
            self._calls.setdefault(m.speech_id, []).append(call)

    def _on_done(self, handle: SpeechHandle) -> None:
        task = asyncio.create_task(self._finish(handle), name="turn_finish")
        self._finishing.add(task)
        task.add_done_callback(self._finishing.discard)

    async def _finish(self, handle: SpeechHandle) -> None:
        await asyncio.sleep(_SETTLE_SECONDS)
        turn = next((t for t in self._open if t.handle is handle), None)
        if turn is None:
            return
        self._open.remove(turn)
        record = turn.record(self._calls.pop(handle.id, []), self._slide(), job_id=self._job_id)
        if record is None:  # a discarded preemptive generation: nothing was said or done
            self._unanswered = turn.users + self._unanswered
            return
        self._outbox.put(self._attributed(record, turn.users))

    # -- lifecycle ------------------------------------------------------------------------

    async def flush(self, within_seconds: float = 5.0) -> bool:
        """Wait until every turn finished so far reached the control plane."""
        return await self._outbox.flush(within_seconds)

    async def aclose(self) -> None:
        """Send what the session produced: finished turns, and user words no reply took."""
        if self._finishing:
            await asyncio.wait(set(self._finishing), timeout=2 * _SETTLE_SECONDS + 1)
        if self._unanswered:
            now = datetime.now(UTC)
            self._outbox.put(
                self._attributed(
                    TurnRecord(
                        turn_id=f"unanswered_{self._unanswered[0].id}"[:100],
                        job_id=self._job_id,
                        started_at=_when(self._unanswered[0]) or now,
                        ended_at=now,
                        user_text=_joined(self._unanswered),
                        calls=self._stt,
                    ),
                    self._unanswered,
                )
            )
            self._unanswered = []
        await self._outbox.aclose()

    def _attributed(self, record: TurnRecord, users: list[llm.ChatMessage]) -> TurnRecord:
        """The turn with its speaker and the timings of the user's words: the recogniser's,
        else each message as one span (a recogniser without word timings, e.g. Whisper here)."""
        if not record.user_text:
            return record
        words: list[WordTiming] = []
        for message in users:
            started = message.metrics.get("started_speaking_at")
            stopped = message.metrics.get("stopped_speaking_at")
            if started is None or stopped is None:
                continue
            heard = self._heard.between(started - 1.0, stopped + 1.0) if self._heard else []
            text = (message.text_content or "")[:_MAX_TEXT]
            words.extend(heard or [WordTiming(word=text, start=started, end=stopped)])
        speaker, typed = self._speaker, False
        if callable(speaker) and users:
            said_by = speaker(users[0])
            speaker, typed = said_by.identity, said_by.typed
        return record.model_copy(
            update={"speaker": speaker, "typed": typed, "user_words": words[:3000]}
        )

    def _slide(self) -> SlideState | None:
        return slide_state_in(self._room.metadata) if self._room is not None else None


class _OpenTurn:
    def __init__(
        self, handle: SpeechHandle, slide: SlideState | None, stt: list[StageCall]
    ) -> None:
        self.handle = handle
        self.created_at = datetime.now(UTC)
        self.slide_before = slide
        self.stt = stt
        self.users: list[llm.ChatMessage] = []

    def record(
        self, calls: list[StageCall], slide: SlideState | None, *, job_id: str | None
    ) -> TurnRecord | None:
        items = self.handle.chat_items
        said = [i for i in items if isinstance(i, llm.ChatMessage) and i.role == "assistant"]
        outputs = {i.call_id: i for i in items if isinstance(i, llm.FunctionCallOutput)}
        tools = [
            ToolCallRecord(
                call_id=c.call_id[:200],
                name=c.name[:200],
                arguments=_clean(c.arguments),
                output=_clean(outputs[c.call_id].output) if c.call_id in outputs else None,
                is_error=outputs[c.call_id].is_error if c.call_id in outputs else False,
                started_at=c.created_at,
                duration=(
                    max(outputs[c.call_id].created_at - c.created_at, 0.0)
                    if c.call_id in outputs
                    else None
                ),
            )
            for c in items
            if isinstance(c, llm.FunctionCall)
        ]
        if not said and not tools and not self.users:
            return None
        user_metrics: dict[str, Any] = dict(self.users[-1].metrics) if self.users else {}
        reply_metrics: dict[str, Any] = dict(said[-1].metrics) if said else {}
        first_reply: dict[str, Any] = dict(said[0].metrics) if said else {}
        timings = TurnTimings(
            user_stopped_at=user_metrics.get("stopped_speaking_at"),
            end_of_turn_delay=user_metrics.get("end_of_turn_delay"),
            transcription_delay=user_metrics.get("transcription_delay"),
            on_user_turn_completed_delay=user_metrics.get("on_user_turn_completed_delay"),
            llm_ttft=first_reply.get("llm_node_ttft"),
            tts_ttfb=first_reply.get("tts_node_ttfb"),
            e2e_latency=first_reply.get("e2e_latency"),
            playback_latency=first_reply.get("playback_latency"),
            agent_started_at=first_reply.get("started_speaking_at"),
            agent_stopped_at=reply_metrics.get("stopped_speaking_at"),
        )
        providers: dict[str, str] = {}
        for stage, key, source in (
            ("stt", "stt_metadata", user_metrics),
            ("llm", "llm_metadata", reply_metrics),
            ("tts", "tts_metadata", reply_metrics),
        ):
            meta = source.get(key) or {}
            if meta.get("model_provider") or meta.get("model_name"):
                providers[stage] = (
                    f"{meta.get('model_provider') or '?'}/{meta.get('model_name') or '?'}"
                )
        for call in [*self.stt, *calls]:
            if call.stage not in providers and (call.provider or call.model):
                providers[call.stage] = f"{call.provider or '?'}/{call.model or '?'}"
        started = (_when(self.users[0]) if self.users else None) or self.created_at
        return TurnRecord(
            turn_id=self.handle.id[:100],
            job_id=job_id,
            started_at=started,
            ended_at=datetime.now(UTC),
            user_text=_joined(self.users),
            agent_text=" ".join(m.text_content or "" for m in said).strip()[:20_000] or None,
            interrupted=self.handle.interrupted or any(m.interrupted for m in said),
            tool_calls=tools[:50],
            slide_before=self.slide_before.index if self.slide_before else None,
            version_before=self.slide_before.version if self.slide_before else None,
            slide_after=slide.index if slide else None,
            version_after=slide.version if slide else None,
            timings=timings,
            calls=[*self.stt, *calls][:100],
            providers=providers,
        )


def _clean(text: str) -> str:
    return text.replace("\x00", "")[:_MAX_TEXT]


def _joined(messages: list[llm.ChatMessage]) -> str | None:
    text = " ".join((m.text_content or "").strip() for m in messages).strip()
    return _clean(text) or None


def _when(message: llm.ChatMessage) -> datetime | None:
    spoke = message.metrics.get("started_speaking_at")
    at = spoke if spoke is not None else message.created_at
    return datetime.fromtimestamp(at, UTC) if at else None
