"""The real OpenAI, Deepgram and ElevenLabs plugins run end to end against the local protocol
fakes in ``tests/fakes``: scripted replies come back through the plugins' own parsing, and
injected faults surface the way the plugins really report them."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator

import aiohttp
import numpy as np
import openai as openai_sdk
import pytest
from livekit import rtc
from livekit.agents import (
    Agent,
    AgentSession,
    APIConnectionError,
    APIConnectOptions,
    APIStatusError,
    RunContext,
    RunResult,
    function_tool,
    llm,
    stt,
)
from livekit.agents.types import USERDATA_TIMED_TRANSCRIPT
from livekit.plugins import deepgram, elevenlabs, openai

from tests.fakes import DeepgramFake, ElevenLabsFake, OpenAIFake
from tests.fakes._audio import tone

# quick retries so fault tests stay fast; the plugins' defaults wait 2 s between attempts
FAST = APIConnectOptions(max_retry=2, retry_interval=0.05, timeout=5.0)


@pytest.fixture
async def oai() -> AsyncIterator[OpenAIFake]:
    async with OpenAIFake() as fake:
        yield fake


@pytest.fixture
async def dg() -> AsyncIterator[DeepgramFake]:
    async with DeepgramFake() as fake:
        yield fake


@pytest.fixture
async def eleven() -> AsyncIterator[ElevenLabsFake]:
    async with ElevenLabsFake() as fake:
        yield fake


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    # Deepgram and ElevenLabs otherwise ask for the job's HTTP context, which tests don't have
    async with aiohttp.ClientSession() as session:
        yield session


def chat_llm(fake: OpenAIFake) -> openai.LLM:
    return openai.LLM(model="gpt-4.1-mini", base_url=f"{fake.url}/v1", api_key=fake.api_key)


def user_says(text: str) -> llm.ChatContext:
    ctx = llm.ChatContext()
    ctx.add_message(role="system", content="You present a slide deck.")
    ctx.add_message(role="user", content=text)
    return ctx


@function_tool
async def next_slide(reason: str) -> str:
    """Advance the deck by one slide."""
    return "now on slide 2"


def speech_frames(seconds: float, rate: int = 16000) -> Iterator[rtc.AudioFrame]:
    """10 ms microphone frames of a voiced tone."""
    pcm = tone(seconds, rate)
    step = rate // 100
    for i in range(0, len(pcm), step):
        part = pcm[i : i + step]
        yield rtc.AudioFrame(part.tobytes(), rate, 1, len(part))


def audible_seconds(frames: list[rtc.AudioFrame], rate: int) -> float:
    """Seconds of audio in ``frames``, after checking they are all at ``rate`` and not silent."""
    assert frames and {f.sample_rate for f in frames} == {rate}
    pcm = np.concatenate([np.frombuffer(f.data, dtype=np.int16) for f in frames])
    assert np.abs(pcm).max() > 2000, "audio is silent"
    return len(pcm) / rate


# --- OpenAI chat completions -------------------------------------------------------------------


async def test_llm_streams_scripted_text_and_tool_call(oai: OpenAIFake) -> None:
    oai.llm.push_reply(
        text="Moving on to pricing.", tool_calls=[("next_slide", {"reason": "asked"})]
    )
    text, calls, usage = "", [], None
    async with (
        chat_llm(oai) as model,
        model.chat(chat_ctx=user_says("next"), tools=[next_slide]) as s,
    ):
        async for chunk in s:
            if chunk.delta:
                text += chunk.delta.content or ""
                calls += chunk.delta.tool_calls
            usage = chunk.usage or usage

    assert text == "Moving on to pricing."
    assert [(c.name, json.loads(c.arguments)) for c in calls] == [
        ("next_slide", {"reason": "asked"})
    ]
    assert usage is not None and usage.total_tokens > 0
    seen = oai.chat_requests[0]
    assert seen["messages"][-1] == {"role": "user", "content": "next"}
    assert [t["function"]["name"] for t in seen["tools"]] == ["next_slide"]
    assert seen["tools"][0]["function"]["parameters"]["required"] == ["reason"]
    assert seen["stream_options"] == {"include_usage": True}


async def test_llm_retries_server_errors_then_answers(oai: OpenAIFake) -> None:
    oai.fail_next(status=500, times=2)
    oai.llm.push_reply(text="Third time lucky.")
    async with chat_llm(oai) as model, model.chat(chat_ctx=user_says("hi"), conn_options=FAST) as s:
        text = "".join([c.delta.content or "" async for c in s if c.delta])
    assert text == "Third time lucky."
    assert len(oai.chat_requests) == 3


async def test_llm_without_retries_raises_the_status(oai: OpenAIFake) -> None:
    oai.fail_next(status=500)
    no_retry = APIConnectOptions(max_retry=0)
    async with chat_llm(oai) as model:
        with pytest.raises(APIStatusError) as err:
            async with model.chat(chat_ctx=user_says("hi"), conn_options=no_retry) as s:
                async for _ in s:
                    pass
    assert err.value.status_code == 500


async def test_fallback_adapter_falls_through_to_the_next_llm(oai: OpenAIFake) -> None:
    async with OpenAIFake() as broken_fake:
        broken_fake.fail_next(status=503, times=2)  # the request, then the recovery probe
        oai.llm.push_reply(text="Answer from the backup.")
        async with chat_llm(broken_fake) as broken, chat_llm(oai) as ok:
            adapter = llm.FallbackAdapter([broken, ok], retry_interval=0.05)
            async with adapter.chat(chat_ctx=user_says("hi")) as s:
                text = "".join([c.delta.content or "" async for c in s if c.delta])
            # the adapter probes the failed LLM in a task it owns but exposes no handle for
            await asyncio.gather(
                *(st.recovering_task for st in adapter._status if st.recovering_task)
            )
            await adapter.aclose()
    assert text == "Answer from the backup."
    assert len(broken_fake.chat_requests) == 2 and len(oai.chat_requests) == 1


async def test_llm_stream_cut_midway_is_a_connection_error_not_a_retry(oai: OpenAIFake) -> None:
    oai.llm.push_reply(text="one two three four five six")
    oai.drop_next_stream(after_chunks=3)  # role chunk + two words
    heard = ""
    async with chat_llm(oai) as model:
        with pytest.raises(APIConnectionError):
            async with model.chat(chat_ctx=user_says("count"), conn_options=FAST) as s:
                async for chunk in s:
                    if chunk.delta and chunk.delta.content:
                        heard += chunk.delta.content
    # text already reached the user, so the plugin must not replay the answer from the top
    assert heard == "one two"
    assert len(oai.chat_requests) == 1


async def test_llm_injected_latency_delays_the_first_token(oai: OpenAIFake) -> None:
    oai.set_latency(ttfb_s=0.25)
    async with chat_llm(oai) as model, model.chat(chat_ctx=user_says("hi")) as s:
        start = time.perf_counter()
        async for chunk in s:
            if chunk.delta and chunk.delta.content:
                break
        assert 0.25 <= time.perf_counter() - start < 1.0


class Presenter(Agent):
    def __init__(self) -> None:
        super().__init__(instructions="You present a slide deck.")
        self.moves: list[str] = []

    @function_tool
    async def next_slide(self, context: RunContext[None], reason: str) -> str:
        """Advance the deck by one slide."""
        self.moves.append(reason)
        return "now on slide 2"


async def test_agent_session_runs_the_tool_the_model_calls(oai: OpenAIFake) -> None:
    oai.llm.push_reply(tool_calls=[("next_slide", {"reason": "asked"})])
    oai.llm.push_reply(text="Here is slide two.")
    presenter = Presenter()
    async with chat_llm(oai) as model, AgentSession(llm=model) as session:
        await session.start(presenter)
        result: RunResult[None] = await session.run(user_input="next slide")

    result.expect.next_event().is_function_call(name="next_slide", arguments={"reason": "asked"})
    result.expect.next_event().is_function_call_output(output="now on slide 2")
    result.expect.next_event().is_message(role="assistant")
    result.expect.no_more_events()
    assert presenter.moves == ["asked"]
    tool_result = oai.chat_requests[1]["messages"][-1]
    assert tool_result["role"] == "tool" and tool_result["content"] == "now on slide 2"


# --- OpenAI audio ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "fmt", "stream_format"),
    [
        ("gpt-4o-mini-tts", "mp3", "sse"),  # the plugin's defaults
        ("gpt-4o-mini-tts", "pcm", "sse"),
        ("tts-1", "wav", "audio"),
        ("tts-1", "opus", "audio"),
    ],
)
async def test_openai_tts_returns_audible_24khz_frames(
    oai: OpenAIFake, model: str, fmt: str, stream_format: str
) -> None:
    text = "Welcome to the quarterly review."
    async with openai.TTS(
        model=model, response_format=fmt, base_url=f"{oai.url}/v1", api_key=oai.api_key
    ) as tts:
        frames = [ev.frame async for ev in tts.synthesize(text)]
    assert audible_seconds(frames, 24000) == pytest.approx(len(text) * 0.03, abs=0.1)
    assert oai.requests[0].body["stream_format"] == stream_format


async def test_openai_stt_uploads_wav_and_returns_the_transcript(oai: OpenAIFake) -> None:
    oai.push_transcript("go back to pricing")
    # openai.STT.aclose() leaves the SDK client it creates open, so the test lends its own
    async with openai_sdk.AsyncClient(base_url=f"{oai.url}/v1", api_key=oai.api_key) as client:
        model = openai.STT(client=client)
        event = await model.recognize(list(speech_frames(0.5)))
        await model.aclose()
    assert event.type == stt.SpeechEventType.FINAL_TRANSCRIPT
    assert event.alternatives[0].text == "go back to pricing"
    form = oai.requests[0].body
    assert form["model"] == "gpt-4o-mini-transcribe" and form["file"][:4] == b"RIFF"


# --- Deepgram live STT -------------------------------------------------------------------------


async def until_end_of_speech(stream: stt.SpeechStream) -> list[stt.SpeechEvent]:
    """The stream's events up to END_OF_SPEECH. Waiting for the stream itself to end would add
    ~5 s: after CloseStream the plugin's keepalive task sleeps out its 5 s interval first."""
    events = []
    async for ev in stream:
        if ev.type != stt.SpeechEventType.RECOGNITION_USAGE:
            events.append(ev)
        if ev.type == stt.SpeechEventType.END_OF_SPEECH:
            break
    return events


