"""What the face does, frame by frame: mouth from the voice, blinks and head sway always.

The mouth follows the loudness of each video frame's slice of the agent's audio, normalised to
the voice's own recent peak (TTS engines differ by 10 dB), opening fast and closing a little
slower, as lips do; its shape follows where the slice's energy sits in the spectrum (low: a
rounded "o", high: a wide "ee"/"s"). Idle motion is a slow, irregular sway and a blink every few
seconds, so the presenter never looks frozen while it listens.
"""

from __future__ import annotations

import math
import random

import numpy as np

from .face import MOUTH_LEVELS, Eyes, MouthShape, Pose

SILENCE_DBFS = -50.0
"""Quieter than this (relative to full scale) the mouth stays shut."""
_DYNAMIC_RANGE_DB = 30.0
_ATTACK = 0.75
_RELEASE = 0.8
_PEAK_DECAY_PER_FRAME = 0.995
_BLINK: tuple[Eyes, ...] = ("half", "closed", "closed", "half")


class Motion:
    """Turns audio slices (or their absence) into poses for one face at ``fps``."""

    def __init__(self, fps: float, *, scale: float = 1.0, seed: int | None = None) -> None:
        self._fps = fps
        self._scale = scale  # output pixels per design pixel: sway is sized to the frame
        self._random = random.Random(seed)  # animation, not security
        self._frame = 0
        self._opening = 0.0
        self._peak_rms = 0.0
        self._shape: MouthShape = "neutral"
        self._blink_at = self._next_blink()
        self._phase = self._random.uniform(0, 2 * math.pi)

    def speaking(self, samples: np.ndarray, sample_rate: int) -> Pose:
        """The pose for a frame during which ``samples`` (int16, mono) are heard."""
        level = _rms(samples)
        self._peak_rms = max(level, self._peak_rms * _PEAK_DECAY_PER_FRAME)
        target = 0.0
        if level > 0 and _dbfs(level) > SILENCE_DBFS:
            below_peak = _dbfs(level) - _dbfs(max(self._peak_rms, level))
            target = max(0.0, 1.0 + below_peak / _DYNAMIC_RANGE_DB)
            self._shape = _shape_of(samples, sample_rate)
        self._ease(target)
        return self._pose(nod=self._opening)

    def silent(self) -> Pose:
        """The pose for a frame with nothing to say."""
        self._ease(0.0)
        return self._pose(nod=0.0)

    def interrupt(self) -> None:
        """Barge-in: the mouth shuts on the next frame, not after the usual release."""
        self._opening = 0.0

    @property
    def mouth(self) -> int:
        return round(self._opening * (MOUTH_LEVELS - 1))

    def _ease(self, target: float) -> None:
        rate = _ATTACK if target > self._opening else _RELEASE
        self._opening += (target - self._opening) * rate
        if self._opening < 0.02:
            self._opening = 0.0

    def _pose(self, *, nod: float) -> Pose:
        self._frame += 1
        t = self._frame / self._fps
        # two incommensurate sines: a sway that never visibly repeats
        dx = 2.6 * math.sin(2 * math.pi * t / 7.3 + self._phase) + 1.2 * math.sin(
            2 * math.pi * t / 3.1
        )
        dy = 1.6 * math.sin(2 * math.pi * t / 5.3 + self._phase) + 1.6 * nod
        return Pose(
            mouth=self.mouth,
            shape=self._shape if self._opening > 0 else "neutral",
            eyes=self._eyes(),
            dx=round(dx * self._scale),
            dy=round(dy * self._scale),
        )

    def _eyes(self) -> Eyes:
        into_blink = self._frame - self._blink_at
        if into_blink < 0:
            return "open"
        if into_blink < len(_BLINK):
            return _BLINK[into_blink]
        self._blink_at = self._next_blink()
        return "open"

    def _next_blink(self) -> int:
        return self._frame + round(self._random.uniform(2.2, 5.5) * self._fps)


def _rms(samples: np.ndarray) -> float:
    if samples.size == 0:
        return 0.0
    values = samples.astype(np.float32)
    return float(np.sqrt(np.mean(values * values)))


def _dbfs(rms: float) -> float:
    return 20 * math.log10(max(rms, 1e-3) / 32768)


def _shape_of(samples: np.ndarray, sample_rate: int) -> MouthShape:
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float32) * np.hanning(samples.size)))
    freqs = np.fft.rfftfreq(samples.size, 1 / sample_rate)
    total = float(spectrum.sum())
    if total <= 0:
        return "neutral"
    centroid = float((spectrum * freqs).sum()) / total
    if centroid < 900:
        return "round"
    if centroid > 2600:
        return "wide"
    return "neutral"
