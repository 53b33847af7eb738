"""The provider factory: settings pick each stage's chain (cloud first, local behind it), and the
chains behave — the real OpenAI / ElevenLabs plugins against the local protocol fakes, with the
offline engines taking over when a provider fails."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import wave
from collections.abc import AsyncIterator
from io import BytesIO
from typing import Any

import aiohttp
import numpy as np
import pytest
from faster_whisper import WhisperModel  # type: ignore[import-untyped]
from livekit import rtc
from livekit.agents import (
    Agent,
    AgentSession,
    RunContext,
    RunResult,
    function_tool,
    llm,
    stt,
    tts,
    vad,
)
from livekit.plugins import deepgram, elevenlabs, openai, silero
from pydantic import ValidationError

from agent_worker.config import JobConfig
from agent_worker.providers import APOLOGY, ApologeticResponder, build_llm, build_stt, build_tts
from agent_worker.responder import OfflineResponder
from agent_worker.stt_local import WhisperSTT, load_whisper
from agent_worker.stt_stream import SpeculativeStreamAdapter
from agent_worker.tts_local import EspeakTTS, PiperTTS
from shared.settings import WorkerSettings
from tests.fakes import DeepgramFake, ElevenLabsFake, OpenAIFake

ESPEAK = shutil.which("espeak-ng")
LOCAL_TTS = JobConfig(
    control_plane_url="http://127.0.0.1:9",
    request_timeout_seconds=1,
    piper_url="http://127.0.0.1:9",  # never reached: these tests only build the chain
    espeak_binary=ESPEAK,
)
KEYS: dict[str, Any] = {
    "openai_api_key": "sk-test",
    "deepgram_api_key": "dg-test",
    "elevenlabs_api_key": "xi-test",
}


# --- settings ----------------------------------------------------------------------------------


def test_with_no_configuration_every_stage_is_local() -> None:
    settings = WorkerSettings()
    assert (settings.stt_provider, settings.llm_provider, settings.tts_provider) == (
        "local",
        "local",
        "local",
    )
    assert settings.openai_base_url == "https://api.openai.com/v1"
    assert settings.openai_llm_model == "gpt-4o-mini"


@pytest.mark.parametrize(
    ("env", "missing"),
    [
        ({"PODIUM_LLM_PROVIDER": "openai"}, "PODIUM_OPENAI_API_KEY"),
        ({"PODIUM_STT_PROVIDER": "openai"}, "PODIUM_OPENAI_API_KEY"),
        ({"PODIUM_TTS_PROVIDER": "openai"}, "PODIUM_OPENAI_API_KEY"),
        ({"PODIUM_STT_PROVIDER": "deepgram"}, "PODIUM_DEEPGRAM_API_KEY"),
        ({"PODIUM_TTS_PROVIDER": "elevenlabs"}, "PODIUM_ELEVENLABS_API_KEY"),
        (
            {"PODIUM_TTS_PROVIDER": "elevenlabs", "PODIUM_ELEVENLABS_API_KEY": ""},
            "PODIUM_ELEVENLABS_API_KEY",
        ),
    ],
)
def test_a_cloud_provider_without_its_key_is_refused_by_name(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], missing: str
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError) as err:
        WorkerSettings()
    assert missing in str(err.value)


def test_keys_are_secret_and_a_wrong_choice_does_not_echo_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PODIUM_LLM_PROVIDER", "openai")
    monkeypatch.setenv("PODIUM_OPENAI_API_KEY", "sk-very-secret")
    settings = WorkerSettings()
    assert "sk-very-secret" not in repr(settings)
    monkeypatch.setenv("PODIUM_STT_PROVIDER", "whisper-cloud")
    with pytest.raises(ValidationError) as err:
        WorkerSettings()
    assert "stt_provider" in str(err.value) and "sk-very-secret" not in str(err.value)


# --- which chain each setting builds -----------------------------------------------------------


@pytest.fixture(scope="module")
def whisper() -> WhisperModel:
    return load_whisper(threads=1)


@pytest.fixture(scope="module")
def speech_detector() -> vad.VAD:
    return silero.VAD.load()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def _wrapped(engine: stt.STT[Any]) -> stt.STT[Any]:
    return engine.wrapped_stt if isinstance(engine, stt.StreamAdapter) else engine


async def test_local_stt_is_whisper_cut_by_the_vad(
    whisper: WhisperModel, speech_detector: vad.VAD
) -> None:
    built = build_stt(WorkerSettings(), whisper, speech_detector)
    assert isinstance(built, SpeculativeStreamAdapter) and isinstance(built.wrapped_stt, WhisperSTT)
    await built.aclose()


@pytest.mark.parametrize(
    ("provider", "cloud_type", "streams"),
    [("deepgram", deepgram.STT, True), ("openai", openai.STT, False)],
)
async def test_cloud_stt_falls_back_to_whisper(
    whisper: WhisperModel,
    speech_detector: vad.VAD,
    http: aiohttp.ClientSession,
    provider: str,
    cloud_type: type[stt.STT[Any]],
    streams: bool,
) -> None:
    settings = WorkerSettings(stt_provider=provider, **KEYS)
    built = build_stt(settings, whisper, speech_detector, http_session=http)
    assert isinstance(built, stt.FallbackAdapter)
    chain = built._stt_instances
    assert [type(_wrapped(e)) for e in chain] == [cloud_type, WhisperSTT]
    # the non-streaming engines get the VAD to cut utterances; Deepgram streams itself
    assert isinstance(chain[0], stt.StreamAdapter) is not streams
    assert isinstance(chain[1], stt.StreamAdapter)
    await built.aclose()


async def test_local_llm_is_the_offline_responder_alone() -> None:
    built = build_llm(WorkerSettings())
    assert type(built) is OfflineResponder
    await built.aclose()


async def test_openai_llm_falls_back_to_the_apologetic_responder() -> None:
    settings = WorkerSettings(
        llm_provider="openai", openai_base_url="http://127.0.0.1:9/v1", **KEYS
    )
    built = build_llm(settings)
    assert isinstance(built, llm.FallbackAdapter)
    first, last = built._llm_instances
    assert isinstance(first, openai.LLM) and first.model == "gpt-4o-mini"
    assert isinstance(last, ApologeticResponder)
    await built.aclose()


async def test_local_tts_is_piper_then_espeak() -> None:
    built = build_tts(WorkerSettings(), LOCAL_TTS)
    expected: list[type[tts.TTS[Any]]] = [PiperTTS, EspeakTTS] if ESPEAK else [PiperTTS]
    engines = built._tts_instances if isinstance(built, tts.FallbackAdapter) else [built]
    assert [type(e) for e in engines] == expected
    await built.aclose()


@pytest.mark.parametrize(
    ("provider", "cloud_type"), [("elevenlabs", elevenlabs.TTS), ("openai", openai.TTS)]
)
async def test_cloud_tts_comes_before_the_local_voices(
    http: aiohttp.ClientSession, provider: str, cloud_type: type[tts.TTS[Any]]
) -> None:
    built = build_tts(WorkerSettings(tts_provider=provider, **KEYS), LOCAL_TTS, http_session=http)
    assert isinstance(built, tts.FallbackAdapter)
    local: list[type[tts.TTS[Any]]] = [PiperTTS, EspeakTTS] if ESPEAK else [PiperTTS]
    assert [type(e) for e in built._tts_instances] == [cloud_type, *local]
    await built.aclose()


# --- the chains at work, against the protocol fakes --------------------------------------------


class _Deck(Agent):
    """A presenter with one navigation tool, enough for both the model and the responder."""

    def __init__(self) -> None:
        super().__init__(instructions="You present a slide deck.")
        self.slide = 1

    @function_tool
    async def next_slide(self, context: RunContext[None]) -> str:
        """Advance the deck by one slide."""
        self.slide += 1
        return f"Now on slide {self.slide} of 8: The problem."


@pytest.fixture
async def oai() -> AsyncIterator[OpenAIFake]:
    async with OpenAIFake() as fake:
        yield fake


def _cloud_llm(fake: OpenAIFake) -> WorkerSettings:
    return WorkerSettings(
        llm_provider="openai", openai_api_key=fake.api_key, openai_base_url=f"{fake.url}/v1"
    )


async def _turn(session: AgentSession[None], text: str) -> tuple[list[str], str]:
    result: RunResult[None] = await session.run(user_input=text)
    calls = [e.item.name for e in result.events if e.item.type == "function_call"]
    reply = result.events[-1].item
    assert reply.type == "message", result.events
    return calls, reply.text_content or ""


async def test_the_model_answers_through_the_chain_when_it_is_up(oai: OpenAIFake) -> None:
    oai.llm.push_reply(tool_calls=[("next_slide", {})])
    oai.llm.push_reply(text="Here is slide two: the problem.")
    deck = _Deck()
    model = build_llm(_cloud_llm(oai))
    async with AgentSession[None](llm=model) as session:
        await session.start(deck)
        calls, reply = await _turn(session, "next slide")
    await model.aclose()
    assert (calls, reply, deck.slide) == (["next_slide"], "Here is slide two: the problem.", 2)
    assert oai.chat_requests[0]["model"] == "gpt-4o-mini"
    assert oai.chat_requests[1]["messages"][-1]["role"] == "tool"


async def test_when_the_model_fails_the_responder_apologises_and_answers(
    oai: OpenAIFake,
) -> None:
    oai.fail_next(status=500, times=100)
    deck = _Deck()
    model = build_llm(_cloud_llm(oai))
    async with AgentSession[None](llm=model) as session:
        await session.start(deck)
        calls, reply = await _turn(session, "Next slide, please.")
    await model.aclose()
    assert calls == ["next_slide"] and deck.slide == 2  # the responder still navigates
    assert reply == f"{APOLOGY} Now on slide 2 of 8: The problem."
    assert oai.chat_requests  # the model was tried first


async def test_a_wrong_key_falls_back_too(oai: OpenAIFake) -> None:
    settings = WorkerSettings(
        llm_provider="openai", openai_api_key="sk-wrong", openai_base_url=f"{oai.url}/v1"
    )
    model = build_llm(settings)
    async with AgentSession[None](llm=model) as session:
        await session.start(_Deck())
        _, reply = await _turn(session, "Who won the world cup?")
    await model.aclose()
    # no deck search tool here: the responder says so rather than making something up
    assert reply == f"{APOLOGY} The deck doesn't cover that."


@pytest.mark.skipif(ESPEAK is None, reason="espeak-ng is not installed")
async def test_when_elevenlabs_fails_the_local_voice_still_speaks(
    http: aiohttp.ClientSession,
) -> None:
    async with ElevenLabsFake() as fake:
        fake.fail_next(status=500, times=100)
        config = JobConfig("http://127.0.0.1:9", 1, piper_url=None, espeak_binary=ESPEAK)
        settings = WorkerSettings(
            tts_provider="elevenlabs",
            elevenlabs_api_key=fake.api_key,
            elevenlabs_base_url=fake.base_url,
        )
        chain = build_tts(settings, config, http_session=http)
        frames = [ev.frame async for ev in chain.synthesize("Still talking.")]
        await chain.aclose()
    pcm = np.concatenate([np.frombuffer(f.data, dtype=np.int16) for f in frames])
    assert np.abs(pcm).max() > 2000  # audible, from espeak-ng
    assert fake.requests  # ElevenLabs was tried first


async def test_elevenlabs_speaks_first_when_it_is_up(http: aiohttp.ClientSession) -> None:
    async with ElevenLabsFake() as fake:
        settings = WorkerSettings(
            tts_provider="elevenlabs",
            elevenlabs_api_key=fake.api_key,
            elevenlabs_base_url=fake.base_url,
        )
        chain = build_tts(settings, LOCAL_TTS, http_session=http)
        frames = [ev.frame async for ev in chain.synthesize("Hello there.")]
        await chain.aclose()
    assert frames and fake.spoken == ["Hello there."]


def _spoken(text: str) -> list[rtc.AudioFrame]:
    """``text`` spoken by espeak-ng, then a second of silence, as 10 ms frames."""
    wav = subprocess.run(["espeak-ng", "--stdout", text], check=True, capture_output=True).stdout
    with wave.open(BytesIO(wav)) as reader:
        rate = reader.getframerate()
        pcm = np.frombuffer(reader.readframes(reader.getnframes()), dtype=np.int16)
    pcm = np.concatenate([pcm, np.zeros(rate, dtype=np.int16)])
    step = rate // 100
    return [
        rtc.AudioFrame(pcm[i : i + step].tobytes(), rate, 1, step)
        for i in range(0, len(pcm) - step + 1, step)
    ]


@pytest.mark.skipif(ESPEAK is None, reason="espeak-ng is not installed")
async def test_when_deepgram_refuses_whisper_still_hears_the_user(
    whisper: WhisperModel, speech_detector: vad.VAD, http: aiohttp.ClientSession
) -> None:
    async with DeepgramFake() as fake:
        settings = WorkerSettings(
            stt_provider="deepgram",
            deepgram_api_key="revoked",  # a 401: not retried, the chain moves on at once
            deepgram_base_url=fake.listen_url,
        )
        chain = build_stt(settings, whisper, speech_detector, http_session=http)
        refused = asyncio.Event()
        chain.on("stt_availability_changed", lambda _event: refused.set())
        stream = chain.stream()
        # the session's stream opens before anyone speaks: the refusal comes during this quiet
        # start (audio already handed to the refused stream is not replayed to the next STT)
        for _ in range(50):
            stream.push_frame(rtc.AudioFrame(bytes(440), 22050, 1, 220))
        async with asyncio.timeout(5):
            await refused.wait()
        for frame in _spoken("Next slide, please."):
            stream.push_frame(frame)
            await asyncio.sleep(0)
        finals: list[str] = []
        async with asyncio.timeout(20):
            async for event in stream:
                if event.type == stt.SpeechEventType.FINAL_TRANSCRIPT:
                    finals.append(event.alternatives[0].text)
                    break
        await stream.aclose()
        await chain.aclose()
    assert fake.connections  # Deepgram was tried first
    assert finals and "next slide" in finals[0].lower()
