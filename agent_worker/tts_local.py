"""Offline text-to-speech: Piper (over HTTP, in a child process) and espeak-ng (a subprocess).

Piper is GPL-3.0, so it never runs in our process: ``piper_process`` starts Piper's own HTTP
server and these classes only speak to it. Both engines answer with a 22050 Hz mono 16-bit WAV.
Failures are raised as the framework's ``APIError`` types so a ``tts.FallbackAdapter`` can move
on to the next engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import time
import wave
from collections import OrderedDict
from typing import Never

import httpx
import numpy as np
from livekit.agents import (
    DEFAULT_API_CONNECT_OPTIONS,
    APIConnectionError,
    APIConnectOptions,
    APIError,
    APIStatusError,
    APITimeoutError,
    tts,
    utils,
)

from .tls import tls_context

SAMPLE_RATE = 22050
NUM_CHANNELS = 1
_SAMPLE_WIDTH = 2  # bytes, int16
_ESPEAK_VOICE = "en-us"


def pcm_from_wav(data: bytes) -> bytes:
    """Return the int16 PCM inside a WAV, checking it has the format the TTS declares.

    espeak-ng writes its WAV to a pipe and cannot seek back to fill in the sizes, so the
    header claims ~2 GB; reading "all frames" returns just what is actually there.
    """
    try:
        with wave.open(io.BytesIO(data)) as wav:
            fmt = (wav.getframerate(), wav.getnchannels(), wav.getsampwidth())
            pcm: bytes = wav.readframes(wav.getnframes())
    except (wave.Error, EOFError) as exc:
        raise APIError("TTS engine returned an unreadable WAV", retryable=False) from exc
    if fmt != (SAMPLE_RATE, NUM_CHANNELS, _SAMPLE_WIDTH):
        raise APIError(f"TTS engine returned {fmt}, expected 22050 Hz mono int16", retryable=False)
    return pcm[: len(pcm) - len(pcm) % _SAMPLE_WIDTH]


SILENCE_LEVEL = 50
"""|int16| below which a sample is silence (-56 dBFS): Piper opens every sentence with 25-65 ms
of digital near-silence, which a listener hears as latency."""
ONSET_PAD_S = 0.005


def trim_leading_silence(pcm: bytes, sample_rate: int = SAMPLE_RATE) -> bytes:
    """``pcm`` (mono int16) from 5 ms before its first sound; unchanged if it has none."""
    samples = np.frombuffer(pcm, dtype=np.int16)
    loud = np.flatnonzero(np.abs(samples.astype(np.int32)) >= SILENCE_LEVEL)
    if loud.size == 0:
        return pcm
    start = max(0, int(loud[0]) - round(ONSET_PAD_S * sample_rate))
    return pcm[start * _SAMPLE_WIDTH :]


def _emit_pcm(output_emitter: tts.AudioEmitter, pcm: bytes) -> None:
    output_emitter.initialize(
        request_id=utils.shortuuid(),
        sample_rate=SAMPLE_RATE,
        num_channels=NUM_CHANNELS,
        mime_type="audio/pcm",
    )
    output_emitter.push(trim_leading_silence(pcm))
    output_emitter.flush()


REHEARSALS_KEPT = 4
"""Rehearsed sentences kept for a request still to come; the oldest is dropped past this."""
REHEARSAL_FRESH_S = 30.0
"""A rehearsal older than this is not used (the turn it was for is long gone)."""


def _spoken_key(text: str) -> str:
    return " ".join(text.split())


class PiperTTS(tts.TTS[Never]):
    """Piper voice served by ``python -m piper.http_server`` (``POST /synthesize``).

    A sentence can be *rehearsed*: synthesized before anyone asks for it (see
    ``rehearsal.py``), so the request that comes for it is answered from what is ready or
    nearly ready. A rehearsal nobody asks for costs Piper's time and nothing else."""

    def __init__(self, *, base_url: str) -> None:
        super().__init__(
            capabilities=tts.TTSCapabilities(streaming=False),
            sample_rate=SAMPLE_RATE,
            num_channels=NUM_CHANNELS,
        )
        self._client = httpx.AsyncClient(base_url=base_url, verify=tls_context())
        self._rehearsed: OrderedDict[str, tuple[float, asyncio.Task[bytes]]] = OrderedDict()
        self.rehearsals = 0  # sentences rehearsed
        self.rehearsals_used = 0  # requests answered from a rehearsal

    def rehearse(self, text: str) -> None:
        """Start synthesizing ``text``, likely to be asked for soon; the request for the same
        words (whitespace aside) then waits for this one instead of starting its own."""
        key = _spoken_key(text)
        if not key:
            return
        kept = self._rehearsed.get(key)
        if kept is not None and _usable(kept):
            self._rehearsed.move_to_end(key)
            return
        task = asyncio.create_task(self._pcm(text, DEFAULT_API_CONNECT_OPTIONS.timeout))
        task.add_done_callback(_retrieve)
        self._rehearsed[key] = (time.monotonic(), task)
        self.rehearsals += 1
        while len(self._rehearsed) > REHEARSALS_KEPT:
            _, (_, oldest) = self._rehearsed.popitem(last=False)
            oldest.cancel()

    async def _spoken(self, text: str, seconds: float) -> bytes:
        """``text``'s PCM: a rehearsal of it if there is a usable one, else a new request."""
        kept = self._rehearsed.pop(_spoken_key(text), None)
        if kept is not None and _usable(kept):
            try:
                pcm = await kept[1]  # a barge-in cancelling the stream cancels it too
            except APIError:
                pass  # asked again below, and its error is the request's
            else:
                self.rehearsals_used += 1
                return pcm
        return await self._pcm(text, seconds)

    async def _pcm(self, text: str, seconds: float) -> bytes:
        try:
            response = await self._client.post("/synthesize", json={"text": text}, timeout=seconds)
        except httpx.TimeoutException as exc:
            raise APITimeoutError("piper did not answer in time") from exc
        except httpx.TransportError as exc:
            raise APIConnectionError("piper is unreachable") from exc
        if response.status_code != httpx.codes.OK:
            raise APIStatusError("piper failed to synthesize", status_code=response.status_code)
        return pcm_from_wav(response.content)

    @property
    def provider(self) -> str:
        return "piper"

    @property
    def model(self) -> str:
        return "en_US-joe-medium"

    def synthesize(
        self, text: str, *, conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS
    ) -> tts.ChunkedStream:
        return _PiperStream(tts=self, input_text=text, conn_options=conn_options)

    async def aclose(self) -> None:
        tasks = [task for _, task in self._rehearsed.values()]
        self._rehearsed.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._client.aclose()


