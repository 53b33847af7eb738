"""Which face the presenter shows, decided once per job before the agent session starts:
the configured vendor, else the local renderer, else none (audio-only) — and the clients are
told which through the agent participant's ``podium.avatar`` attribute.

The local renderer runs inside the job: the agent's audio goes to a ``QueueAudioOutput``
instead of the room, and an ``AvatarRunner`` publishes the voice and the face together from the
agent's own participant, the face right after the voice without waiting for anyone to listen
(``_FaceRunner``). Should drawing fail mid-session, the face track is unpublished and the voice
carries on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

from livekit import rtc
from livekit.agents import AgentSession, JobContext
from livekit.agents.voice.avatar import AvatarOptions, AvatarRunner, QueueAudioOutput

from shared.schemas import AvatarStyle
from shared.settings import WorkerSettings

from .face import FaceRenderer
from .generator import FaceVideoGenerator
from .vendors import VendorAvatarError, VendorAvatarSettings, start_vendor_avatar

logger = logging.getLogger(__name__)

AVATAR_ATTRIBUTE = "podium.avatar"
"""On the agent participant: ``local``, ``vendor:<name>`` or ``audio-only``."""
AUDIO_ONLY = "audio-only"
SAMPLE_RATE = 24_000
AUDIO_TRACK = "avatar_audio"
VIDEO_TRACK = "avatar_video"
VOICE_STREAM = "podium-voice"
FACE_STREAM = "podium-face"
"""The voice and the face in streams of their own. LiveKit otherwise puts a participant's
microphone and camera in one stream, and a receiver then holds the voice back until the video,
which takes longer to decode, can show it: ~60-100 ms later on every reply. The face is already
in step with the voice when it leaves the job (the synchroniser, ``MOUTH_LEAD_S``)."""
LISTENER_WAIT_S = 5.0
"""How long the first frames wait for someone to subscribe to the voice before they are sent
anyway (to nobody: a client that subscribes later hears from then on)."""
_background: set[asyncio.Task[None]] = set()


@dataclass
class Avatar:
    mode: str
    runner: AvatarRunner | None = None
    output: QueueAudioOutput | None = None


async def attach_avatar(
    ctx: JobContext,
    session: AgentSession[Any],
    settings: WorkerSettings,
    style: AvatarStyle,
    vendor: VendorAvatarSettings | None = None,
) -> Avatar:
    """Give ``session`` a face (call before ``session.start``); never raises. ``vendor`` holds
    the keys of the vendor ``settings.avatar_provider`` names, if it names one."""
    avatar = Avatar(AUDIO_ONLY)
    if not style.enabled or settings.avatar_provider == "none":
        logger.info("avatar turned off: audio-only")
    elif vendor is not None and (identity := await _vendor(ctx, session, settings, vendor)):
        avatar = Avatar(f"vendor:{settings.avatar_provider}")
        _take_over_when_lost(ctx, session, settings, style, identity)
    else:
        try:
            avatar = await _local(ctx, settings, style)
            session.output.audio = avatar.output
        except Exception:
            logger.exception("the local avatar could not start; continuing audio-only")
            session.output.audio = None
    await _announce(ctx.room, avatar.mode)
    return avatar


async def _vendor(
    ctx: JobContext,
    session: AgentSession[Any],
    settings: WorkerSettings,
    vendor: VendorAvatarSettings,
) -> str | None:
    """The vendor's avatar started: its participant identity; None when it failed."""
    try:
        started = await start_vendor_avatar(
            settings.avatar_provider,
            vendor,
            session,
            ctx.room,
            livekit_url=settings.livekit_url,
            livekit_api_key=settings.livekit_api_key,
            livekit_api_secret=settings.livekit_api_secret.get_secret_value(),
        )
    except VendorAvatarError as exc:
        logger.warning("vendor avatar failed; using the local one", extra={"error": str(exc)})
        return None
    return started.avatar_identity


