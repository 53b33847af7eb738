"""A room with several people: who the presenter listens to (the floor), whose words each user
message holds, and typed questions.

The framework's voice loop hears one linked participant (livekit/agents #2046). The floor policy:
the participant who holds the floor is the linked one; while they speak, and for
``hold_seconds`` after they stop (their turn is still being recognised and answered), nobody
else is heard. After that, the first other participant LiveKit reports as an active speaker
takes the floor (the room's linked participant moves to them). Speech from others while the
floor is held is not heard and not queued: they speak again once it is free. Viewers never
take the floor; they may type questions.

Slide moves asked of the presenter follow the asker's role, as the join page's buttons do: a
viewer's typed request is declined, and while the host has locked navigation (the slide state's
``locked``) only the host's are carried out.

Typed questions arrive as LiveKit text streams on ``lk.chat`` from anyone in the room
(participants and viewers), at most one per ``question_interval_seconds`` per identity (a
polite refusal otherwise); each becomes a user turn answered by voice, with the answer's text on
the transcription stream every client reads.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from livekit import rtc
from livekit.agents import AgentSession, llm
from livekit.agents.job import DEFAULT_PARTICIPANT_KINDS
from livekit.agents.voice.room_io.types import DEFAULT_CLOSE_ON_DISCONNECT_REASONS

from agent_worker.narration import slide_state_in
from shared.schemas import ROLE_ATTRIBUTE

logger = logging.getLogger(__name__)

CHAT_TOPIC = "lk.chat"
MAX_QUESTION_CHARS = 500
# How long a question waits for its sender to be announced (livekit-server announces a
# participant who publishes nothing up to 3 s after it joined; see TypedQuestions._sender).
SENDER_WAIT_SECONDS = 10.0
TOO_SOON = "{name}, one question at a time, please: ask again in a few seconds."
VIEWERS_DO_NOT_NAVIGATE = "Viewers cannot move the slides; the presenter and participants can."
LOCKED = "The host has locked navigation: only the host can move the slides now."
# A name the model reads in front of the user's words: "[Ada] what does it cost?"
_ADDRESSED = re.compile(r"^\[(?P<name>[^\[\]\n]{1,100})\]\s*")


def may_speak(participant: rtc.RemoteParticipant) -> bool:
    """A person who may talk to the presenter: not a viewer (listen-only), not another agent."""
    return (
        participant.kind in DEFAULT_PARTICIPANT_KINDS
        and participant.attributes.get(ROLE_ATTRIBUTE) != "viewer"
    )


def addressed(name: str, text: str) -> str:
    """The user's words as the model reads them, with who said them."""
    clean = name.replace("[", "(").replace("]", ")").replace("\n", " ").strip()[:100]
    return f"[{clean}] {text}" if clean else text


def speaker_of(text: str) -> tuple[str | None, str]:
    """The name in front of the user's words (``addressed``), and the words."""
    match = _ADDRESSED.match(text)
    if match is None:
        return None, text
    return match["name"], text[match.end() :]


@dataclass(frozen=True)
class Attribution:
    identity: str
    name: str
    typed: bool = False


