"""The one place that turns configuration into voice-loop providers.

Each stage is a chain, first choice first: the configured cloud provider, then the local engine
behind it (the framework's ``FallbackAdapter`` moves on when a provider fails). With no cloud
provider configured a stage is its local engine alone. The LLM chain ends in the offline
responder, which always answers from the deck: when it stands in for a failed model it opens
with a short apology, so the user never hears dead air.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import openai as openai_sdk
from faster_whisper import WhisperModel  # type: ignore[import-untyped]
from livekit.agents import APIConnectOptions, llm, stt, tts, vad
from livekit.agents.types import DEFAULT_API_CONNECT_OPTIONS, NOT_GIVEN, NotGivenOr
from livekit.plugins import deepgram, elevenlabs, openai

from shared.settings import WorkerSettings

from .config import JobConfig
from .responder import OfflineResponder
from .stt_local import WhisperSTT
from .stt_stream import SpeculativeStreamAdapter
from .tts_local import EspeakTTS, PiperTTS

APOLOGY = "Sorry, I had a hiccup."


def build_stt(
    settings: WorkerSettings,
    whisper: WhisperModel,
    speech_detector: vad.VAD,
    *,
    http_session: aiohttp.ClientSession | None = None,
    language: str = "en",
) -> stt.STT[Any]:
    """The cloud STT, then Whisper. Whisper (and OpenAI's file transcription) are not streaming:
    the VAD cuts the user's audio into utterances for them. ``language``: the session's; the
    local Whisper is tiny.en, English only (docs/languages.md)."""
    local = WhisperSTT(whisper)
    if settings.stt_provider == "local":
        return SpeculativeStreamAdapter(
            stt=local, vad=speech_detector, preflight=settings.stt_preflight
        )
    closers: list[Callable[[], Awaitable[None]]] = [local.aclose]
    cloud: stt.STT[Any]
    if settings.stt_provider == "deepgram":
        assert settings.deepgram_api_key is not None  # the settings validator checked
        cloud = deepgram.STT(
            model=settings.deepgram_model,
            language="en-US" if language == "en" else language,
            api_key=settings.deepgram_api_key.get_secret_value(),
            base_url=settings.deepgram_base_url,
            http_session=http_session,
        )
    else:
        # openai.STT leaves a client it created open on close: own it here
        client = _openai_client(settings)
        closers.append(client.close)
        cloud = openai.STT(
            model=settings.openai_stt_model, client=client, use_realtime=False, language=language
        )
    closers.insert(0, cloud.aclose)
    return _OwningSTTFallback([cloud, local], speech_detector=speech_detector, closers=closers)


def build_llm(settings: WorkerSettings, language: str = "en") -> llm.LLM[Any]:
    """The configured model, then the offline responder; the responder alone when local."""
    if settings.llm_provider == "local":
        return OfflineResponder(language)
    assert settings.openai_api_key is not None  # the settings validator checked
    cloud = openai.LLM(
        model=settings.openai_llm_model,
        api_key=settings.openai_api_key.get_secret_value(),
        base_url=settings.openai_base_url,
    )
    return _OwningLLMFallback(
        [cloud, ApologeticResponder()], attempt_timeout=settings.provider_timeout_seconds
    )


def build_tts(
    settings: WorkerSettings,
    config: JobConfig,
    *,
    http_session: aiohttp.ClientSession | None = None,
    language: str = "en",
) -> tts.TTS[Any]:
    """The cloud TTS, then Piper, then espeak-ng, as configured. The caller closes it. In
    another language than English: no Piper (its only voice on PyPI is English), espeak-ng
    with that language's voice, ElevenLabs told the language (a multilingual model)."""
    engines = _local_tts(config, language)
    if settings.tts_provider == "elevenlabs":
        assert settings.elevenlabs_api_key is not None  # the settings validator checked
        engines.insert(
            0,
            elevenlabs.TTS(
                voice_id=settings.elevenlabs_voice_id,
                model=settings.elevenlabs_model,
                language=NOT_GIVEN if language == "en" else language,
                api_key=settings.elevenlabs_api_key.get_secret_value(),
                base_url=settings.elevenlabs_base_url,
                http_session=http_session,
            ),
        )
    elif settings.tts_provider == "openai":
        assert settings.openai_api_key is not None  # the settings validator checked
        engines.insert(
            0,
            openai.TTS(
                model=settings.openai_tts_model,
                voice=settings.openai_tts_voice,
                api_key=settings.openai_api_key.get_secret_value(),
                base_url=settings.openai_base_url,
            ),
        )
    if not engines:
        raise ValueError("no TTS engine configured")
    if len(engines) == 1:
        return engines[0]
    return _OwningTTSFallback(engines)


def first_voice_piper(speech: tts.TTS[Any]) -> PiperTTS | None:
    """The Piper engine of a chain built by ``build_tts``, when it is the one that speaks
    (first in the chain): whom a rehearsal asks to synthesize ahead."""
    if isinstance(speech, _OwningTTSFallback):
        speech = speech.engines[0]
    return speech if isinstance(speech, PiperTTS) else None


def _local_tts(config: JobConfig, language: str = "en") -> list[tts.TTS[Any]]:
    engines: list[tts.TTS[Any]] = []
    if config.piper_url is not None and language == "en":
        engines.append(PiperTTS(base_url=config.piper_url))
    if config.espeak_binary is not None:
        voice = None if language == "en" else language
        engines.append(EspeakTTS(binary=config.espeak_binary, voice=voice))
    return engines


def _openai_client(settings: WorkerSettings) -> openai_sdk.AsyncClient:
    assert settings.openai_api_key is not None
    return openai_sdk.AsyncClient(
        api_key=settings.openai_api_key.get_secret_value(), base_url=settings.openai_base_url
    )


class ApologeticResponder(OfflineResponder):
    """The offline responder as the last link of a model chain: it only answers when the model
    could not, so it says so first."""

    def chat(
        self,
        *,
        chat_ctx: llm.ChatContext,
        tools: list[llm.Tool] | None = None,
        conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS,
        parallel_tool_calls: NotGivenOr[bool] = NOT_GIVEN,
        tool_choice: NotGivenOr[llm.ToolChoice] = NOT_GIVEN,
        extra_kwargs: NotGivenOr[dict[str, Any]] = NOT_GIVEN,
    ) -> llm.LLMStream:
        inner = super().chat(chat_ctx=chat_ctx, tools=tools, conn_options=conn_options)
        return _ApologyStream(
            self, inner, chat_ctx=chat_ctx, tools=tools or [], conn_options=conn_options
        )


class _ApologyStream(llm.LLMStream):
    def __init__(
        self,
        responder: ApologeticResponder,
        inner: llm.LLMStream,
        *,
        chat_ctx: llm.ChatContext,
        tools: list[llm.Tool],
        conn_options: APIConnectOptions,
    ) -> None:
        super().__init__(responder, chat_ctx=chat_ctx, tools=tools, conn_options=conn_options)
        self._inner = inner

    async def _run(self) -> None:
        apologised = False
        async with self._inner as stream:
            async for chunk in stream:
                delta = chunk.delta
                if delta is not None and delta.content and not apologised:
                    apologised = True
                    delta = delta.model_copy(update={"content": f"{APOLOGY} {delta.content}"})
                    chunk = chunk.model_copy(update={"delta": delta})
                self._event_ch.send_nowait(chunk)


# The framework's adapters leave the providers they wrap open; these close them too.


class _OwningSTTFallback(stt.FallbackAdapter):
    def __init__(
        self,
        engines: list[stt.STT[Any]],
        *,
        speech_detector: vad.VAD,
        closers: list[Callable[[], Awaitable[None]]],
    ) -> None:
        super().__init__(engines, vad=speech_detector)
        self._closers = closers

    async def aclose(self) -> None:
        await super().aclose()
        for close in self._closers:
            await close()


class _OwningLLMFallback(llm.FallbackAdapter):
    def __init__(self, engines: list[llm.LLM[Any]], *, attempt_timeout: float) -> None:
        super().__init__(engines, attempt_timeout=attempt_timeout)
        self._engines = engines

    async def aclose(self) -> None:
        # the adapter probes a failed model in a task it does not cancel itself
        probes = [s.recovering_task for s in self._status if s.recovering_task is not None]
        for probe in probes:
            probe.cancel()
        await asyncio.gather(*probes, return_exceptions=True)
        await super().aclose()
        for engine in self._engines:
            await engine.aclose()


class _OwningTTSFallback(tts.FallbackAdapter):
    def __init__(self, engines: list[tts.TTS[Any]]) -> None:
        # local engines rarely fail transiently: fall through after one retry
        super().__init__(engines, max_retry_per_tts=1)
        self.engines = engines

    async def aclose(self) -> None:
        await super().aclose()
        for engine in self.engines:
            await engine.aclose()