def _take_over_when_lost(
    ctx: JobContext,
    session: AgentSession[Any],
    settings: WorkerSettings,
    style: AvatarStyle,
    identity: str,
) -> None:
    """Should the vendor's avatar leave the room mid-session (its service failed), the local
    face takes over: it becomes the tail of the session's audio chain, so the sentence that
    was playing goes on from where the vendor stopped, and the clients are told."""
    closing = asyncio.Event()

    def left(participant: rtc.RemoteParticipant) -> None:
        if participant.identity != identity or closing.is_set():
            return
        ctx.room.off("participant_disconnected", left)
        _spawn(_take_over(ctx, session, settings, style, closing))

    async def stop_watching() -> None:  # the job's own shutdown removes the vendor's avatar
        closing.set()
        ctx.room.off("participant_disconnected", left)

    ctx.room.on("participant_disconnected", left)
    ctx.add_shutdown_callback(stop_watching)


async def _take_over(
    ctx: JobContext,
    session: AgentSession[Any],
    settings: WorkerSettings,
    style: AvatarStyle,
    closing: asyncio.Event,
) -> None:
    logger.warning("the vendor's avatar left the room; the local one takes over")
    try:
        avatar = await _local(ctx, settings, style)
    except Exception:
        # the voice still goes to the vendor's sink, which nobody plays: leave, and the
        # control plane sends a new presenter that picks the session up (see resume.py)
        logger.exception("the local avatar could not start after the vendor's left")
        ctx.shutdown(reason="the vendor's avatar left and the local one could not start")
        return
    if closing.is_set():
        return
    assert avatar.output is not None
    session.output.replace_audio_tail(avatar.output)
    await _announce(ctx.room, avatar.mode)


def _spawn(work: Coroutine[Any, Any, None]) -> None:
    task = asyncio.get_running_loop().create_task(work)
    _background.add(task)  # the loop keeps only a weak reference
    task.add_done_callback(_background.discard)


_FaceKey = tuple[str, int, int]
_drawn: dict[_FaceKey, FaceRenderer] = {}
"""Faces drawn in this job process, by style and size: a process presents one session at a
time, so this holds the one it prewarmed and the one its job asked for (at most ``_MAX_FACES``,
the oldest dropped)."""
_MAX_FACES = 4
_drawing: dict[_FaceKey, asyncio.Future[FaceRenderer]] = {}


def _face_key(style: AvatarStyle, settings: WorkerSettings) -> _FaceKey:
    return style.model_dump_json(), settings.avatar_width, settings.avatar_height


def prewarm_face(style: AvatarStyle, settings: WorkerSettings) -> None:
    """Draw ``style``'s layers now, in an idle process (~150 ms of CPU; ~300 ms in a job that
    is also connecting and rendering its greeting): a job showing that style starts at once."""
    _keep(
        _face_key(style, settings),
        FaceRenderer(style, settings.avatar_width, settings.avatar_height),
    )


def _keep(key: _FaceKey, renderer: FaceRenderer) -> None:
    _drawn[key] = renderer
    while len(_drawn) > _MAX_FACES:
        del _drawn[next(iter(_drawn))]


def start_face(style: AvatarStyle, settings: WorkerSettings) -> None:
    """Begin drawing ``style``'s face in a thread, so it is ready (or nearly) by the time the
    session gets its avatar; the job calls this as soon as it knows the style."""
    if style.enabled and settings.avatar_provider != "none":
        _draw(style, settings)


def _draw(style: AvatarStyle, settings: WorkerSettings) -> asyncio.Future[FaceRenderer] | None:
    key = _face_key(style, settings)
    if key in _drawn:
        return None
    drawing = _drawing.get(key)
    if drawing is None or drawing.get_loop() is not asyncio.get_running_loop():
        # (a drawing started on a loop that has closed since never finishes: start again)
        drawing = asyncio.ensure_future(
            asyncio.to_thread(FaceRenderer, style, settings.avatar_width, settings.avatar_height)
        )
        _drawing[key] = drawing
        drawing.add_done_callback(lambda done: _drawn_or_forgotten(key, done))
    return drawing


def _drawn_or_forgotten(key: _FaceKey, done: asyncio.Future[FaceRenderer]) -> None:
    if _drawing.get(key) is done:
        del _drawing[key]
    if not done.cancelled() and done.exception() is None:  # a failure is raised to the waiter
        _keep(key, done.result())


async def face_for(style: AvatarStyle, settings: WorkerSettings) -> FaceRenderer:
    """``style``'s face: the prewarmed one, the one being drawn, or drawn now."""
    drawing = _draw(style, settings)
    if drawing is not None:
        return await asyncio.shield(drawing)
    return _drawn[_face_key(style, settings)]


