"""The one place that turns configuration into voice-loop providers."""

from __future__ import annotations

from typing import Any

from faster_whisper import WhisperModel  # type: ignore[import-untyped]
from livekit.agents import llm, stt, tts, vad

from .config import JobConfig
from .responder import OfflineResponder
from .stt_local import WhisperSTT
from .tts_local import EspeakTTS, PiperTTS


def build_stt(whisper: WhisperModel, speech_detector: vad.VAD) -> stt.STT[Any]:
    """Whisper transcribes whole utterances: the VAD cuts the user's audio into them."""
    return stt.StreamAdapter(stt=WhisperSTT(whisper), vad=speech_detector)


def build_llm() -> llm.LLM[Any]:
    """The offline deck-grounded responder (no language model is configured yet)."""
    return OfflineResponder()


def build_tts(config: JobConfig) -> tts.TTS[Any]:
    """Piper first, espeak-ng behind it when both are configured. The caller closes it."""
    engines: list[tts.TTS[Any]] = []
    if config.piper_url is not None:
        engines.append(PiperTTS(base_url=config.piper_url))
    if config.espeak_binary is not None:
        engines.append(EspeakTTS(binary=config.espeak_binary))
    if not engines:
        raise ValueError("no TTS engine configured")
    if len(engines) == 1:
        return engines[0]
    return _OwningFallbackAdapter(engines)


class _OwningFallbackAdapter(tts.FallbackAdapter):
    """The framework's adapter leaves the engines it wraps open; this one closes them."""

    def __init__(self, engines: list[tts.TTS[Any]]) -> None:
        # both engines are local: a failure is rarely transient, so fall through after one retry
        super().__init__(engines, max_retry_per_tts=1)
        self._engines = engines

    async def aclose(self) -> None:
        await super().aclose()
        for engine in self._engines:
            await engine.aclose()