class Floor:
    """Who the presenter listens to now, and whose words each user message holds."""

    def __init__(
        self,
        room: rtc.Room,
        first: rtc.RemoteParticipant,
        *,
        hold_seconds: float = 2.0,
        on_empty: Callable[[], None] | None = None,
    ) -> None:
        self._room = room
        self._hold_s = hold_seconds
        self._on_empty = on_empty
        self._session: AgentSession[Any] | None = None
        self.holder = _attribution(first)
        self.asker = self.holder  # whose words the presenter answers now (spoken or typed)
        self._quiet_since: float | None = time.monotonic()
        self._started = time.time()
        self._said_by: dict[str, Attribution] = {}  # user message id → its speaker
        self._recheck: asyncio.TimerHandle | None = None
        self._speaking: list[rtc.Participant] = []  # LiveKit's latest active speakers

    def attach(self, session: AgentSession[Any]) -> None:
        """Follow the session's user (the holder speaking) and the room's speakers."""
        self._session = session
        session.on("user_state_changed", self._on_user_state)
        self._room.on("active_speakers_changed", self._on_active_speakers)
        self._room.on("participant_disconnected", self._on_left)

    async def detach(self) -> None:
        if self._recheck is not None:
            self._recheck.cancel()
        self._room.off("active_speakers_changed", self._on_active_speakers)
        self._room.off("participant_disconnected", self._on_left)

    # -- attribution ----------------------------------------------------------------------

    def said_by(self, message: llm.ChatMessage) -> Attribution:
        """The speaker of a user message: fixed the first time anyone asks (the model, the
        transcript, the turn log), as the floor does not move while a turn is pending."""
        found = self._said_by.get(message.id)
        if found is None:
            found = self.holder
            if len(self._said_by) > 10_000:
                self._said_by.clear()
            self._said_by[message.id] = found
        return found

    def name_of(self, message: llm.ChatMessage) -> str | None:
        """The name the model reads in front of a user message: in a room with more than one
        person in it, for messages of this job (not the conversation a lost worker had)."""
        if message.id not in self._said_by and message.created_at < self._started:
            return None
        who = self.said_by(message)
        people = [p for p in self._room.remote_participants.values() if _is_person(p)]
        return who.name if len(people) > 1 or who.typed else None

    def typed(self, who: Attribution, message: llm.ChatMessage) -> None:
        self._said_by[message.id] = who
        self.asker = who

    def navigation_refused(self) -> str | None:
        """Why the presenter may not move the slides for the person it answers now, if it may
        not: they are a viewer, or the host locked navigation and they are not the host."""
        participant = self._room.remote_participants.get(self.asker.identity)
        role = participant.attributes.get(ROLE_ATTRIBUTE) if participant is not None else None
        if role == "viewer":
            return VIEWERS_DO_NOT_NAVIGATE
        state = slide_state_in(self._room.metadata)
        if state is not None and state.locked and role != "host":
            return LOCKED
        return None

    # -- the floor ------------------------------------------------------------------------

    def _on_user_state(self, event: Any) -> None:
        if event.new_state == "speaking":
            self._quiet_since = None
            self.asker = self.holder
        elif self._quiet_since is None:
            self._quiet_since = time.monotonic()
            self._check_later(self._hold_s)  # someone may be waiting for the floor

    def _free_in(self) -> float | None:
        """Seconds until the floor is free; None while the holder speaks."""
        if self._quiet_since is None:
            return None
        return max(0.0, self._quiet_since + self._hold_s - time.monotonic())

    def _on_active_speakers(self, speakers: list[rtc.Participant]) -> None:
        self._speaking = list(speakers)
        if any(p.identity == self.holder.identity for p in speakers):
            return  # the holder speaks: they keep the floor
        wanting = [
            p
            for p in speakers
            if isinstance(p, rtc.RemoteParticipant)
            and may_speak(p)
            and p.identity != self.holder.identity
        ]
        if not wanting:
            return
        free_in = self._free_in()
        if free_in is None:  # the holder speaks; checked again once they stop
            logger.debug("the floor is held", extra={"participant": self.holder.identity})
            return
        if free_in > 0:  # their turn is still being answered: ask again once the hold is over
            self._check_later(free_in)
            return
        self._give_to(wanting[0])

    def _check_later(self, seconds: float) -> None:
        """Look at LiveKit's latest speakers again in ``seconds`` (its event fires on changes
        only, and someone who began while the floor was held may still be speaking)."""
        if self._recheck is None:
            loop = asyncio.get_running_loop()
            self._recheck = loop.call_later(seconds + 0.05, self._check_again)

    def _check_again(self) -> None:
        self._recheck = None
        self._on_active_speakers(self._speaking)

    def _give_to(self, participant: rtc.RemoteParticipant) -> None:
        if self._session is None:
            return
        self.holder = _attribution(participant)
        self._quiet_since = time.monotonic()
        self._session.room_io.set_participant(participant.identity)
        logger.info("the floor moved", extra={"participant": participant.identity})

    def _on_left(self, participant: rtc.RemoteParticipant) -> None:
        if not may_speak(participant):
            return
        others = [p for p in self._room.remote_participants.values() if may_speak(p)]
        if not others:
            # the last person who could speak left: the job leaves, as with one participant
            if (
                participant.disconnect_reason in DEFAULT_CLOSE_ON_DISCONNECT_REASONS
                and self._on_empty is not None
            ):
                self._on_empty()
            return
        if participant.identity == self.holder.identity:
            self._give_to(others[0])


