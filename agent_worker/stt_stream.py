"""Whisper behind the VAD, with the end-of-turn silence put to work.

The framework's ``StreamAdapter`` transcribes an utterance once the VAD has heard enough silence
to end it (350 ms by default), so Whisper's time comes on top of that wait. Here, as soon as the
user has been silent for ``SPECULATE_AFTER_SECONDS``, the utterance so far is transcribed in the
background; if the silence lasts until the VAD ends the utterance, that transcript is the
final one, already done or nearly so. If the user speaks again first, the guess is dropped and
the utterance goes on. The cost is a transcription per pause longer than the threshold.

A guess that is done while the silence still holds is also sent at once as a preflight
transcript: the framework starts its preemptive generation on it (the model's first step, the
deck search it asks for, the answer's first sentence rehearsed: see ``rehearsal.py``) while the
VAD is still waiting out the silence, and adopts that generation when the final transcript says
the same. A guess overtaken by more speech costs that generation too; the framework bounds them
(three a turn) and cancels a stale one when the next transcript differs.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from livekit import rtc
from livekit.agents import APIConnectOptions, stt, utils
from livekit.agents.stt.stream_adapter import StreamAdapterWrapper
from livekit.agents.types import DEFAULT_API_CONNECT_OPTIONS, NOT_GIVEN, NotGivenOr
from livekit.agents.vad import VAD, VADEventType

SPECULATE_AFTER_SECONDS = 0.1


class SpeculativeStreamAdapter(stt.StreamAdapter):
    def __init__(self, *, stt: stt.STT[Any], vad: VAD, preflight: bool = True) -> None:
        """``preflight``: send a guess that is done before the silence ends the utterance."""
        super().__init__(stt=stt, vad=vad)
        self._send_preflight = preflight

    def stream(
        self,
        *,
        language: NotGivenOr[str] = NOT_GIVEN,
        conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS,
    ) -> stt.RecognizeStream:
        return _SpeculativeStream(
            self,
            preflight=self._send_preflight,
            vad=self._vad,
            wrapped_stt=self._stt,
            language=language,
            conn_options=conn_options,
        )


class _SpeculativeStream(StreamAdapterWrapper):
    def __init__(self, *args: Any, preflight: bool, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._send_preflight = preflight

    async def _run(self) -> None:
        vad_stream = self._vad.stream()

        async def forward_input() -> None:
            async for frame in self._input_ch:
                if isinstance(frame, self._FlushSentinel):
                    vad_stream.flush()
                else:
                    vad_stream.push_frame(frame)
            vad_stream.end_input()

        async def recognize() -> None:
            utterance: list[rtc.AudioFrame] = []
            guess: asyncio.Task[stt.SpeechEvent] | None = None
            async for event in vad_stream:
                if event.type == VADEventType.START_OF_SPEECH:
                    await _drop(guess)
                    # the speech so far, with the VAD's lead-in
                    guess, utterance = None, list(event.frames)
                    self._event_ch.send_nowait(stt.SpeechEvent(stt.SpeechEventType.START_OF_SPEECH))
                elif event.type == VADEventType.INFERENCE_DONE:
                    if not event.speaking:
                        continue  # between utterances
                    utterance.extend(event.frames)
                    if event.raw_accumulated_silence == 0.0:
                        await _drop(guess)  # talking again: that guess is stale
                        guess = None
                    elif guess is None and event.raw_accumulated_silence >= SPECULATE_AFTER_SECONDS:
                        guess = asyncio.create_task(self._transcribe(list(utterance)))
                        if self._send_preflight:
                            guess.add_done_callback(self._preflight)
                elif event.type == VADEventType.END_OF_SPEECH:
                    speech_end_time = (
                        time.time() - event.silence_duration - event.inference_duration
                    )
                    self._event_ch.send_nowait(
                        stt.SpeechEvent(
                            type=stt.SpeechEventType.END_OF_SPEECH,
                            speech_end_time=speech_end_time,
                        )
                    )
                    transcript = await self._finish(guess, list(event.frames))
                    guess, utterance = None, []
                    if transcript.alternatives and transcript.alternatives[0].text:
                        self._event_ch.send_nowait(
                            stt.SpeechEvent(
                                type=stt.SpeechEventType.FINAL_TRANSCRIPT,
                                alternatives=[transcript.alternatives[0]],
                                speech_end_time=transcript.speech_end_time or speech_end_time,
                            )
                        )

        tasks = [
            asyncio.create_task(forward_input(), name="forward_input"),
            asyncio.create_task(recognize(), name="recognize"),
        ]
        try:
            await asyncio.gather(*tasks)
        finally:
            await utils.aio.cancel_and_wait(*tasks)
            await vad_stream.aclose()

    def _preflight(self, guess: asyncio.Task[stt.SpeechEvent]) -> None:
        """A guess done before the speech resumed: the transcript to prepare a reply for."""
        if guess.cancelled() or guess.exception() is not None or self._event_ch.closed:
            return
        alternatives = guess.result().alternatives
        if alternatives and alternatives[0].text:
            self._event_ch.send_nowait(
                stt.SpeechEvent(
                    type=stt.SpeechEventType.PREFLIGHT_TRANSCRIPT, alternatives=[alternatives[0]]
                )
            )

    async def _finish(
        self, guess: asyncio.Task[stt.SpeechEvent] | None, frames: list[rtc.AudioFrame]
    ) -> stt.SpeechEvent:
        """The guess when it succeeded, else a transcription of the whole utterance."""
        if guess is not None:
            with contextlib.suppress(Exception):  # a failed guess: transcribe as usual
                return await guess
        return await self._transcribe(frames)

    async def _transcribe(self, frames: list[rtc.AudioFrame]) -> stt.SpeechEvent:
        return await self._wrapped_stt.recognize(
            buffer=utils.merge_frames(frames),
            language=self._language,
            conn_options=self._wrapped_stt_conn_options,
        )


async def _drop(guess: asyncio.Task[stt.SpeechEvent] | None) -> None:
    if guess is not None:
        guess.cancel()
        await asyncio.gather(guess, return_exceptions=True)