async def test_deepgram_streams_interim_then_final(
    dg: DeepgramFake, http: aiohttp.ClientSession
) -> None:
    dg.script("Next slide, please.", after_audio_s=0.3)
    model = deepgram.STT(api_key=dg.api_key, base_url=dg.listen_url, http_session=http)
    stream = model.stream(conn_options=FAST)
    for frame in speech_frames(1.0):
        stream.push_frame(frame)
    stream.end_input()
    events = await until_end_of_speech(stream)
    await stream.aclose()

    kinds = [ev.type for ev in events]
    assert kinds[0] == stt.SpeechEventType.START_OF_SPEECH
    assert kinds[-2:] == [stt.SpeechEventType.FINAL_TRANSCRIPT, stt.SpeechEventType.END_OF_SPEECH]
    assert stt.SpeechEventType.INTERIM_TRANSCRIPT in kinds
    final = events[-2].alternatives[0]
    assert final.text == "Next slide, please."
    assert final.words and [str(w) for w in final.words] == ["Next", "slide,", "please."]
    conn = dg.connections[0]
    assert conn.query["encoding"] == "linear16" and conn.query["sample_rate"] == "16000"
    assert conn.headers["Authorization"] == f"Token {dg.api_key}"


async def test_deepgram_reconnects_after_a_drop_and_still_transcribes(
    dg: DeepgramFake, http: aiohttp.ClientSession
) -> None:
    dg.drop_next_stream(after_chunks=4)  # the plugin sends 50 ms chunks: dropped at 0.2 s
    dg.script("go to the summary", after_audio_s=0.3)
    model = deepgram.STT(api_key=dg.api_key, base_url=dg.listen_url, http_session=http)
    stream = model.stream(conn_options=FAST)

    async def speak() -> None:  # paced, so audio is still coming while the plugin reconnects
        for frame in speech_frames(2.0):
            stream.push_frame(frame)
            await asyncio.sleep(0.002)
        stream.end_input()

    _, events = await asyncio.gather(speak(), until_end_of_speech(stream))
    await stream.aclose()
    finals = [
        e.alternatives[0].text for e in events if e.type == stt.SpeechEventType.FINAL_TRANSCRIPT
    ]
    assert finals == ["go to the summary"]
    assert len(dg.connections) == 2


