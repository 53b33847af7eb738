"""Whisper behind the VAD transcribes during the end-of-turn silence: with the real Silero VAD
and spoken audio, and an STT (a framework subclass) that says how much audio it was given."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import numpy as np
import pytest
from livekit import rtc
from livekit.agents import APIConnectOptions, stt, utils
from livekit.agents.language import LanguageCode
from livekit.agents.types import NOT_GIVEN, NotGivenOr
from livekit.plugins import silero

from agent_worker.stt_stream import SpeculativeStreamAdapter
from tests.e2e.speech import espeak

RATE = 16_000


class MeasuringSTT(stt.STT[Any]):
    """Answers each utterance with its length in seconds, after ``delay_s``, and keeps a log."""

    def __init__(self, delay_s: float) -> None:
        super().__init__(capabilities=stt.STTCapabilities(streaming=False, interim_results=False))
        self.delay_s = delay_s
        self.calls: list[float] = []

    async def _recognize_impl(
        self,
        buffer: utils.AudioBuffer,
        *,
        language: NotGivenOr[str] = NOT_GIVEN,
        conn_options: APIConnectOptions,
    ) -> stt.SpeechEvent:
        frame = utils.merge_frames(buffer)
        seconds = frame.samples_per_channel / frame.sample_rate
        self.calls.append(seconds)
        await asyncio.sleep(self.delay_s)
        return stt.SpeechEvent(
            type=stt.SpeechEventType.FINAL_TRANSCRIPT,
            alternatives=[stt.SpeechData(language=LanguageCode("en"), text=f"{seconds:.2f}")],
        )


@pytest.fixture(scope="module")
def vad() -> silero.VAD:
    return silero.VAD.load(min_silence_duration=0.35)


def _speech(text: str) -> np.ndarray[Any, np.dtype[np.int16]]:
    """``text`` at 16 kHz, without espeak's own leading and trailing silence."""
    samples, rate = espeak(text)
    positions = np.linspace(0, len(samples) - 1, int(len(samples) * RATE / rate))
    audio = np.interp(positions, np.arange(len(samples)), samples).astype(np.int16)
    loud = np.flatnonzero(np.abs(audio.astype(np.int32)) >= 300)
    return audio[loud[0] : loud[-1] + 1]


def _silence(seconds: float) -> np.ndarray[Any, np.dtype[np.int16]]:
    return np.zeros(int(RATE * seconds), dtype=np.int16)


async def _run(
    vad: silero.VAD, audio: np.ndarray[Any, Any], delay_s: float, *, preflight: bool = True
) -> tuple[MeasuringSTT, list[tuple[float, stt.SpeechEvent]]]:
    """Push ``audio`` in real time; the events with when they arrived."""
    recorder = MeasuringSTT(delay_s)
    stream = SpeculativeStreamAdapter(stt=recorder, vad=vad, preflight=preflight).stream()
    events: list[tuple[float, stt.SpeechEvent]] = []

    async def read() -> None:
        async for event in stream:
            events.append((time.perf_counter(), event))

    reader = asyncio.create_task(read())
    step = RATE // 100
    for start in range(0, len(audio) - step + 1, step):
        chunk = audio[start : start + step]
        stream.push_frame(rtc.AudioFrame(chunk.tobytes(), RATE, 1, step))
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.5 + delay_s)
    stream.end_input()
    await asyncio.wait_for(reader, 10)
    await stream.aclose()
    return recorder, events


PREFLIGHT = stt.SpeechEventType.PREFLIGHT_TRANSCRIPT


def _types(events: list[tuple[float, stt.SpeechEvent]]) -> list[stt.SpeechEventType]:
    return [event.type for _, event in events if event.type != PREFLIGHT]


def _preflights(events: list[tuple[float, stt.SpeechEvent]]) -> list[tuple[float, str]]:
    return [(at, event.alternatives[0].text) for at, event in events if event.type == PREFLIGHT]


async def test_the_transcript_is_ready_when_the_silence_ends_the_utterance(
    vad: silero.VAD,
) -> None:
    speech = _speech("How much does it cost?")
    recorder, events = await _run(vad, np.concatenate([speech, _silence(1.0)]), delay_s=0.25)
    assert _types(events) == [
        stt.SpeechEventType.START_OF_SPEECH,
        stt.SpeechEventType.END_OF_SPEECH,
        stt.SpeechEventType.FINAL_TRANSCRIPT,
    ]
    assert len(recorder.calls) == 1  # the guess was the transcript: no second transcription
    heard = float(events[-1][1].alternatives[0].text)
    assert len(speech) / RATE <= heard < len(speech) / RATE + 0.5
    # Transcribed while the VAD was still waiting out its 350 ms: the final came well before
    # end-of-speech + the STT's 250 ms.
    ended_at = next(at for at, e in events if e.type == stt.SpeechEventType.END_OF_SPEECH)
    final_at = next(at for at, e in events if e.type == stt.SpeechEventType.FINAL_TRANSCRIPT)
    assert final_at - ended_at < 0.2


async def test_a_guess_done_within_the_silence_is_sent_first_as_a_preflight(
    vad: silero.VAD,
) -> None:
    speech = _speech("How much does it cost?")
    audio = np.concatenate([speech, _silence(1.0)])
    _, events = await _run(vad, audio, delay_s=0.05)
    [(preflight_at, guessed)] = _preflights(events)
    ended_at = next(at for at, e in events if e.type == stt.SpeechEventType.END_OF_SPEECH)
    final = next(e for _, e in events if e.type == stt.SpeechEventType.FINAL_TRANSCRIPT)
    # The reply can be prepared before the VAD has waited out its silence, on the very words
    # the final transcript then carries (the framework adopts a preemptive reply only then).
    assert preflight_at < ended_at
    assert guessed == final.alternatives[0].text
    _, quiet = await _run(vad, audio, delay_s=0.05, preflight=False)
    assert not _preflights(quiet)


async def test_a_pause_then_more_words_drops_the_guess_and_keeps_the_whole_utterance(
    vad: silero.VAD,
) -> None:
    first, second = _speech("How much"), _speech("does it cost?")
    audio = np.concatenate([first, _silence(0.25), second, _silence(1.0)])
    recorder, events = await _run(vad, audio, delay_s=0.05)
    finals = [e for _, e in events if e.type == stt.SpeechEventType.FINAL_TRANSCRIPT]
    assert len(finals) == 1
    assert len(recorder.calls) >= 2  # the guess made in the pause, then the one that counted
    heard = float(finals[0].alternatives[0].text)
    assert heard >= (len(first) + len(second)) / RATE  # both parts, not the guess's half
    # The guess made in the pause went out as a preflight; the final says more, so the
    # framework drops the reply prepared on it.
    guesses = [float(text) for _, text in _preflights(events)]
    assert guesses and min(guesses) < heard
