"""A participant in a real room that records what a user would notice: when the agent's voice
is audible, what the agent and the user were transcribed saying, and the slide every client is
shown (room metadata). Tests speak through it and wait on what it saw."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from livekit import rtc

from agent_worker.avatar.face import mouth_opening
from shared.devstack.probe import SPEECH_RMS, frame_rms
from tests.e2e.speech import espeak, piper, speak

TRANSCRIPTION_TOPIC = "lk.transcription"


@dataclass
class Line:
    opened: float  # the segment began (its speech started)
    at: float  # the segment was complete
    identity: str
    text: str


@dataclass
class Seen:
    """One video frame of the presenter as this client decoded it."""

    at: float
    identity: str
    width: int
    height: int
    mouth: float  # agent_worker.avatar.face.mouth_opening: 0 closed, > MOUTH_OPEN open


MOUTH_OPEN = 0.02


@dataclass
class Audience:
    url: str
    token: str
    room: rtc.Room = field(default_factory=rtc.Room)
    voiced: list[float] = field(default_factory=list)  # times of audible agent frames
    lines: list[Line] = field(default_factory=list)  # final transcription segments
    slides: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    watch: bool = False  # decode the presenter's video into ``frames`` (else unsubscribe it)
    publish: bool = True  # a microphone to ``say`` things into (a viewer's token cannot publish)
    voice: str = "piper"  # or "espeak", for a speech-to-text that is scripted
    # what it will say, synthesised while it joins (Piper takes a second or two a sentence), so
    # that ``say`` starts at once: a barge-in must land while the presenter talks
    script: tuple[str, ...] = ()
    frames: list[Seen] = field(default_factory=list)
    _source: rtc.AudioSource | None = None
    _recordings: dict[str, asyncio.Task[tuple[np.ndarray[Any, Any], int]]] = field(
        default_factory=dict
    )
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def __aenter__(self) -> Audience:
        self.room.on("track_subscribed", self._on_track)
        self.room.on("room_metadata_changed", lambda _old, new: self._on_metadata(new))
        self.room.register_text_stream_handler(TRANSCRIPTION_TOPIC, self._on_text)
        await self.room.connect(self.url, self.token)
        self._on_metadata(self.room.metadata)
        if not self.publish:
            return self
        for text in self.script:
            self._recording(text)
        self._source = rtc.AudioSource(22050, 1)
        track = rtc.LocalAudioTrack.create_audio_track("mic", self._source)
        await self.room.local_participant.publish_track(
            track, rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
        )
        return self

    async def __aexit__(self, *_: object) -> None:
        for task in [*self._tasks, *self._recordings.values()]:
            task.cancel()
        await asyncio.gather(*self._tasks, *self._recordings.values(), return_exceptions=True)
        await self.room.disconnect()

    # -- what it saw ------------------------------------------------------------------------

    @property
    def slide(self) -> dict[str, Any]:
        return self.slides[-1][1] if self.slides else {}

    def agent_said(self, since: float = 0.0) -> list[str]:
        me = self.room.local_participant.identity
        return [line.text for line in self.lines if line.identity != me and line.at >= since]

    def audible_between(self, start: float, end: float) -> bool:
        return any(start <= t < end for t in self.voiced)

    async def until(self, check: Callable[[], Any], seconds: float, failure: str) -> Any:
        """Wait until ``check()`` returns something (re-checked on every event), and return it."""
        deadline = time.perf_counter() + seconds
        # None, False or no lines yet: not yet (a time of 0.0 is an answer)
        while (result := check()) is None or result is False or result == []:
            left = deadline - time.perf_counter()
            if left <= 0:
                said = [(line.identity, line.text) for line in self.lines]
                raise AssertionError(
                    f"{failure} within {seconds} s; transcript {said!r}, "
                    f"slide {self.slide.get('index')}"
                )
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(left, 0.1))
        return result

    async def until_silent(self, quiet_s: float, seconds: float) -> float:
        """Wait for the agent to be inaudible for ``quiet_s``; returns when it fell silent."""

        def silent_since() -> float | None:
            last = self.voiced[-1] if self.voiced else 0.0
            return last if time.perf_counter() - last >= quiet_s else None

        result: float = await self.until(silent_since, seconds, "the agent never fell silent")
        return result

    # -- acting -----------------------------------------------------------------------------

    async def say(self, text: str) -> tuple[float, float]:
        """Speak ``text`` in real time, in ``voice``; returns when speech started and ended."""
        assert self._source is not None
        samples, rate = await self._recording(text)
        if rate != self._source.sample_rate:  # both voices speak at 22.05 kHz
            samples = _resample(samples, rate, self._source.sample_rate)
        started = time.perf_counter()
        await speak(self._source, samples)
        return started, started + len(samples) / self._source.sample_rate

    def _recording(self, text: str) -> asyncio.Task[tuple[np.ndarray[Any, Any], int]]:
        if text not in self._recordings:
            synthesise = piper if self.voice == "piper" else espeak
            self._recordings[text] = asyncio.create_task(asyncio.to_thread(synthesise, text))
        return self._recordings[text]

    # -- events -----------------------------------------------------------------------------

    def _on_track(
        self,
        track: rtc.Track,
        publication: rtc.RemoteTrackPublication,
        participant: rtc.RemoteParticipant,
    ) -> None:
        if track.kind == rtc.TrackKind.KIND_AUDIO:
            self._tasks.append(asyncio.create_task(self._listen(track)))
        elif track.kind == rtc.TrackKind.KIND_VIDEO and self.watch:
            self._tasks.append(asyncio.create_task(self._watch(track, participant.identity)))
        elif track.kind == rtc.TrackKind.KIND_VIDEO:
            publication.set_subscribed(False)  # decoding video costs the other tests' CPU

    async def _watch(self, track: rtc.Track, identity: str) -> None:
        stream = rtc.VideoStream(track, format=rtc.VideoBufferType.RGBA)
        try:
            async for event in stream:
                frame = event.frame
                pixels = np.frombuffer(frame.data, dtype=np.uint8).reshape(
                    frame.height, frame.width, 4
                )
                self.frames.append(
                    Seen(
                        time.perf_counter(),
                        identity,
                        frame.width,
                        frame.height,
                        mouth_opening(pixels),
                    )
                )
        finally:
            await stream.aclose()

    async def _listen(self, track: rtc.Track) -> None:
        stream = rtc.AudioStream(track)
        try:
            async for event in stream:
                if frame_rms(event.frame) >= SPEECH_RMS:
                    self.voiced.append(time.perf_counter())
                    self._changed.set()
        finally:
            await stream.aclose()

    def _on_metadata(self, metadata: str) -> None:
        slide = json.loads(metadata or "{}").get("podium", {}).get("slide")
        if slide and (not self.slides or slide["version"] > self.slide["version"]):
            self.slides.append((time.perf_counter(), slide))
            self._changed.set()

    def _on_text(self, reader: rtc.TextStreamReader, identity: str) -> None:
        self._tasks.append(asyncio.create_task(self._read_line(reader, identity)))

    async def _read_line(self, reader: rtc.TextStreamReader, identity: str) -> None:
        opened = time.perf_counter()
        text = await reader.read_all()
        if text.strip():
            self.lines.append(Line(opened, time.perf_counter(), identity, text.strip()))
            self._changed.set()


def _resample(samples: np.ndarray[Any, Any], rate: int, target: int) -> np.ndarray[Any, Any]:
    positions = np.linspace(0, len(samples) - 1, int(len(samples) * target / rate))
    return np.interp(positions, np.arange(len(samples)), samples).astype(np.int16)
