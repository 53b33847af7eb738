"""The local avatar without a room: faces per style, the mouth read back from pixels, motion from
audio, and the VideoGenerator's contract (each video frame with its slice of audio, segment
ends, barge-in, a renderer that fails)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import numpy as np
import pytest
from livekit import rtc
from livekit.agents.voice.avatar import AudioSegmentEnd

from agent_worker.avatar.face import MOUTH_LEVELS, FaceRenderer, Pose, mouth_opening
from agent_worker.avatar.generator import FaceVideoGenerator
from agent_worker.avatar.motion import Motion
from shared.schemas import AvatarStyle

RATE, FPS = 24_000, 25.0
CHUNK = int(RATE / FPS)
MOUTH_OPEN = 0.02  # as tests/e2e/audience.py reads a decoded frame


def _voice(seconds: float, *, dbfs: float = -12.0) -> np.ndarray:
    """Speech-like audio: a 180 Hz buzz with harmonics, syllables 4 times a second."""
    t = np.arange(int(seconds * RATE)) / RATE
    buzz = sum(np.sin(2 * np.pi * 180 * k * t) / k for k in range(1, 6))
    syllables = np.clip(np.sin(2 * np.pi * 4 * t), 0, None)
    wave = buzz * syllables
    wave = wave / np.abs(wave).max() * 32767 * 10 ** (dbfs / 20)
    return wave.astype(np.int16)


def _frames(samples: np.ndarray, size: int = 480) -> list[rtc.AudioFrame]:
    return [
        rtc.AudioFrame(samples[i : i + size].tobytes(), RATE, 1, len(samples[i : i + size]))
        for i in range(0, len(samples), size)
    ]


def _pixels(renderer: FaceRenderer, pose: Pose) -> np.ndarray:
    return np.asarray(renderer.frame(pose))


@pytest.mark.parametrize(
    "style",
    [
        AvatarStyle(),
        AvatarStyle(hair_style="short", glasses=True, skin="#F2D0B5", accent="#E4572E"),
        AvatarStyle(hair_style="long", skin="#8D5524", hair="#1A1A1A", background="#20242C"),
        AvatarStyle(hair_style="none", jacket="#5B2333"),
    ],
)
def test_every_style_draws_a_face_whose_open_mouth_a_client_can_see(style: AvatarStyle) -> None:
    renderer = FaceRenderer(style)
    closed = _pixels(renderer, Pose(mouth=0, dx=3, dy=-3))
    assert closed.shape == (360, 640, 4)
    assert mouth_opening(closed) <= MOUTH_OPEN
    for level in range(1, MOUTH_LEVELS):
        for shape in ("round", "neutral", "wide"):
            opened = _pixels(renderer, Pose(mouth=level, shape=shape, dx=-3, dy=3))
            assert mouth_opening(opened) > MOUTH_OPEN, (level, shape)
    blinking = _pixels(renderer, Pose(eyes="closed"))
    assert not np.array_equal(blinking, _pixels(renderer, Pose()))


def test_styles_look_different_and_sizes_scale() -> None:
    default = _pixels(FaceRenderer(AvatarStyle()), Pose())
    branded = _pixels(FaceRenderer(AvatarStyle(accent="#E4572E", jacket="#444444")), Pose())
    assert np.abs(default.astype(int) - branded.astype(int)).max() > 50
    large = FaceRenderer(AvatarStyle(), 1280, 720)
    assert large.frame(Pose(mouth=5)).size == (1280, 720)
    assert mouth_opening(np.asarray(large.frame(Pose(mouth=5)))) > MOUTH_OPEN
    with pytest.raises(ValueError, match="too small"):
        FaceRenderer(AvatarStyle(), 100, 50)


def test_the_mouth_follows_the_voice_whatever_its_loudness() -> None:
    for dbfs in (-6.0, -30.0):  # a loud TTS and a quiet one open the mouth alike
        motion = Motion(FPS, seed=1)
        voice = _voice(2.0, dbfs=dbfs)
        mouths = [
            motion.speaking(voice[i : i + CHUNK], RATE).mouth for i in range(0, len(voice), CHUNK)
        ]
        assert max(mouths) >= MOUTH_LEVELS - 2, (dbfs, mouths)
        assert min(mouths[5:]) <= 1  # between syllables it (nearly) closes
        # a quarter of a second after the voice stops, it is shut
        assert [motion.silent().mouth for _ in range(7)][-1] == 0


def test_idle_the_face_blinks_and_sways_with_its_mouth_shut() -> None:
    motion = Motion(FPS, seed=2)
    poses = [motion.silent() for _ in range(int(12 * FPS))]
    assert all(pose.mouth == 0 for pose in poses)
    assert sum(pose.eyes == "closed" for pose in poses) >= 2  # a blink every 2.2 - 5.5 s
    assert max(p.dx for p in poses) - min(p.dx for p in poses) >= 4
    assert len({(p.dx, p.dy) for p in poses}) > 5


def test_an_interruption_shuts_the_mouth_on_the_next_frame() -> None:
    motion = Motion(FPS, seed=3)
    loud = _voice(0.12)[CHUNK : 2 * CHUNK]
    motion.speaking(loud, RATE)
    assert motion.speaking(loud, RATE).mouth > 0
    motion.interrupt()
    assert motion.silent().mouth == 0


async def _take(stream: AsyncIterator[object], count: int) -> list[object]:
    return [await asyncio.wait_for(anext(stream), 2) for _ in range(count)]


async def test_each_video_frame_leaves_with_its_slice_of_audio_then_the_segment_ends() -> None:
    generator = FaceVideoGenerator(FaceRenderer(AvatarStyle()), fps=FPS, sample_rate=RATE)
    voice = _voice(1.0)
    for frame in _frames(voice):
        await generator.push_audio(frame)
    await generator.push_audio(AudioSegmentEnd())
    stream = aiter(generator)
    items = await _take(stream, 2 * 25 + 1)
    videos, audios = items[0:-1:2], items[1:-1:2]
    assert all(isinstance(v, rtc.VideoFrame) for v in videos)
    assert all(isinstance(a, rtc.AudioFrame) and a.samples_per_channel == CHUNK for a in audios)
    assert b"".join(bytes(a.data) for a in audios if isinstance(a, rtc.AudioFrame)) == (
        voice.tobytes()
    )
    assert isinstance(items[-1], AudioSegmentEnd)
    assert generator.stats.speaking_frames == 25
    idle = await _take(stream, 3)  # then idle frames, paced to the frame rate
    assert all(isinstance(v, rtc.VideoFrame) for v in idle)
    assert generator.last_pose.mouth <= 2


async def test_a_barge_in_drops_the_unplayed_audio_and_shuts_the_mouth() -> None:
    generator = FaceVideoGenerator(FaceRenderer(AvatarStyle()), fps=FPS, sample_rate=RATE)
    for frame in _frames(_voice(3.0)):
        await generator.push_audio(frame)
    stream = aiter(generator)
    await _take(stream, 2 * 10)
    await generator.clear_buffer()
    after = await _take(stream, 3)
    assert all(isinstance(item, rtc.VideoFrame) for item in after)  # no more of the old voice
    assert generator.last_pose.mouth == 0


class _BreaksAfter(FaceRenderer):
    """A renderer whose drawing fails from the Nth frame on (a corrupt style, a bug)."""

    def __init__(self, frames: int) -> None:
        super().__init__(AvatarStyle())
        self._left = frames

    def rgba(self, pose: Pose) -> bytes:
        self._left -= 1
        if self._left < 0:
            raise RuntimeError("drawing failed")
        return super().rgba(pose)


async def test_a_face_that_fails_leaves_the_voice_playing() -> None:
    failures: list[BaseException] = []
    generator = FaceVideoGenerator(
        _BreaksAfter(5), fps=FPS, sample_rate=RATE, on_failure=failures.append
    )
    voice = _voice(0.8)
    for frame in _frames(voice):
        await generator.push_audio(frame)
    await generator.push_audio(AudioSegmentEnd())
    stream = aiter(generator)
    items = await _take(stream, 5 + 20 + 1)  # 5 video frames, 20 audio slices, the end
    assert sum(isinstance(i, rtc.VideoFrame) for i in items) == 5
    audio = b"".join(bytes(i.data) for i in items if isinstance(i, rtc.AudioFrame))
    assert audio == voice.tobytes()
    assert isinstance(items[-1], AudioSegmentEnd)
    assert len(failures) == 1 and not generator.video_on
    # silent and faceless, it waits for the next sentence rather than spinning
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(anext(stream), 0.3)


async def test_a_pause_holds_the_rest_of_the_voice_with_the_mouth_shut_until_resumed() -> None:
    """The framework pauses the agent when the user starts to talk (a false alarm resumes it)."""
    generator = FaceVideoGenerator(FaceRenderer(AvatarStyle()), fps=FPS, sample_rate=RATE)
    voice = _voice(1.0)
    for frame in _frames(voice):
        await generator.push_audio(frame)
    stream = aiter(generator)
    before = await _take(stream, 2 * 10)
    generator.hold(True)
    held = await _take(stream, 5)
    assert all(isinstance(item, rtc.VideoFrame) for item in held)
    assert generator.last_pose.mouth == 0
    generator.hold(False)
    after = await _take(stream, 2 * 15)
    played = [i for i in before + after if isinstance(i, rtc.AudioFrame)]
    assert b"".join(bytes(a.data) for a in played) == voice.tobytes()  # nothing lost


async def test_audio_at_another_rate_is_resampled_not_refused() -> None:
    generator = FaceVideoGenerator(FaceRenderer(AvatarStyle()), fps=FPS, sample_rate=RATE)
    piper = _voice(1.0)[::2].copy()  # 12 kHz
    for i in range(0, len(piper), 240):
        part = piper[i : i + 240]
        await generator.push_audio(rtc.AudioFrame(part.tobytes(), 12_000, 1, len(part)))
    items = await _take(aiter(generator), 2 * 20)
    audio = [i for i in items if isinstance(i, rtc.AudioFrame)]
    assert audio and all(a.sample_rate == RATE for a in audio)
