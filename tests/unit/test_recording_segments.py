"""The session recording in segments: the framework's recorder, rotated while the session runs,
leaves one complete Ogg/Opus file per segment (both channels, decodable on its own, its length
read from its last granule), each uploaded as it closes and numbered in order — and the open one
is finished and uploaded when the job ends."""

from __future__ import annotations

import asyncio
import io
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from livekit import rtc
from livekit.agents.voice import io as voice_io
from livekit.agents.voice.recorder_io import RecorderIO

from agent_worker.recording import InvalidOgg, RecordingSegments, opus_duration_s

RATE = 48_000
FRAME_S = 0.02


def _tone(hz: float, seconds: float, *, rate: int = RATE) -> rtc.AudioFrame:
    t = np.arange(round(seconds * rate)) / rate
    pcm = (np.sin(2 * np.pi * hz * t) * 12_000).astype(np.int16)
    return rtc.AudioFrame(pcm.tobytes(), rate, 1, len(pcm))


class Microphone(voice_io.AudioInput):
    """The user: a 440 Hz tone, one frame every 20 ms in real time."""

    def __init__(self) -> None:
        super().__init__(label="microphone")

    async def __anext__(self) -> rtc.AudioFrame:
        await asyncio.sleep(FRAME_S)
        return _tone(440, FRAME_S)


class Session:
    """What the segmenter reads of an AgentSession: its recorder, its state, its close."""

    def __init__(self, recorder: RecorderIO) -> None:
        self._recorder_io = recorder
        self.agent_state = "listening"

    async def aclose(self) -> None:
        await self._recorder_io.aclose()


@dataclass
class Uploads:
    received: list[dict[str, Any]] = field(default_factory=list)

    async def put_recording_segment(
        self, n: int, audio: bytes, *, job_id: str, started_at: float, duration_s: float
    ) -> None:
        self.received.append(
            {"n": n, "audio": audio, "job": job_id, "at": started_at, "duration_s": duration_s}
        )


def _decode(audio: bytes) -> np.ndarray:
    with av.open(io.BytesIO(audio), mode="r") as container:
        stream = container.streams.audio[0]
        assert (stream.codec_context.name, stream.rate, stream.channels) == ("opus", RATE, 2)
        frames = [f.to_ndarray() for f in container.decode(audio=0)]
    return np.concatenate(frames, axis=1)


@pytest.mark.unit
async def test_segments_are_uploaded_while_the_session_runs_each_a_playable_stereo_file(
    tmp_path: Path,
) -> None:
    recorder = RecorderIO(agent_session=None)  # type: ignore[arg-type]
    mic = recorder.record_input(Microphone())
    speaker = recorder.record_output(None)  # type: ignore[arg-type]  # the room is not needed
    await recorder.start(output_path=tmp_path / "audio.ogg")
    session = Session(recorder)
    uploads = Uploads()
    segments = RecordingSegments(
        session,  # type: ignore[arg-type]
        tmp_path,
        uploads,  # type: ignore[arg-type]
        job_id="AJ_one",
        segment_s=1.0,
    )
    segments.start()
    began = time.time()

    async def listen() -> None:
        async for _ in mic:
            pass

    listening = asyncio.create_task(listen())
    try:
        # The presenter answers for 0.5 s, 1.2 s in.
        await asyncio.sleep(1.2)
        reply = _tone(880, 0.5)
        await speaker.capture_frame(reply)
        speaker.on_playback_started(created_at=time.time())
        await asyncio.sleep(0.5)
        speaker.on_playback_finished(playback_position=0.5, interrupted=False)
        await asyncio.sleep(2.2)
        while_running = list(uploads.received)
    finally:
        listening.cancel()
        with pytest.raises(asyncio.CancelledError):
            await listening
    await segments.aclose()

    assert [u["n"] for u in while_running][:2] == [0, 1], "no segment before the job ended"
    received = uploads.received
    assert [u["n"] for u in received] == list(range(len(received)))
    assert len(received) >= 4
    assert {u["job"] for u in received} == {"AJ_one"}
    starts = [u["at"] for u in received]
    assert starts == sorted(starts) and starts[0] == pytest.approx(began, abs=0.5)
    total = 0.0
    for upload in received:
        samples = _decode(upload["audio"])
        seconds = samples.shape[1] / RATE
        # Each file says how long it is, and says it right; segments abut.
        assert upload["duration_s"] == pytest.approx(seconds, abs=0.03)
        total += upload["duration_s"]
        assert np.sqrt(np.mean(samples[0] ** 2)) > 0.05  # the user's tone throughout
    assert total == pytest.approx(time.time() - began, abs=0.8)
    presenter = [np.abs(_decode(u["audio"])[1]).max() for u in received]
    assert max(presenter) > 0.2  # the answer is in the right channel of some segment
    left = await asyncio.to_thread(lambda: list(tmp_path.glob("*.ogg")))
    assert not left, "uploaded files are removed from the disk"


@pytest.mark.unit
def test_a_cut_or_foreign_file_has_no_duration() -> None:
    with pytest.raises(InvalidOgg):
        opus_duration_s(b"RIFF....WAVE")
    with pytest.raises(InvalidOgg):
        opus_duration_s(b"OggS" + b"\0" * 40)
