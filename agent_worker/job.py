"""One dispatched job: load the session from the control plane, join the room, greet (or, for
a session another worker lost, say so and pick up), then present the deck."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from livekit import rtc
from livekit.agents import (
    AgentSession,
    APIError,
    AutoSubscribe,
    JobContext,
    TurnHandlingOptions,
    inference,
    llm,
    room_io,
    tts,
)
from pydantic import ValidationError

from shared.languages import phrase
from shared.schemas import ConversationMessage, DispatchMetadata, SessionContext
from shared.settings import WorkerSettings

from .audience import Floor, TypedQuestions, may_speak
from .avatar.presence import AUDIO_ONLY, attach_avatar, start_face
from .config import JobConfig
from .control_plane_client import (
    ControlPlaneClient,
    ControlPlaneError,
    SessionApi,
    SessionNotFoundError,
)
from .conversation import ConversationSync
from .liveness import JobHeartbeat
from .narration import RESUMED, Narrator, slide_state_in
from .prefetch import SearchPrefetch
from .presenter import Presenter
from .prewarm import prewarmed_vad, prewarmed_whisper, vendor_avatar_settings, worker_settings
from .providers import build_llm, build_stt, build_tts, first_voice_piper
from .recording import RecordingSegments, recording_options
from .rehearsal import Rehearsal
from .responder import OfflineResponder
from .turns import HeardWords, TurnRecorder
from .usage import UsageMeter, avatar_mode_of

logger = logging.getLogger(__name__)


async def run_job(config: JobConfig, ctx: JobContext) -> None:
    try:
        metadata = DispatchMetadata.model_validate_json(ctx.job.metadata)
    except ValidationError:
        # the metadata carries a credential: log where it failed, never what it held
        logger.error("dispatch metadata is invalid", extra={"job_id": ctx.job.id})
        ctx.shutdown(reason="invalid dispatch metadata")
        return
    ctx.log_context_fields = {"session_id": str(metadata.session_id)}

    control_plane = ControlPlaneClient(
        config.control_plane_url, timeout_seconds=config.request_timeout_seconds
    )
    # Shutdown callbacks run concurrently: what still sends to the control plane (the
    # conversation, the turn log, the recording) finishes before its client closes.
    senders: list[Callable[[], Awaitable[None]]] = []

    async def close_control_plane() -> None:
        await asyncio.gather(*(close() for close in senders), return_exceptions=True)
        if senders:
            await _report_records_complete(control_plane, metadata)
        await control_plane.aclose()

    ctx.add_shutdown_callback(close_control_plane)

    # Joining the room does not depend on the session's context: both at once (a job for a
    # session that has ended meanwhile joins and leaves straight away, saying nothing).
    connecting = asyncio.ensure_future(ctx.connect(auto_subscribe=AutoSubscribe.AUDIO_ONLY))
    context = await _load_session(control_plane, metadata)
    if context is None or context.status == "ended":
        await asyncio.gather(connecting, return_exceptions=True)  # then leave, connected or not
        if context is None:
            ctx.shutdown(reason="session context unavailable")
        else:
            logger.info("session has ended, not joining")
            ctx.shutdown(reason="session ended")
        return
    start_face(context.avatar, worker_settings(ctx.proc))  # drawn while the room connects

    speech = build_tts(worker_settings(ctx.proc), config, language=context.language)
    ctx.add_shutdown_callback(speech.aclose)
    # Metered from here, so the greeting rendered before the session starts counts too.
    meter = UsageMeter(
        control_plane.for_session(metadata.session_id, metadata.credential),
        job_id=ctx.job.id,
        avatar_mode=avatar_mode_of(ctx.room),
    )
    meter.watch(speech)
    # The room exists before anyone is in it: render the greeting, sentence by sentence, while
    # the participant is still connecting; playback starts as soon as the first one is ready.
    opening = (
        (RESUMED if context.language == "en" else phrase(context.language, "resumed"))
        if context.resumed
        else context.greeting
    )
    greeting = _GreetingRenderer(speech, opening)
    ctx.add_shutdown_callback(greeting.aclose)
    await connecting
    try:
        participant = await wait_for_speaker(ctx.room)
    except RuntimeError:  # the room closed before anyone joined (the session was ended)
        logger.info("room closed before anyone joined")
        ctx.shutdown(reason="room closed before anyone joined")
        return
    # Claim the session before saying a word: a job that was replaced (its worker was taken for
    # lost and another presents now) must not talk over the one that took over. The claim
    # travels while the voice loop starts; nothing is said until it is answered.
    session_api = control_plane.for_session(metadata.session_id, metadata.credential)
    claim = asyncio.ensure_future(_claim(session_api, ctx.job.id))
    # The floor moves between the participants who may speak (audience.py); when the last of
    # them leaves (a page reload, too) the job leaves the room, so the people still in it get a
    # new presenter (see resume.py).
    floor = Floor(
        ctx.room,
        participant,
        on_empty=lambda: ctx.shutdown(reason="everyone who could speak left"),
    )
    ctx.add_shutdown_callback(floor.detach)
    session, presenter = _voice_loop(
        ctx, control_plane, metadata, context, speech, senders, meter, floor=floor
    )
    floor.attach(session)
    session.on("close", lambda _: ctx.shutdown(reason="the agent session closed"))
    avatar = await attach_avatar(
        ctx,
        session,
        worker_settings(ctx.proc),
        context.avatar,
        vendor_avatar_settings(ctx.proc),
    )
    # Listening for typed questions before the session starts: a text stream that arrives with no
    # handler registered is dropped by the SDK, and the page may send one as soon as the
    # presenter's state says it listens. Questions wait for the start (TypedQuestions.ready).
    questions = TypedQuestions(ctx.room, session, floor) if context.deck_id is not None else None
    if questions is not None:
        ctx.add_shutdown_callback(questions.aclose)
    await session.start(
        agent=presenter,
        room=ctx.room,
        room_options=room_io.RoomOptions(
            participant_identity=participant.identity,
            close_on_disconnect=False,  # the floor moves on; see Floor._on_left
            text_input=False,  # typed questions come from viewers too: TypedQuestions
            # the avatar publishes the voice with its face; audio-only, the room output does
            audio_output=avatar.mode == AUDIO_ONLY,
        ),
        record=recording_options(context.record),
        # The framework would otherwise let anyone in the room drive this session over the
        # room (run any text as a turn, read the conversation, swap its IO), past the floor and
        # the slide lock: tests/e2e/test_session_host.py.
        session_host=False,
    )
    if not await claim:
        logger.warning("another job presents this session; not joining in")
        ctx.shutdown(reason="another job presents this session")
        return
    meter.start()
    senders.append(meter.aclose)
    if questions is not None:  # without a deck there is nothing to answer from
        questions.ready()
    if context.record:
        recording = RecordingSegments(
            session,
            Path(ctx.session_directory),
            control_plane.for_session(metadata.session_id, metadata.credential),
            job_id=ctx.job.id,
            segment_s=worker_settings(ctx.proc).recording_segment_seconds,
        )
        recording.start()
        senders.append(recording.aclose)
    if await greeting.first_ready():
        session.say(opening, audio=greeting.frames())
    else:
        session.say(opening)  # rendering failed: let the session's TTS path retry
    _leave_when_rejoined(ctx, participant)
    if presenter.narrator is not None:
        _follow_slide_state(ctx.room, presenter.narrator)
        presenter.narrator.start()  # it waits for the greeting to finish
    heartbeat = JobHeartbeat(
        session_api,
        ctx.job.id,
        interval_s=worker_settings(ctx.proc).job_heartbeat_seconds,
        on_superseded=lambda: ctx.shutdown(reason="another job presents this session"),
    )
    ctx.add_shutdown_callback(heartbeat.aclose)
    logger.info(
        "presenter joined",
        extra={"participant": participant.identity, "resumed": context.resumed},
    )
    await _report_joined(control_plane, metadata)


def _leave_when_rejoined(ctx: JobContext, speaker: rtc.RemoteParticipant) -> None:
    """Leave when the room had to be joined again from scratch, so a fresh presenter comes.

    When the livekit node holding the room dies, LiveKit opens the room again on another node
    and every client joins it anew, as a new participant. This job's connection comes back
    too, but its voice loop stays bound to the speaker's old participant and never hears them
    again. A reconnect that kept the speaker's participant (a network blip: the connection was
    resumed on the same node) changes nothing. Leaving is safe: the control plane sees the job
    stop reporting and dispatches another presenter, which resumes from the stored slide and
    conversation.
    """

    def on_reconnected() -> None:
        now = ctx.room.remote_participants.get(speaker.identity)
        if now is None or now.sid != speaker.sid:
            logger.warning(
                "the room was joined again from scratch; leaving for a fresh presenter",
                extra={"participant": speaker.identity},
            )
            ctx.shutdown(reason="the room was joined again from scratch")

    ctx.room.on("reconnected", on_reconnected)


async def wait_for_speaker(room: rtc.Room) -> rtc.RemoteParticipant:
    """The first active participant who may speak (the framework's wait_for_participant, with
    our own test of who counts). Viewers come and go without effect: the presenter does not
    wait on them, listen to them, or leave when they do. Raises RuntimeError when the room
    closes first (the session ended before anyone joined)."""
    if not room.isconnected():
        raise RuntimeError("room is not connected")
    found: asyncio.Future[rtc.RemoteParticipant] = asyncio.Future()

    def on_active(participant: rtc.RemoteParticipant) -> None:
        if may_speak(participant) and not found.done():
            found.set_result(participant)

    def on_state(state: int) -> None:
        if state == rtc.ConnectionState.CONN_DISCONNECTED and not found.done():
            found.set_exception(RuntimeError("room disconnected while waiting for a participant"))

    room.on("participant_active", on_active)
    room.on("connection_state_changed", on_state)
    try:
        for participant in room.remote_participants.values():
            if participant.state == rtc.ParticipantState.PARTICIPANT_STATE_ACTIVE:
                on_active(participant)
        return await found
    finally:
        room.off("participant_active", on_active)
        room.off("connection_state_changed", on_state)


def _voice_loop(
    ctx: JobContext,
    control_plane: ControlPlaneClient,
    metadata: DispatchMetadata,
    context: SessionContext,
    speech: tts.TTS[Any],
    senders: list[Callable[[], Awaitable[None]]],
    meter: UsageMeter,
    *,
    floor: Floor,
) -> tuple[AgentSession[None], Presenter]:
    """VAD → STT → LLM → TTS (each a chain built from settings) for a session with a deck;
    without one the presenter only greets."""
    speech_detector = prewarmed_vad(ctx.proc)
    if context.deck_id is None:
        return AgentSession(vad=speech_detector, tts=speech), Presenter()
    settings = worker_settings(ctx.proc)
    hearing = build_stt(
        settings, prewarmed_whisper(ctx.proc), speech_detector, language=context.language
    )
    ctx.add_shutdown_callback(hearing.aclose)
    thinking = build_llm(settings, context.language)
    ctx.add_shutdown_callback(thinking.aclose)
    meter.watch(hearing, thinking)
    session: AgentSession[None] = AgentSession(
        vad=speech_detector,
        stt=hearing,
        llm=thinking,
        tts=speech,
        turn_handling=turn_handling(settings),
    )
    deck = control_plane.for_session(metadata.session_id, metadata.credential)
    conversation = ConversationSync(session, deck, speaker=floor.said_by)
    senders.append(conversation.aclose)
    heard = HeardWords()
    turns = TurnRecorder(
        session, deck, room=ctx.room, job_id=ctx.job.id, speaker=floor.said_by, heard=heard
    )
    senders.append(turns.aclose)
    narrator = Narrator(session, deck, language=context.language)
    ctx.add_shutdown_callback(narrator.aclose)
    searches = SearchPrefetch(deck)
    rehearsal = None
    if isinstance(thinking, OfflineResponder) and (voice := first_voice_piper(speech)):
        # the responder's next words are known once its tool's result is: said ahead
        rehearsal = Rehearsal(
            voice=voice,
            searches=searches,
            deck=deck,
            titles={entry.index: entry.title for entry in context.outline},
            language=context.language,
            transforms=session.options.tts_text_transforms or (),
            navigation_refused=floor.navigation_refused,
        )
    presenter = Presenter(
        deck=deck,
        narrator=narrator,
        conversation=conversation,
        chat_ctx=restored_chat(context.conversation),
        outline=context.outline,
        heard=heard,
        names=floor.name_of,
        navigation_refused=floor.navigation_refused,
        searches=searches,
        rehearsal=rehearsal,
    )
    ctx.add_shutdown_callback(presenter.aclose)
    return session, presenter


def turn_handling(settings: WorkerSettings) -> TurnHandlingOptions:
    """End of turn from the local turn-detector model (on the VAD's end of speech), or the VAD
    alone; barge-in on the VAD either way, so nothing waits for a cloud detector."""
    options = TurnHandlingOptions(
        interruption={"mode": "vad", "min_duration": settings.interruption_min_seconds},
        endpointing={
            "min_delay": settings.endpointing_min_delay_seconds,
            "max_delay": settings.endpointing_max_delay_seconds,
        },
        # The reply's first sentence is synthesized while the end of the turn is still being
        # confirmed (the LLM already runs then by default); a turn that goes on discards it.
        preemptive_generation={"preemptive_tts": True},
    )
    if settings.turn_detection == "model":
        # "v1-mini" pins the local model; left to choose, the framework picks the cloud one
        # in dev mode.
        options["turn_detection"] = inference.TurnDetector(version="v1-mini")
    else:
        options["turn_detection"] = "vad"
    return options


def restored_chat(messages: list[ConversationMessage]) -> llm.ChatContext:
    """The conversation a lost worker had, for the job that picks the session up."""
    chat = llm.ChatContext.empty()
    for message in messages:
        chat.add_message(
            role=message.role,
            content=message.text,
            id=message.item_id,
            interrupted=message.interrupted,
        )
    return chat


def _follow_slide_state(room: rtc.Room, narrator: Narrator) -> None:
    """Slide changes and pauses reach the narrator the way they reach every client."""

    def on_metadata(_old: str, metadata: str) -> None:
        state = slide_state_in(metadata)
        if state is not None:
            narrator.on_slide_state(state)

    room.on("room_metadata_changed", on_metadata)


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


class _GreetingRenderer:
    """Synthesizes sentences one after another (the local TTS serves one request at a time,
    so the first sentence gets the CPU to itself) and replays them in order."""

    def __init__(self, speech: tts.TTS[Any], text: str) -> None:
        self._speech = speech
        sentences = [part for part in _SENTENCE_END.split(text.strip()) if part]
        loop = asyncio.get_running_loop()
        self._rendered: list[asyncio.Future[list[rtc.AudioFrame]]] = [
            loop.create_future() for _ in sentences
        ]
        self._task = asyncio.create_task(self._render_all(sentences), name="render_greeting")

    async def _render_all(self, sentences: list[str]) -> None:
        for sentence, slot in zip(sentences, self._rendered, strict=True):
            frames: list[rtc.AudioFrame] = []
            try:
                async with self._speech.synthesize(sentence) as stream:
                    async for chunk in stream:
                        frames.append(chunk.frame)
            except APIError:
                logger.warning("could not pre-render the greeting", exc_info=True)
                frames = []
            slot.set_result(frames)

    async def first_ready(self) -> bool:
        """Whether the first sentence rendered (else the caller falls back to live TTS)."""
        return bool(self._rendered) and bool(await self._rendered[0])

    async def frames(self) -> AsyncIterator[rtc.AudioFrame]:
        for slot in self._rendered:
            for frame in await slot:
                yield frame

    async def aclose(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


async def _claim(session_api: SessionApi, job_id: str) -> bool:
    """Whether this job presents the session (the control plane unreachable: it does; the
    heartbeat settles it later)."""
    try:
        return await session_api.report_alive(job_id)
    except ControlPlaneError:
        return True


async def _load_session(
    control_plane: ControlPlaneClient, metadata: DispatchMetadata
) -> SessionContext | None:
    """The session's context, or None when the job should end without joining."""
    try:
        return await control_plane.get_session_context(metadata.session_id, metadata.credential)
    except SessionNotFoundError:
        logger.info("session not found, not joining")
    except ControlPlaneError as exc:
        logger.error(
            "could not load the session context, not joining",
            extra={"status": exc.status_code},
            exc_info=True,
        )
    return None


async def _report_records_complete(
    control_plane: ControlPlaneClient, metadata: DispatchMetadata
) -> None:
    """What this job recorded is all sent: the control plane may announce the transcript."""
    try:
        await control_plane.for_session(metadata.session_id, metadata.credential).records_complete()
    except ControlPlaneError as exc:
        logger.warning("could not report the records complete", extra={"status": exc.status_code})


async def _report_joined(control_plane: ControlPlaneClient, metadata: DispatchMetadata) -> None:
    """Tell the control plane the session is live. The greeting is already under way, and a
    failed report does not stop the presentation: it only leaves the session's status behind."""
    try:
        await control_plane.report_agent_joined(metadata.session_id, metadata.credential)
    except ControlPlaneError as exc:
        logger.warning("could not report that the agent joined", extra={"status": exc.status_code})