async def _local(ctx: JobContext, settings: WorkerSettings, style: AvatarStyle) -> Avatar:
    """The local face, running; its ``output`` is for the session to speak into."""
    renderer = await face_for(style, settings)
    room = ctx.room

    def face_failed(_: BaseException) -> None:
        _spawn(_drop_face(room))

    generator = FaceVideoGenerator(
        renderer, fps=settings.avatar_fps, sample_rate=SAMPLE_RATE, on_failure=face_failed
    )
    audio = _PausableOutput(generator)
    runner = _FaceRunner(
        room,
        audio_recv=audio,
        video_gen=generator,
        options=AvatarOptions(
            video_width=renderer.width,
            video_height=renderer.height,
            video_fps=settings.avatar_fps,
            audio_sample_rate=SAMPLE_RATE,
            audio_channels=1,
        ),
    )
    await runner.start()
    generator.attach(runner.av_sync)

    async def close() -> None:
        stats = generator.stats
        logger.info(
            "avatar stats",
            extra={
                "mode": "local" if generator.video_on else AUDIO_ONLY,
                "frames": stats.frames,
                "speaking_frames": stats.speaking_frames,
                "draw_ms_mean": round(stats.mean_ms, 3),
                "fps": round(stats.fps, 1),
            },
        )
        await runner.aclose()

    ctx.add_shutdown_callback(close)
    return Avatar("local", runner, audio)


class _FaceRunner(AvatarRunner):
    """The framework's runner publishes the face only once LiveKit has told the agent that
    someone subscribed to its voice (the TrackSubscribed signal, sent when a subscriber's
    transport for that track is bound and connected). Until then nothing is published but the
    voice, and nothing at all is sent: a client that does not take the audio, or whose
    subscription the agent is not told of, never gets a video track. Here the face is published
    straight after the voice, while the runner waits (at most ``LISTENER_WAIT_S``) for that
    first listener, so the beginning of the greeting is not spoken to an empty room."""

    async def _publish_track(self) -> None:
        async with self._lock:
            await self._room_connected_fut
            participant = self._room.local_participant
            voice = rtc.LocalAudioTrack.create_audio_track(AUDIO_TRACK, self._audio_source)
            self._audio_publication = await participant.publish_track(
                voice,
                rtc.TrackPublishOptions(
                    source=rtc.TrackSource.SOURCE_MICROPHONE, stream=VOICE_STREAM
                ),
            )
            face = rtc.LocalVideoTrack.create_video_track(VIDEO_TRACK, self._video_source)
            self._video_publication = await participant.publish_track(
                face,
                rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_CAMERA, stream=FACE_STREAM),
            )
            try:
                await asyncio.wait_for(
                    self._audio_publication.wait_for_subscription(), LISTENER_WAIT_S
                )
            except TimeoutError:
                logger.info("nobody subscribed to the voice yet; speaking anyway")


class _PausableOutput(QueueAudioOutput):
    """The session's audio output to the local avatar. It can pause, so the framework pauses
    the agent the moment the user starts talking and resumes it if that was a false alarm
    (the framework ignores ``resume_false_interruption`` for outputs that cannot)."""

    def __init__(self, generator: FaceVideoGenerator) -> None:
        super().__init__(sample_rate=SAMPLE_RATE, wait_playback_start=True)
        self._generator = generator

    @property
    def can_pause(self) -> bool:
        return True

    def pause(self) -> None:
        self._generator.hold(True)

    def resume(self) -> None:
        self._generator.hold(False)


async def _drop_face(room: rtc.Room) -> None:
    """The face stopped: take its frozen track away and tell the clients, the voice stays."""
    try:
        for publication in list(room.local_participant.track_publications.values()):
            if publication.name == VIDEO_TRACK:
                await room.local_participant.unpublish_track(publication.sid)
    finally:
        await _announce(room, AUDIO_ONLY)


async def _announce(room: rtc.Room, mode: str) -> None:
    try:
        await room.local_participant.set_attributes({AVATAR_ATTRIBUTE: mode})
    except Exception:
        logger.warning("could not tell the clients the avatar is %s", mode, exc_info=True)
