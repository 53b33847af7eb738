"""Silence one channel of an Ogg/Opus recording over time spans: the user's words that held
personal data, in a redacted tenant's recordings.

The stream is decoded, the channel's samples in each span are set to zero, and the result is
encoded again as Ogg/Opus at the same rate and layout (one generation of re-encoding, at 96
kbit/s stereo, is inaudible for speech). CPU-bound: call it in a thread.
"""

from __future__ import annotations

import io
import itertools
from collections.abc import Sequence

import av
import numpy as np
from av.audio.frame import AudioFrame

USER_CHANNEL = 0  # the framework's recorder: the user left, the presenter right
_RATE = 48_000
_BITRATE = 96_000


def silence_channel(
    data: bytes, spans: Sequence[tuple[float, float]], channel: int = USER_CHANNEL
) -> bytes:
    """``data`` with ``channel`` silent over each (start, end) span, in seconds from the start
    of the file; spans outside it change nothing."""
    out = io.BytesIO()
    with (
        av.open(io.BytesIO(data), mode="r", format="ogg") as source,
        av.open(out, mode="w", format="ogg") as sink,
    ):
        audio = source.streams.audio[0]
        layout = audio.layout.name
        encoder = sink.add_stream("libopus", rate=_RATE, layout=layout)
        encoder.bit_rate = _BITRATE
        resampler = av.AudioResampler(format="fltp", layout=layout, rate=_RATE)
        position = 0  # samples decoded so far, at 48 kHz
        # None at the end: what the resampler still holds
        for decoded in itertools.chain(source.decode(audio), [None]):
            for frame in resampler.resample(decoded):
                planes = frame.to_ndarray()  # (channels, samples), float32
                _zero(planes, channel, position, spans)
                position += planes.shape[1]
                silenced = AudioFrame.from_ndarray(planes, format="fltp", layout=layout)
                silenced.sample_rate = _RATE
                for packet in encoder.encode(silenced):
                    sink.mux(packet)
        for packet in encoder.encode(None):
            sink.mux(packet)
    return out.getvalue()


def _zero(
    planes: np.ndarray, channel: int, first: int, spans: Sequence[tuple[float, float]]
) -> None:
    if channel >= planes.shape[0]:
        return
    last = first + planes.shape[1]
    for start_s, end_s in spans:
        lo = max(first, int(start_s * _RATE))
        hi = min(last, int(np.ceil(end_s * _RATE)))
        if lo < hi:
            planes[channel, lo - first : hi - first] = 0.0


def silent_ogg(duration_s: float, layout: str = "stereo") -> bytes:
    """An Ogg/Opus file of silence: what stands in for a segment that could not be decoded
    (and so could not be redacted)."""
    out = io.BytesIO()
    with av.open(out, mode="w", format="ogg") as sink:
        encoder = sink.add_stream("libopus", rate=_RATE, layout=layout)
        frame_samples = _RATE // 50
        channels = 2 if layout == "stereo" else 1
        for _ in range(max(1, round(duration_s * 50))):
            frame = AudioFrame.from_ndarray(
                np.zeros((channels, frame_samples), dtype=np.float32), format="fltp", layout=layout
            )
            frame.sample_rate = _RATE
            for packet in encoder.encode(frame):
                sink.mux(packet)
        for packet in encoder.encode(None):
            sink.mux(packet)
    return out.getvalue()
