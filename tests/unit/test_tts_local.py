"""The local voices start on their first sound: the silence Piper opens a sentence with is cut."""

from __future__ import annotations

import numpy as np
import pytest

from agent_worker.piper_process import piper_server
from agent_worker.tts_local import (
    ONSET_PAD_S,
    SAMPLE_RATE,
    SILENCE_LEVEL,
    PiperTTS,
    trim_leading_silence,
)


def _pcm(samples: list[int] | np.ndarray) -> bytes:
    return np.asarray(samples, dtype=np.int16).tobytes()


def test_the_silence_before_the_first_sound_is_cut_but_a_short_pad() -> None:
    pad = round(ONSET_PAD_S * SAMPLE_RATE)
    sound = (3000 * np.sin(np.arange(2205) / 5)).astype(np.int16)
    pcm = _pcm(np.concatenate([np.full(1000, 20), sound, np.zeros(500)]))
    trimmed = np.frombuffer(trim_leading_silence(pcm), dtype=np.int16)
    onset = 1000 + int(np.flatnonzero(np.abs(sound) >= SILENCE_LEVEL)[0])
    assert trimmed.size == len(pcm) // 2 - (onset - pad)  # only the lead went, bar the pad
    assert np.all(np.abs(trimmed[:pad].astype(int)) < SILENCE_LEVEL)
    assert abs(int(trimmed[pad])) >= SILENCE_LEVEL


def test_sound_from_the_first_sample_and_pure_silence_are_left_alone() -> None:
    loud = _pcm([0, -4000, 4000] * 100)
    assert trim_leading_silence(loud) == loud
    silent = _pcm(np.zeros(800))
    assert trim_leading_silence(silent) == silent
    assert trim_leading_silence(b"") == b""


async def test_piper_speaks_from_its_first_frame() -> None:
    async with piper_server() as url:
        voice = PiperTTS(base_url=url)
        try:
            frames = [chunk.frame async for chunk in voice.synthesize("Hello!")]
        finally:
            await voice.aclose()
    pcm = np.concatenate([np.frombuffer(f.data, dtype=np.int16) for f in frames]).astype(int)
    onset = int(np.flatnonzero(np.abs(pcm) >= SILENCE_LEVEL)[0])
    assert onset == pytest.approx(ONSET_PAD_S * SAMPLE_RATE, abs=1)  # Piper's own lead: ~25 ms
    assert pcm.size > 0.3 * SAMPLE_RATE  # the word itself is all there
