"""Audio the fakes send back: a speech-like tone, encoded in the format the client asked for."""

from __future__ import annotations

import io
import wave

import av
import numpy as np
import numpy.typing as npt

PCM16 = npt.NDArray[np.int16]

# container, codec and (fixed) encoder rate per format name; None keeps the requested rate
_CODECS: dict[str, tuple[str, str, int | None]] = {
    "mp3": ("mp3", "libmp3lame", None),
    "opus": ("ogg", "libopus", 48000),  # Ogg Opus, as OpenAI and ElevenLabs send it
    "flac": ("flac", "flac", None),
}
# bare MPEG frames: no ID3 tag or Xing header, so pieces encoded one flush at a time still
# decode as one stream when a client concatenates them (as ElevenLabs' stream does)
_MUXER_OPTIONS = {"mp3": {"id3v2_version": "0", "write_xing": "0"}}


def tone(duration_s: float, sample_rate: int) -> PCM16:
    """A voiced-sounding signal: a 180 Hz fundamental with harmonics under a 4 Hz syllable
    envelope, so level meters, VADs and "is it silent" checks behave as they would with speech."""
    t = np.arange(int(duration_s * sample_rate)) / sample_rate
    voice = sum(np.sin(2 * np.pi * 180 * k * t) / k for k in (1, 2, 3, 4))
    envelope = 0.55 + 0.45 * np.sin(2 * np.pi * 4 * t)
    return (voice * envelope * 6000).astype(np.int16)


def encode(pcm: PCM16, sample_rate: int, fmt: str) -> bytes:
    """``pcm`` (raw s16le), ``wav``, ``mp3``, ``opus`` or ``flac`` bytes of mono ``pcm``."""
    if fmt == "pcm":
        return pcm.tobytes()
    if fmt == "wav":
        buf = io.BytesIO()
        with wave.open(buf, "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(sample_rate)
            w.writeframes(pcm.tobytes())
        return buf.getvalue()
    if fmt not in _CODECS:
        raise ValueError(f"fake cannot encode {fmt!r}")
    container, codec, rate = _CODECS[fmt]
    out = io.BytesIO()
    with av.open(out, "w", format=container, options=_MUXER_OPTIONS.get(fmt, {})) as muxer:
        stream = muxer.add_stream(codec, rate=rate or sample_rate, layout="mono")
        assert isinstance(stream, av.AudioStream)
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = sample_rate
        resampler = av.AudioResampler(format="s16", layout="mono", rate=rate or sample_rate)
        for resampled in resampler.resample(frame):
            muxer.mux(stream.encode(resampled))
        muxer.mux(stream.encode(None))
    return out.getvalue()


def chunks(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)] or [b""]