async def test_deepgram_say_speaks_on_the_open_connection(
    dg: DeepgramFake, http: aiohttp.ClientSession
) -> None:
    model = deepgram.STT(api_key=dg.api_key, base_url=dg.listen_url, http_session=http)
    stream = model.stream(conn_options=FAST)
    for frame in speech_frames(0.2):
        stream.push_frame(frame)
    async with asyncio.timeout(5):
        await dg.wait_connected()
    dg.say("pause the presentation")
    for frame in speech_frames(0.2):
        stream.push_frame(frame)
    events = await until_end_of_speech(stream)
    await stream.aclose()
    finals = [e for e in events if e.type == stt.SpeechEventType.FINAL_TRANSCRIPT]
    assert [e.alternatives[0].text for e in finals] == ["pause the presentation"]


async def test_deepgram_recognize_posts_wav_and_returns_the_transcript(
    dg: DeepgramFake, http: aiohttp.ClientSession
) -> None:
    dg.script("resume the deck")
    model = deepgram.STT(api_key=dg.api_key, base_url=dg.listen_url, http_session=http)
    event = await model.recognize(list(speech_frames(0.5)), conn_options=FAST)
    assert event.alternatives[0].text == "resume the deck"
    sent = dg.requests[0]
    assert sent.method == "POST" and sent.headers["Content-Type"] == "audio/wav"
    assert sent.body[:4] == b"RIFF"


