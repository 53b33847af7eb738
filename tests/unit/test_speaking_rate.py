"""The captions' speaking-rate estimate: the vectorised measure gives the framework's figures."""

from __future__ import annotations

import numpy as np
import pytest
from livekit import rtc
from livekit.agents.voice.transcription._speaking_rate import (
    SpeakingRateDetector,
    SpeakingRateStream,
)

from agent_worker import speaking_rate


def _voice_like(seconds: float, sample_rate: int, seed: int) -> np.ndarray:
    """Syllable-paced bursts of a gliding tone and noise, with pauses: a spectrum that moves."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    pitch = 120 + 60 * np.sin(2 * np.pi * 0.7 * t)
    tone = np.sin(2 * np.pi * np.cumsum(pitch) / sample_rate) * (np.sin(2 * np.pi * 4 * t) > 0)
    signal = 0.3 * tone + 0.05 * rng.standard_normal(t.size)
    signal[int(0.4 * t.size) : int(0.5 * t.size)] = 0  # a pause
    return signal.astype(np.float32)


@pytest.mark.parametrize("sample_rate", [16_000, 22_050, 24_000, 48_000])
@pytest.mark.parametrize("seconds", [0.026, 0.04, 0.05, 0.5, 1.0])
def test_the_measure_is_the_frameworks(sample_rate: int, seconds: float) -> None:
    audio = _voice_like(seconds, sample_rate, seed=sample_rate)
    expected = speaking_rate.framework_spectral_flux(audio, sample_rate)
    assert speaking_rate.spectral_flux(audio, sample_rate) == pytest.approx(expected, rel=1e-9)


def test_silence_and_too_short_audio_measure_zero() -> None:
    # (the framework raises on audio shorter than a frame; it never passes less than 0.5 s)
    assert speaking_rate.spectral_flux(np.zeros(0, dtype=np.float32), 24_000) == 0.0
    assert speaking_rate.spectral_flux(np.ones(600, dtype=np.float32), 24_000) == 0.0


async def _rates(audio: np.ndarray, sample_rate: int) -> list[tuple[float, float]]:
    """What the framework's stream reports for ``audio`` pushed as 10 ms TTS frames."""
    stream = SpeakingRateDetector().stream()
    pcm = (audio * np.iinfo(np.int16).max).astype(np.int16)
    step = sample_rate // 100
    for start in range(0, pcm.size, step):
        chunk = pcm[start : start + step]
        stream.push_frame(rtc.AudioFrame(chunk.tobytes(), sample_rate, 1, chunk.size))
    stream.end_input()
    return [(event.timestamp, event.speaking_rate) async for event in stream]


async def test_installed_the_stream_reports_what_it_did_before() -> None:
    audio = _voice_like(3.0, 24_000, seed=7)
    before = SpeakingRateStream.__dict__["_spectral_flux"]
    try:
        SpeakingRateStream._spectral_flux = speaking_rate._original  # type: ignore[method-assign]
        framework = await _rates(audio, 24_000)
        speaking_rate.install()
        ours = await _rates(audio, 24_000)
    finally:
        SpeakingRateStream._spectral_flux = before  # type: ignore[method-assign]
    assert len(ours) == len(framework) > 20
    for (t_ours, rate_ours), (t_theirs, rate_theirs) in zip(ours, framework, strict=True):
        assert t_ours == t_theirs
        assert rate_ours == pytest.approx(rate_theirs, rel=1e-9)
    assert any(rate > 0 for _, rate in ours)  # speech was measured, not only silence
