"""The local avatar as the framework's ``VideoGenerator``: the agent's audio in, a face out.

``AvatarRunner`` pushes the agent's TTS audio here and forwards what comes out to an
``AVSynchronizer``, which paces the video at the frame rate and plays the audio alongside. For
every video frame of speech this yields the frame, then exactly that frame's slice of audio, so a
mouth shape and the sound it makes leave together. While silent it yields idle frames (blinks,
sway) paced to the frame rate itself: at most one idle frame waits in the synchroniser's queue
when speech starts, so the first syllable's mouth is not stuck behind a queue of idle ones.

Barge-in (``clear_buffer``) drops the audio not yet played, here and in the synchroniser, and the
mouth shuts on the next frame. If drawing ever fails the face is switched off for the rest of the
session and the audio keeps flowing: ``on_failure`` tells the job, which tells the clients.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Callable

import numpy as np
from livekit import rtc
from livekit.agents.voice.avatar import AudioSegmentEnd, VideoGenerator

from .face import FaceRenderer, Pose
from .motion import Motion

logger = logging.getLogger(__name__)

_Output = rtc.VideoFrame | rtc.AudioFrame | AudioSegmentEnd

_IDLE_BEFORE_ONSET = 3
"""Idle frames after which no audio is left in the synchroniser (it queues 100 ms)."""
MOUTH_LEAD_S = 0.12
"""How far ahead of the audio being played the mouth is drawn. A frame leaves the synchroniser
up to two frames after its audio starts playing (the idle frame still queued when speech
starts, then the next tick), and video decodes later than audio at the client, which does not
hold the voice back for it (they are in separate streams, see ``presence.VOICE_STREAM``): with a
one-frame lead the mouth opened 61 ms (p50; p95 114 ms) after the voice at a viewer's client
(``scripts/bench_avatar.py``). With three frames it opens 31 ms after (p95 61 ms) and shuts 59 ms
before the voice ends: a voice ahead of the face is noticed from ~45 ms, a face ahead of the
voice from ~125 ms (ITU-R BT.1359), so the lead errs towards the face."""


class RenderStats:
    """Frames drawn and the time spent drawing them (the benchmark and metrics read it)."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.frames = 0
        self.seconds = 0.0
        self.speaking_frames = 0

    @property
    def mean_ms(self) -> float:
        return 1000 * self.seconds / self.frames if self.frames else 0.0

    @property
    def fps(self) -> float:
        """Frames drawn per second since the generator was made."""
        elapsed = time.monotonic() - self.started
        return self.frames / elapsed if elapsed > 0 else 0.0


