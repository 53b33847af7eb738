"""A local Deepgram ``/v1/listen``: the live websocket (linear16 audio in, ``SpeechStarted`` /
``Results`` / ``Metadata`` JSON out) and the prerecorded POST, with scripted transcripts.

    async with DeepgramFake() as fake:
        fake.script("next slide", after_audio_s=0.3)  # spoken once 0.3 s of audio has arrived
        stt = deepgram.STT(api_key=fake.api_key, base_url=fake.listen_url, http_session=...)

The fake does not recognise speech: it paces scripted text against the audio the client sends.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from tests.fakes._base import FakeServer, RecordedRequest


@dataclass
class _Listen:
    """One live connection and how much audio it has received."""

    ws: web.WebSocketResponse
    rec: RecordedRequest
    bytes_per_s: int
    request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    audio_bytes: int = 0
    audio_chunks: int = 0
    spoken_until_s: float = 0.0  # end of the last transcript, on the audio clock
    pending: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def audio_s(self) -> float:
        return self.audio_bytes / self.bytes_per_s


class DeepgramFake(FakeServer):
    """Scripted utterances are shared by all connections, so one still arrives after the client
    reconnects. ``drop_next_stream(after_chunks=n)`` closes the next connection (code 1011) after
    it has received ``n`` audio chunks; ``fail_next(status=...)`` refuses the next handshake;
    ``set_latency(ttfb_s=...)`` delays each transcript, ``chunk_interval_s`` spaces its
    interim results."""

    def __init__(self, *, api_key: str = "dg-test") -> None:
        super().__init__()
        self.api_key = api_key
        self._scripted: deque[tuple[str, float]] = deque()
        self._live: list[_Listen] = []
        self._connected = asyncio.Event()
        self.audio_received_s = 0.0  # over every live connection, for usage reconciliation

    @property
    def listen_url(self) -> str:
        return f"{self.url}/v1/listen"

    @property
    def connections(self) -> list[RecordedRequest]:
        """Each live connection: its query (model, encoding, sample_rate...) and the text
        messages the client sent (``KeepAlive``, ``Finalize``, ``CloseStream``)."""
        return [r for r in self.requests if r.method == "GET"]

    def script(self, text: str, *, after_audio_s: float = 0.3) -> None:
        """Transcribe ``text`` once a connection has received ``after_audio_s`` more seconds of
        audio than it had when its previous transcript ended."""
        self._scripted.append((text, after_audio_s))

    async def wait_connected(self) -> None:
        """Until a live connection is open (the plugin connects lazily, after ``stream()``);
        bound it with ``asyncio.timeout`` if the test should not wait forever."""
        await self._connected.wait()

    def say(self, text: str, *, last_s: float | None = None) -> None:
        """Transcribe ``text`` now on every open connection, or, with none open yet, as soon as
        the next one receives audio. ``last_s``: its words were spoken over the last ``last_s``
        seconds of audio received (their timestamps say so), not since the previous transcript."""
        if not self._live:
            self._scripted.append((text, 0.0))
        for conn in self._live:
            if last_s is not None:
                conn.spoken_until_s = max(conn.spoken_until_s, conn.audio_s - last_s)
            self._speak(conn, text)

    def _routes(self) -> list[web.RouteDef]:
        return [web.get("/v1/listen", self._listen), web.post("/v1/listen", self._prerecorded)]

    def _refusal(self, request: web.Request) -> web.Response | None:
        if request.headers.get("Authorization") != f"Token {self.api_key}":
            return web.json_response(
                {"err_code": "INVALID_AUTH", "err_msg": "Invalid credentials."}, status=401
            )
        if status := self.faults.take_failure():
            return web.json_response({"err_code": "FAKE", "err_msg": "injected"}, status=status)
        return None

    async def _listen(self, request: web.Request) -> web.StreamResponse:
        rec = self.record(request)
        if refusal := self._refusal(request):
            return refusal
        ws = self.track(web.WebSocketResponse(autoping=True))
        await ws.prepare(request)
        rate, channels = int(request.query["sample_rate"]), int(request.query.get("channels", 1))
        conn = _Listen(ws, rec, bytes_per_s=2 * rate * channels)
        drop_after = self.faults.take_drop()
        self._live.append(conn)
        self._connected.set()
        try:
            async for msg in ws:
                if msg.type == WSMsgType.BINARY:
                    conn.audio_bytes += len(msg.data)
                    self.audio_received_s += len(msg.data) / conn.bytes_per_s
                    conn.audio_chunks += 1
                    if drop_after is not None and conn.audio_chunks >= drop_after:
                        await ws.close(code=1011, message=b"fake: dropped")
                        break
                    self._maybe_speak(conn)
                elif msg.type == WSMsgType.TEXT:
                    rec.messages.append(json.loads(msg.data))
                    if rec.messages[-1].get("type") == "CloseStream":
                        # Deepgram flushes what it has heard before the closing Metadata
                        await asyncio.gather(*conn.pending, return_exceptions=True)
                        await ws.send_json(self._metadata(conn))
                        await ws.close()
        finally:
            self._live.remove(conn)
            if not self._live:
                self._connected.clear()
        return ws

    def _maybe_speak(self, conn: _Listen) -> None:
        if self._scripted and conn.audio_s - conn.spoken_until_s >= self._scripted[0][1]:
            self._speak(conn, self._scripted.popleft()[0])

    def _speak(self, conn: _Listen, text: str) -> None:
        task = self.spawn(self._utter(conn, text))
        conn.pending.add(task)
        task.add_done_callback(conn.pending.discard)

    async def _utter(self, conn: _Listen, text: str) -> None:
        """``SpeechStarted``, interim results word by word, then the final one, as Deepgram
        sends them with ``interim_results``, ``vad_events`` and endpointing on."""
        start, end = conn.spoken_until_s, max(conn.audio_s, conn.spoken_until_s + 0.1)
        conn.spoken_until_s = end
        query, words = conn.rec.query, text.split()
        await self.pause(self.faults.ttfb_s)
        try:
            if query.get("vad_events") == "true":
                started = {"type": "SpeechStarted", "channel": [0], "timestamp": start}
                await conn.ws.send_json(started)
            if query.get("interim_results") == "true":
                for n in range(1, len(words)):
                    interim = self._results(conn, words[:n], start, end, final=False)
                    await conn.ws.send_json(interim)
                    await self.pause(self.faults.chunk_interval_s)
            await conn.ws.send_json(self._results(conn, words, start, end, final=True))
        except ConnectionResetError:
            pass  # the client hung up (or a scripted drop closed the socket) mid-utterance

    def _results(
        self, conn: _Listen, words: list[str], start: float, end: float, *, final: bool
    ) -> dict[str, Any]:
        return {
            "type": "Results",
            "channel_index": [0, 1],
            "duration": end - start,
            "start": start,
            "is_final": final,
            "speech_final": final,
            "from_finalize": False,
            "channel": {"alternatives": [_alternative(words, start, end)]},
            "metadata": {
                "request_id": conn.request_id,
                "model_uuid": "fake",
                "model_info": {
                    "name": conn.rec.query.get("model", "nova-3"),
                    "version": "fake",
                    "arch": "fake",
                },
            },
        }

    def _metadata(self, conn: _Listen) -> dict[str, Any]:
        return {
            "type": "Metadata",
            "transaction_key": "deprecated",
            "request_id": conn.request_id,
            "sha256": "",
            "created": "",
            "duration": conn.audio_s,
            "channels": 1,
            "models": [],
            "model_info": {},
        }

    async def _prerecorded(self, request: web.Request) -> web.Response:
        audio = await request.read()
        self.record(request, audio)
        if refusal := self._refusal(request):
            return refusal
        await self.pause(self.faults.ttfb_s)
        words = (self._scripted.popleft()[0] if self._scripted else "").split()
        duration = max(0.0, (len(audio) - 44) / 32000)  # 16 kHz s16 WAV from the plugin
        return web.json_response(
            {
                "metadata": {"request_id": str(uuid.uuid4()), "duration": duration, "channels": 1},
                "results": {"channels": [{"alternatives": [_alternative(words, 0.0, duration)]}]},
            }
        )


def _alternative(words: list[str], start: float, end: float) -> dict[str, Any]:
    step = (end - start) / max(1, len(words))
    return {
        "transcript": " ".join(words),
        "confidence": 0.98,
        "words": [
            {
                "word": w.lower().strip(".,?!"),
                "punctuated_word": w,
                "confidence": 0.98,
                "start": round(start + i * step, 3),
                "end": round(start + (i + 1) * step, 3),
            }
            for i, w in enumerate(words)
        ],
    }
