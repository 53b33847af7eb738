"""The captions' speaking-rate estimate, vectorised.

The framework keeps the captions in step with the voice by estimating how fast the presenter
speaks: every 100 ms of the agent's audio it takes the spectral flux of the last second. In
livekit-agents 1.8.9 that is a Python loop of one FFT per 25 ms frame, ~2 ms of CPU a window,
on the job's event loop and without yielding between windows. A sentence arrives from the TTS
in one piece, so a few seconds of audio are analysed in one go: the loop stalled for 100-170 ms
exactly when the first audio of a reply or of the greeting was on its way out (the framework's
loop monitor logged it). The same figure is computed here with one FFT over all the frames at
once (~0.4 ms a window); ``tests/unit/test_speaking_rate.py`` checks it against the framework's
own method.

It replaces a private method of the pinned livekit-agents (``pyproject.toml``): re-check on an
upgrade (the test fails if the method is gone).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from livekit.agents.voice.transcription._speaking_rate import SpeakingRateStream

FRAME_S = 0.025
"""The framework's STFT frame (25 ms, half overlapping)."""

_original = SpeakingRateStream._spectral_flux


def spectral_flux(audio: np.ndarray[Any, np.dtype[np.float32]], sample_rate: int) -> float:
    """Mean L1 change between consecutive magnitude spectra of 25 ms Hann-windowed frames
    (hop 12.5 ms), each spectrum scaled by the window's energy: the framework's measure."""
    frame_length = int(sample_rate * FRAME_S)
    hop = frame_length // 2
    count = (len(audio) - frame_length) // hop + 1 if hop else 0
    if count < 2:
        return 0.0
    frames = np.lib.stride_tricks.sliding_window_view(audio, frame_length)[::hop][:count]
    window = np.hanning(frame_length)
    magnitudes = np.abs(np.fft.rfft(frames * window, axis=1)) / np.sqrt(np.sum(window**2))
    return float(np.mean(np.sum(np.abs(np.diff(magnitudes, axis=0)), axis=1)))


def _vectorised(
    self: SpeakingRateStream, audio: np.ndarray[Any, np.dtype[np.float32]], sample_rate: int
) -> float:
    return spectral_flux(audio, sample_rate)


def install() -> None:
    """Use the vectorised measure in this process (idempotent)."""
    SpeakingRateStream._spectral_flux = _vectorised  # type: ignore[method-assign]


def framework_spectral_flux(
    audio: np.ndarray[Any, np.dtype[np.float32]], sample_rate: int
) -> float:
    """The framework's own figure, for the test that holds the two equal."""
    stream = SpeakingRateStream.__new__(SpeakingRateStream)  # no task: only the maths is used
    return float(_original(stream, audio, sample_rate))
