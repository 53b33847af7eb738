"""A real LiveKit participant that listens for the agent's voice (tests and benchmarks)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass

import numpy as np
from livekit import rtc

# int16 RMS above this is speech, not comfort noise or digital silence.
SPEECH_RMS = 300.0


@dataclass
class HeardAudio:
    connected_s: float  # connect() returned, from the probe's start
    subscribed_s: float  # the agent's audio track was subscribed
    first_voice_s: float  # first non-silent agent frame, from the probe's start
    agent_identity: str
    peak_rms: float
    # the agent's video track subscribed, from the first voice (negative: before it); None when
    # not asked for (``video_within_s``) or not subscribed within that
    video_after_voice_s: float | None = None


def frame_rms(frame: rtc.AudioFrame) -> float:
    samples = np.frombuffer(frame.data, dtype=np.int16).astype(np.float32)
    return float(np.sqrt(np.mean(samples**2))) if samples.size else 0.0


async def listen_for_agent_voice(
    url: str,
    token: str,
    *,
    timeout_s: float = 30.0,
    started_at: float | None = None,
    video_within_s: float = 0.0,
) -> HeardAudio:
    """Join the room, subscribe to every track, return when the agent first speaks; with
    ``video_within_s``, once its video track is subscribed too (waiting that long for it)."""
    t0 = started_at if started_at is not None else time.perf_counter()
    room = rtc.Room()
    voice: asyncio.Future[HeardAudio] = asyncio.get_running_loop().create_future()
    readers: list[asyncio.Task[None]] = []
    connected_s = 0.0
    subscribed_s = 0.0
    video: asyncio.Future[float] = asyncio.get_running_loop().create_future()

    async def read(track: rtc.Track, identity: str) -> None:
        stream = rtc.AudioStream(track)
        try:
            async for event in stream:
                rms = frame_rms(event.frame)
                if rms >= SPEECH_RMS and not voice.done():
                    heard = time.perf_counter() - t0
                    voice.set_result(HeardAudio(connected_s, subscribed_s, heard, identity, rms))
                    return
        finally:
            await stream.aclose()

    def on_track(
        track: rtc.Track, _: rtc.RemoteTrackPublication, participant: rtc.RemoteParticipant
    ) -> None:
        nonlocal subscribed_s
        if track.kind == rtc.TrackKind.KIND_AUDIO:
            subscribed_s = time.perf_counter() - t0
            readers.append(asyncio.create_task(read(track, participant.identity)))
        elif track.kind == rtc.TrackKind.KIND_VIDEO and not video.done():
            video.set_result(time.perf_counter() - t0)

    room.on("track_subscribed", on_track)
    try:
        await room.connect(url, token, rtc.RoomOptions(auto_subscribe=True))
        connected_s = time.perf_counter() - t0
        heard = await asyncio.wait_for(voice, timeout_s)
        if video_within_s > 0:
            with contextlib.suppress(TimeoutError):
                seen = await asyncio.wait_for(asyncio.shield(video), video_within_s)
                heard.video_after_voice_s = seen - heard.first_voice_s
        return heard
    finally:
        for task in readers:
            task.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
        await room.disconnect()