class FaceVideoGenerator(VideoGenerator):
    def __init__(
        self,
        renderer: FaceRenderer,
        *,
        fps: float,
        sample_rate: int,
        on_failure: Callable[[BaseException], None] | None = None,
        seed: int | None = None,
    ) -> None:
        self._renderer = renderer
        self._motion = Motion(fps, scale=renderer.scale, seed=seed)
        self._interval = 1.0 / fps
        self._sample_rate = sample_rate
        self._chunk = round(sample_rate / fps)
        self._lead = round(MOUTH_LEAD_S * fps)  # in frames
        self._pending: deque[np.ndarray | AudioSegmentEnd] = deque()
        self._arrived = asyncio.Event()
        self._av_sync: rtc.AVSynchronizer | None = None
        self._resampler: rtc.AudioResampler | None = None
        self._resampler_rate = 0
        self._held = False
        self._cleared = 0  # barge-ins so far: a slice taken before one is not played after it
        self._on_failure = on_failure
        self.video_on = True
        self.stats = RenderStats()
        self.last_pose = Pose()

    def attach(self, av_sync: rtc.AVSynchronizer) -> None:
        """The runner's synchroniser, so a barge-in also drops what it has queued."""
        self._av_sync = av_sync

    async def push_audio(self, frame: rtc.AudioFrame | AudioSegmentEnd) -> None:
        if isinstance(frame, AudioSegmentEnd):
            if self._resampler is not None:  # what it still holds ends the segment
                self._pending.extend(_mono(part) for part in self._resampler.flush())
                self._resampler = None
            self._pending.append(frame)
        else:
            self._pending.extend(_mono(part) for part in self._at_our_rate(frame))
        self._arrived.set()

    def hold(self, held: bool) -> None:
        """Pause (the user may be interrupting: keep the rest, shut the mouth) or go on."""
        self._held = held
        if held:
            self._motion.interrupt()
        self._arrived.set()

    def _at_our_rate(self, frame: rtc.AudioFrame) -> list[rtc.AudioFrame]:
        # the session resamples to the output's rate; a stray frame must not stop the face
        if frame.sample_rate == self._sample_rate:
            return [frame]
        if self._resampler is None or self._resampler_rate != frame.sample_rate:
            self._resampler = rtc.AudioResampler(frame.sample_rate, self._sample_rate)
            self._resampler_rate = frame.sample_rate
        return self._resampler.push(frame)

    async def clear_buffer(self) -> None:
        self._cleared += 1
        self._pending.clear()
        self._held = False
        self._motion.interrupt()
        if self._av_sync is not None:
            await self._av_sync.clear_queue()

    def __aiter__(self) -> AsyncIterator[_Output]:
        return self._stream()

    async def _stream(self) -> AsyncIterator[_Output]:
        loop = asyncio.get_running_loop()
        next_idle: float | None = None
        idle_frames = 0
        while True:
            if self._pending and not self._held:
                next_idle = None
                if idle_frames >= _IDLE_BEFORE_ONSET and self._av_sync is not None:
                    # speech after a silence: the idle face still queued would hold its first
                    # frame back while the first sound plays at once (nothing queued there)
                    await self._av_sync.clear_queue()
                idle_frames = 0
                if self._buffered() < self._chunk and not self._segment_ends():
                    # the voice is still arriving: give it a frame's time before playing a
                    # short slice (which would leave a gap in the sound)
                    await self._wait_for_audio(self._interval)
                cleared = self._cleared
                samples, ended = self._take()
                if samples.size:
                    # the mouth shows the sound a little ahead (MOUTH_LEAD_S): the audio slice
                    # reaches viewers sooner than its frame (see docs/benchmarks.md, Avatar)
                    ahead = (
                        samples if self._lead == 0 else self._peek((self._lead - 1) * self._chunk)
                    )
                    video = self._draw(self._motion.speaking(ahead, self._sample_rate))
                    self.stats.speaking_frames += 1
                    if video is not None:
                        yield video  # the runner may wait here while a barge-in clears
                    if cleared != self._cleared:
                        continue
                    yield rtc.AudioFrame(samples.tobytes(), self._sample_rate, 1, samples.size)
                if ended:
                    yield AudioSegmentEnd()
                continue
            if not self.video_on:
                await self._wait_for_audio(None)
                continue
            # idle (or held): the face, paced by us
            now = loop.time()
            if next_idle is None or now - next_idle > 4 * self._interval:
                next_idle = now
            if next_idle > now and await self._wait_for_audio(next_idle - now):
                continue
            next_idle += self._interval
            video = self._draw(self._motion.silent())
            if video is not None:
                idle_frames += 1
                yield video

    async def _wait_for_audio(self, within: float | None) -> bool:
        """Wait for more audio (at most ``within`` seconds); whether some arrived."""
        self._arrived.clear()
        try:
            await asyncio.wait_for(self._arrived.wait(), within)
        except TimeoutError:
            return False
        return True

    def _peek(self, skip: int) -> np.ndarray:
        """The next frame's worth of samples after the first ``skip`` still pending, within
        the segment (empty past its end: the mouth closes as the sentence does)."""
        parts: list[np.ndarray] = []
        wanted = self._chunk
        for item in self._pending:
            if isinstance(item, AudioSegmentEnd) or wanted <= 0:
                break
            if skip >= item.size:
                skip -= item.size
                continue
            part = item[skip : skip + wanted]
            skip = 0
            parts.append(part)
            wanted -= part.size
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int16)

    def _buffered(self) -> int:
        return sum(item.size for item in self._pending if isinstance(item, np.ndarray))

    def _segment_ends(self) -> bool:
        return any(isinstance(item, AudioSegmentEnd) for item in self._pending)

    def _take(self) -> tuple[np.ndarray, bool]:
        """Up to one frame's worth of samples, and whether the segment ends after them."""
        parts: list[np.ndarray] = []
        wanted = self._chunk
        while self._pending and wanted > 0:
            head = self._pending[0]
            if isinstance(head, AudioSegmentEnd):
                break
            if head.size <= wanted:
                parts.append(self._pending.popleft())  # type: ignore[arg-type]
                wanted -= head.size
            else:
                parts.append(head[:wanted])
                self._pending[0] = head[wanted:]
                wanted = 0
        ended = bool(self._pending) and isinstance(self._pending[0], AudioSegmentEnd)
        if ended:
            self._pending.popleft()
        samples = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int16)
        return samples, ended

    def _draw(self, pose: Pose) -> rtc.VideoFrame | None:
        if not self.video_on:
            return None
        started = time.perf_counter()
        try:
            data = self._renderer.rgba(pose)
        except Exception as exc:
            logger.exception("the avatar failed to draw a frame; continuing audio-only")
            self.video_on = False
            if self._on_failure is not None:
                self._on_failure(exc)
            return None
        self.stats.seconds += time.perf_counter() - started
        self.stats.frames += 1
        self.last_pose = pose
        return rtc.VideoFrame(
            self._renderer.width, self._renderer.height, rtc.VideoBufferType.RGBA, data
        )


def _mono(frame: rtc.AudioFrame) -> np.ndarray:
    samples = np.frombuffer(frame.data, dtype=np.int16)
    if frame.num_channels > 1:
        samples = samples.reshape(-1, frame.num_channels).mean(axis=1).astype(np.int16)
    return samples.copy()