def _usable(kept: tuple[float, asyncio.Task[bytes]]) -> bool:
    started, task = kept
    if time.monotonic() - started > REHEARSAL_FRESH_S or task.cancelled():
        return False
    return not task.done() or task.exception() is None


def _retrieve(task: asyncio.Task[bytes]) -> None:
    """A rehearsal nobody asked for must not log 'exception never retrieved'."""
    if not task.cancelled():
        task.exception()


class _PiperStream(tts.ChunkedStream):
    def __init__(self, *, tts: PiperTTS, input_text: str, conn_options: APIConnectOptions) -> None:
        super().__init__(tts=tts, input_text=input_text, conn_options=conn_options)
        self._piper = tts

    async def _run(self, output_emitter: tts.AudioEmitter) -> None:
        pcm = await self._piper._spoken(self.input_text, self._conn_options.timeout)
        _emit_pcm(output_emitter, pcm)


class EspeakTTS(tts.TTS[Never]):
    """espeak-ng run once per utterance: robotic, but ~10 ms a sentence and always there."""

    def __init__(self, *, binary: str, voice: str | None = None) -> None:
        """``voice``: an espeak-ng voice ("es", "de", "fr"); the English default when None."""
        super().__init__(
            capabilities=tts.TTSCapabilities(streaming=False),
            sample_rate=SAMPLE_RATE,
            num_channels=NUM_CHANNELS,
        )
        self._binary = binary
        self._voice = voice or _ESPEAK_VOICE

    @property
    def provider(self) -> str:
        return "espeak-ng"

    @property
    def model(self) -> str:
        return self._voice

    def synthesize(
        self, text: str, *, conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS
    ) -> tts.ChunkedStream:
        return _EspeakStream(tts=self, input_text=text, conn_options=conn_options)


class _EspeakStream(tts.ChunkedStream):
    def __init__(self, *, tts: EspeakTTS, input_text: str, conn_options: APIConnectOptions) -> None:
        super().__init__(tts=tts, input_text=input_text, conn_options=conn_options)
        self._binary = tts._binary
        self._voice = tts._voice

    async def _run(self, output_emitter: tts.AudioEmitter) -> None:
        try:
            # text goes in on stdin so it can never be read as a command-line option
            proc = await asyncio.create_subprocess_exec(
                self._binary,
                "--stdout",
                "-v",
                self._voice,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.DEVNULL,
            )
        except OSError as exc:
            raise APIConnectionError("espeak-ng could not be started") from exc
        try:
            async with asyncio.timeout(self._conn_options.timeout):
                wav, _ = await proc.communicate(self.input_text.encode())
        except TimeoutError as exc:
            raise APITimeoutError("espeak-ng did not finish in time") from exc
        finally:
            # an interrupted utterance cancels us mid-synthesis; don't leave the child behind
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        if proc.returncode != 0:
            raise APIError(f"espeak-ng exited with {proc.returncode}", retryable=False)
        _emit_pcm(output_emitter, pcm_from_wav(wav))
