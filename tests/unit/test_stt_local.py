"""Offline Whisper in a window fitted to the utterance: the same words as Whisper's own 30 s
window on our test phrases, and long utterances still transcribed whole."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pytest
from faster_whisper import WhisperModel  # type: ignore[import-untyped]

from agent_worker.stt_local import (
    CUT_BLOCK,
    MAX_PIECE,
    SAMPLE_RATE,
    load_whisper,
    split_at_pauses,
    transcribe_utterance,
)
from tests.e2e.speech import espeak

PHRASES = [
    "How much does it cost?",
    "Go back to the pricing slide.",
    "Please connect me with someone from sales.",
    "How long does setup take?",
    "I want to speak to a real person.",
    "Could you tell me more about the security features and compliance certifications?",
]

LATER = [
    "Can I get an invoice for the annual plan?",
    "Which slide shows the roadmap for next year?",
    "Thank you, that is all I wanted to know.",
]


@pytest.fixture(scope="module")
def whisper() -> WhisperModel:
    return load_whisper(threads=1)


def _audio(text: str) -> np.ndarray[Any, np.dtype[np.float32]]:
    samples, rate = espeak(text)
    x = samples.astype(np.float32) / 32768
    positions = np.linspace(0, len(x) - 1, int(len(x) * SAMPLE_RATE / rate))
    return np.interp(positions, np.arange(len(x)), x).astype(np.float32)


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z']+", text.lower())


@pytest.mark.parametrize("phrase", PHRASES)
def test_a_short_utterance_is_transcribed_in_a_short_window(
    whisper: WhisperModel, phrase: str
) -> None:
    assert _words(transcribe_utterance(whisper, _audio(phrase))) == _words(phrase)


def test_an_utterance_longer_than_a_window_is_transcribed_whole(whisper: WhisperModel) -> None:
    said = [*PHRASES, *LATER]
    pause = np.zeros(SAMPLE_RATE, dtype=np.float32)
    audio = np.concatenate([np.concatenate([_audio(p), pause]) for p in said])
    assert len(audio) > 30 * SAMPLE_RATE
    heard = _words(transcribe_utterance(whisper, audio))
    spoken = _words(" ".join(said))
    # every phrase, the ones past the first 30 s too, and no runaway repetition
    for word in ("cost", "pricing", "sales", "setup", "person", "compliance", "invoice", "slide"):
        assert word in heard, (word, heard)
    assert heard[-3:] == spoken[-3:]
    assert len(heard) <= len(spoken) + 5


def test_a_long_utterance_is_cut_in_its_pauses() -> None:
    said = _audio("How long does setup take? ")
    pause = np.zeros(SAMPLE_RATE // 2, dtype=np.float32)
    audio = np.concatenate([np.concatenate([said, pause]) for _ in range(40)])
    pieces = split_at_pauses(audio)
    assert len(pieces) >= 2
    assert sum(len(p) for p in pieces) == len(audio)
    for piece in pieces[:-1]:
        assert len(piece) <= MAX_PIECE
        assert np.abs(piece[-CUT_BLOCK // 2 :]).max() == 0  # ends inside a pause
