"""Speaking into a room as a participant would: espeak-ng audio, real-time frames, bounded waits."""

from __future__ import annotations

import asyncio
import subprocess
import wave
from io import BytesIO
from typing import Any

import numpy as np
from livekit import rtc


def espeak(text: str) -> tuple[np.ndarray[Any, np.dtype[np.int16]], int]:
    """``text`` spoken by espeak-ng: int16 mono samples and their rate."""
    wav = subprocess.run(["espeak-ng", "--stdout", text], check=True, capture_output=True).stdout
    with wave.open(BytesIO(wav)) as reader:
        rate = reader.getframerate()
        samples = np.frombuffer(reader.readframes(reader.getnframes()), dtype=np.int16)
    return samples, rate


async def speak(source: rtc.AudioSource, samples: np.ndarray[Any, np.dtype[np.int16]]) -> None:
    """Real-time 10 ms frames, then a second of silence so the VAD hears the end of the turn."""
    step = source.sample_rate // 100
    padded = np.concatenate([samples, np.zeros(source.sample_rate, dtype=np.int16)])
    for start in range(0, len(padded) - step + 1, step):
        chunk = padded[start : start + step]
        await source.capture_frame(rtc.AudioFrame(chunk.tobytes(), source.sample_rate, 1, step))


async def within(waiting: asyncio.Future[Any], seconds: float, failure: str) -> Any:
    try:
        return await asyncio.wait_for(asyncio.shield(waiting), seconds)
    except TimeoutError:
        raise AssertionError(f"{failure} within {seconds} s") from None
