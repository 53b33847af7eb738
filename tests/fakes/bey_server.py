"""A local Beyond Presence: ``POST /v1/sessions`` as ``livekit-plugins-bey`` calls it, and an
avatar that then joins the LiveKit room the way Bey's does.

    async with BeyFake(mode="serve") as fake:
        avatar = bey.AvatarSession(api_key=fake.api_key, api_url=fake.url)

Modes: ``serve`` answers 201 and sends an avatar into the room with the URL and token the
plugin sent: it receives the agent's audio over the framework's data stream
(``DataStreamAudioReceiver``) and publishes audio + video through ``AvatarRunner``, frames whose
brightness follows the audio's loudness, so ``wait_for_join`` and playback-finished events
work. ``fail`` answers 500 with Bey's error body; ``hang`` never answers; ``ghost`` answers
201 but no avatar ever joins.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from aiohttp import web
from livekit import rtc
from livekit.agents.voice.avatar import (
    AudioSegmentEnd,
    AvatarOptions,
    AvatarRunner,
    DataStreamAudioReceiver,
    VideoGenerator,
)
from livekit.agents.voice.room_io import ATTRIBUTE_PUBLISH_ON_BEHALF

from tests.fakes._base import FakeServer

Mode = Literal["serve", "fail", "hang", "ghost"]

WIDTH, HEIGHT, FPS = 320, 180, 15.0
SAMPLE_RATE = 16000  # what the plugin streams and Bey's avatar publishes


@dataclass
class FakeAvatar:
    """One avatar the fake sent into a room, and what it has heard."""

    room_name: str
    identity: str
    joined: asyncio.Event = field(default_factory=asyncio.Event)
    speaking: asyncio.Event = field(default_factory=asyncio.Event)  # a segment is arriving
    audio_s: float = 0.0  # agent audio received
    segments_ended: int = 0  # speech segments played to the end
    interrupted: int = 0  # clear_buffer requests from the agent (barge-in)


class BeyFake(FakeServer):
    """``POST /v1/sessions``; ``fail_next`` applies to it too."""

    def __init__(self, *, api_key: str = "bey-test", mode: Mode = "serve") -> None:
        super().__init__()
        self.api_key = api_key
        self.mode: Mode = mode
        self.avatars: list[FakeAvatar] = []

    def _routes(self) -> list[web.RouteDef]:
        return [web.post("/v1/sessions", self._create_session)]

    async def _create_session(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.record(request, body)
        if request.headers.get("x-api-key") != self.api_key:
            return web.json_response({"detail": "Invalid API key"}, status=401)
        status = self.faults.take_failure() or (500 if self.mode == "fail" else None)
        if status:
            return web.json_response({"detail": "Internal Server Error"}, status=status)
        if self.mode == "hang":
            await asyncio.Event().wait()
        if body.get("transport") != "livekit" or not body.get("url") or not body.get("token"):
            return web.json_response({"detail": "url and token are required"}, status=422)
        session_id = str(uuid.uuid4())
        if self.mode == "serve":
            self.spawn(self._run_avatar(body["url"], body["token"]))
        await self.pause(self.faults.ttfb_s)
        return web.json_response(
            {
                "id": session_id,
                "avatar_id": body.get("avatar_id"),
                "transport": "livekit",
                "url": body["url"],
            },
            status=201,
        )

    async def _run_avatar(self, url: str, token: str) -> None:
        room = rtc.Room()
        runner: AvatarRunner | None = None
        try:
            await room.connect(url, token)
            me = room.local_participant
            avatar = FakeAvatar(room.name, me.identity)
            self.avatars.append(avatar)
            # Bey's token names the agent whose audio it renders and publishes on behalf of.
            receiver = _CountingReceiver(
                room, avatar, sender_identity=me.attributes.get(ATTRIBUTE_PUBLISH_ON_BEHALF)
            )
            runner = AvatarRunner(
                room,
                audio_recv=receiver,
                video_gen=_LoudnessVideo(avatar),
                options=AvatarOptions(
                    video_width=WIDTH,
                    video_height=HEIGHT,
                    video_fps=FPS,
                    audio_sample_rate=SAMPLE_RATE,
                    audio_channels=1,
                ),
            )
            await runner.start()
            avatar.joined.set()
            await runner.wait_for_complete()
        finally:
            if runner is not None:
                await runner.aclose()
            await room.disconnect()


class _CountingReceiver(DataStreamAudioReceiver):
    def __init__(self, room: rtc.Room, avatar: FakeAvatar, *, sender_identity: str | None) -> None:
        super().__init__(room, sender_identity=sender_identity)
        self._avatar = avatar

    def notify_playback_finished(self, playback_position: float, interrupted: bool) -> None:
        if not interrupted:
            self._avatar.segments_ended += 1
        super().notify_playback_finished(playback_position, interrupted)


class _LoudnessVideo(VideoGenerator):
    """Solid frames, brighter the louder the audio; a dim idle frame at the frame rate while
    no audio is queued. Audio is passed through, one video frame per 1/FPS of it."""

    def __init__(self, avatar: FakeAvatar) -> None:
        self._avatar = avatar
        self._queue: asyncio.Queue[rtc.AudioFrame | AudioSegmentEnd] = asyncio.Queue()
        self._frames: dict[int, rtc.VideoFrame] = {}
        self._video_due = 0.0  # video frames owed for the audio passed through

    async def push_audio(self, frame: rtc.AudioFrame | AudioSegmentEnd) -> None:
        if isinstance(frame, rtc.AudioFrame):
            self._avatar.audio_s += frame.duration
            self._avatar.speaking.set()
        else:
            self._avatar.speaking.clear()
        await self._queue.put(frame)

    def clear_buffer(self) -> None:
        self._avatar.interrupted += 1
        self._avatar.speaking.clear()
        while not self._queue.empty():
            self._queue.get_nowait()
        self._video_due = 0.0

    def __aiter__(self) -> AsyncIterator[rtc.VideoFrame | rtc.AudioFrame | AudioSegmentEnd]:
        return self._stream()

    async def _stream(self) -> AsyncIterator[rtc.VideoFrame | rtc.AudioFrame | AudioSegmentEnd]:
        while True:
            try:
                item = await asyncio.wait_for(self._queue.get(), 1 / FPS)
            except TimeoutError:
                yield self._frame(0)  # idle; the synchroniser paces frames to FPS
                continue
            if isinstance(item, AudioSegmentEnd):
                yield item
                continue
            samples = np.frombuffer(item.data, dtype=np.int16).astype(np.float32)
            level = min(15, int(np.sqrt(np.mean(samples**2)) / 400)) if samples.size else 0
            self._video_due += item.duration * FPS
            while self._video_due >= 1:
                self._video_due -= 1
                yield self._frame(level)
            yield item

    def _frame(self, level: int) -> rtc.VideoFrame:
        if level not in self._frames:
            shade = 40 + level * 13
            rgba = bytes((shade, shade, shade, 255)) * (WIDTH * HEIGHT)
            self._frames[level] = rtc.VideoFrame(WIDTH, HEIGHT, rtc.VideoBufferType.RGBA, rgba)
        return self._frames[level]