async def test_deepgram_wrong_key_is_a_401_not_retried(
    dg: DeepgramFake, http: aiohttp.ClientSession
) -> None:
    model = deepgram.STT(api_key="wrong", base_url=dg.listen_url, http_session=http)
    stream = model.stream(conn_options=FAST)
    stream.push_frame(next(speech_frames(0.1)))
    with pytest.raises(APIStatusError) as err:
        async for _ in stream:
            pass
    await stream.aclose()
    assert err.value.status_code == 401
    assert len(dg.connections) == 1


# --- ElevenLabs TTS ----------------------------------------------------------------------------


def eleven_tts(
    fake: ElevenLabsFake, http: aiohttp.ClientSession, encoding: elevenlabs.TTSEncoding
) -> elevenlabs.TTS:
    return elevenlabs.TTS(
        api_key=fake.api_key, base_url=fake.base_url, encoding=encoding, http_session=http
    )


@pytest.mark.parametrize(("encoding", "rate"), [("pcm_24000", 24000), ("mp3_22050_32", 22050)])
async def test_elevenlabs_stream_yields_aligned_audio_and_completes(
    eleven: ElevenLabsFake, http: aiohttp.ClientSession, encoding: elevenlabs.TTSEncoding, rate: int
) -> None:
    text = "Welcome to the deck. This slide covers pricing."
    tts = eleven_tts(eleven, http, encoding)
    stream = tts.stream(conn_options=FAST)
    stream.push_text(text)
    stream.end_input()
    events = [ev async for ev in stream]
    await stream.aclose()
    await tts.aclose()

    assert audible_seconds([ev.frame for ev in events], rate) >= 0.9  # 0.02 s a character
    assert events[-1].is_final
    words = [w for ev in events for w in ev.frame.userdata.get(USERDATA_TIMED_TRANSCRIPT, [])]
    assert "".join(words).split() == text.split()
    assert eleven.spoken == ["Welcome to the deck.", "This slide covers pricing."]
    sock = eleven.sockets[0]
    assert sock.query["output_format"] == encoding and sock.query["sync_alignment"] == "true"
    assert sock.messages[0]["text"] == " " and sock.messages[-1]["close_context"] is True


async def test_elevenlabs_synthesize_uses_the_http_stream(
    eleven: ElevenLabsFake, http: aiohttp.ClientSession
) -> None:
    tts = eleven_tts(eleven, http, "pcm_22050")
    frames = [ev.frame async for ev in tts.synthesize("Hello there.", conn_options=FAST)]
    await tts.aclose()
    assert audible_seconds(frames, 22050) >= 0.2
    assert eleven.requests[0].path.endswith("/stream")
    assert eleven.requests[0].body["text"] == "Hello there."


async def test_elevenlabs_drop_before_audio_is_retried_on_a_new_socket(
    eleven: ElevenLabsFake, http: aiohttp.ClientSession
) -> None:
    eleven.drop_next_stream(after_chunks=0)
    tts = eleven_tts(eleven, http, "pcm_24000")
    stream = tts.stream(conn_options=FAST)
    stream.push_text("Still here.")
    stream.end_input()
    frames = [ev.frame async for ev in stream]
    await stream.aclose()
    await tts.aclose()
    assert audible_seconds(frames, 24000) > 0.1
    assert len(eleven.sockets) == 2


async def test_elevenlabs_drop_after_audio_fails_without_replaying(
    eleven: ElevenLabsFake, http: aiohttp.ClientSession
) -> None:
    eleven.seconds_per_char = 0.1  # long enough to need several chunks
    eleven.drop_next_stream(after_chunks=2)
    tts = eleven_tts(eleven, http, "pcm_24000")
    stream = tts.stream(conn_options=FAST)
    stream.push_text("This sentence is cut off halfway through.")
    stream.end_input()
    heard: list[rtc.AudioFrame] = []
    with pytest.raises(APIStatusError) as err:
        async for ev in stream:
            heard.append(ev.frame)
    await stream.aclose()
    await tts.aclose()
    assert err.value.status_code == 1011
    assert heard and len(eleven.sockets) == 1