class TypedQuestions:
    """Questions typed on the join page (LiveKit text streams on ``lk.chat``), rate-limited per
    identity, answered like spoken ones."""

    def __init__(
        self,
        room: rtc.Room,
        session: AgentSession[Any],
        floor: Floor,
        *,
        interval_seconds: float = 10.0,
    ) -> None:
        self._room = room
        self._session = session
        self._floor = floor
        self._interval_s = interval_seconds
        self._last: dict[str, float] = {}
        # one question handled at a time: an accepted question interrupts what is being said,
        # which must not cancel a refusal queued just before by the next one
        self._handling = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()
        self._started = asyncio.Event()  # the session has started: questions can be answered
        room.register_text_stream_handler(CHAT_TOPIC, self._on_stream)

    def ready(self) -> None:
        """The session has started; questions received before now are answered from here."""
        self._started.set()

    def _on_stream(self, reader: rtc.TextStreamReader, identity: str) -> None:
        task = asyncio.create_task(self._answer(reader, identity), name="typed_question")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer(self, reader: rtc.TextStreamReader, identity: str) -> None:
        text = (await read_question(reader)).replace("\x00", "").strip()[:MAX_QUESTION_CHARS]
        if not text:
            return
        arrived = time.monotonic()
        participant = await self._sender(identity)
        if participant is None or not _is_person(participant):
            reason = "not announced" if participant is None else "not a person"
            logger.info(
                "typed question dropped: sender %s", reason, extra={"participant": identity}
            )
            return
        await self._started.wait()
        async with self._handling:
            await self._handle(text, _attribution(participant, typed=True), arrived)

    async def _sender(self, identity: str) -> rtc.RemoteParticipant | None:
        """The participant who sent a stream. LiveKit forwards data at once but announces a
        participant who publishes no media (a viewer) in batches, every 3 s in livekit-server
        1.13: a viewer's first question can arrive before the viewer does."""
        known = self._room.remote_participants.get(identity)
        if known is not None:
            return known
        arrived: asyncio.Future[rtc.RemoteParticipant] = asyncio.get_running_loop().create_future()

        def on_connected(participant: rtc.RemoteParticipant) -> None:
            if participant.identity == identity and not arrived.done():
                arrived.set_result(participant)

        self._room.on("participant_connected", on_connected)  # no await since the lookup
        try:
            return await asyncio.wait_for(arrived, SENDER_WAIT_SECONDS)
        except TimeoutError:
            return None
        finally:
            self._room.off("participant_connected", on_connected)

    async def _handle(self, text: str, who: Attribution, now: float) -> None:
        identity = who.identity
        last = self._last.get(identity)
        if last is not None and now - last < self._interval_s:
            logger.info("typed question refused: too soon", extra={"participant": identity})
            self._session.say(TOO_SOON.format(name=who.name), add_to_chat_ctx=False)
            return
        self._last[identity] = now
        message = llm.ChatMessage(role="user", content=[text])
        self._floor.typed(who, message)
        logger.info("typed question", extra={"participant": identity})
        await self._session.interrupt()
        self._session.generate_reply(user_input=message)

    async def aclose(self) -> None:
        self._room.unregister_text_stream_handler(CHAT_TOPIC)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


async def read_question(reader: rtc.TextStreamReader) -> str:
    """A typed question's first ``MAX_QUESTION_CHARS`` (and a little more, so the cut falls
    after them): the rest of a longer stream is never held in memory. A stream the sender
    aborted is no question."""
    parts: list[str] = []
    size = 0
    try:
        async for chunk in reader:
            parts.append(chunk[: MAX_QUESTION_CHARS + 1 - size])
            size += len(parts[-1])
            if size > MAX_QUESTION_CHARS:
                break
    except rtc.StreamError:
        logger.info("typed question stream failed", exc_info=True)
        return ""
    finally:
        reader.close()  # a no-op after the end; stops the stream cut short here
    return "".join(parts)


def _is_person(participant: rtc.RemoteParticipant) -> bool:
    return participant.kind in DEFAULT_PARTICIPANT_KINDS


def _attribution(participant: rtc.RemoteParticipant, *, typed: bool = False) -> Attribution:
    return Attribution(participant.identity, participant.name or participant.identity, typed)
