"""A local ElevenLabs: the ``multi-stream-input`` websocket the plugin streams through, and the
HTTP ``/stream`` endpoint it uses for one-shot ``synthesize``.

    async with ElevenLabsFake() as fake:
        tts = elevenlabs.TTS(api_key=fake.api_key, base_url=fake.base_url,
                             encoding="pcm_24000", http_session=...)

Audio is a speech-like tone, ``seconds_per_char`` long per character, encoded as the
``output_format`` query asks (``pcm_*``, ``mp3_*``, ``opus_*``), with character alignment.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from tests.fakes._audio import chunks, encode, tone
from tests.fakes._base import FakeServer, RecordedRequest

_MEDIA = {"mp3": "audio/mpeg", "pcm": "audio/pcm", "opus": "audio/ogg"}


@dataclass
class _Socket:
    ws: web.WebSocketResponse
    rec: RecordedRequest
    fmt: str
    rate: int
    drop_after: int | None
    sent_chunks: int = 0
    text: dict[str, str] = field(default_factory=dict)  # context id -> text not yet spoken


class ElevenLabsFake(FakeServer):
    """``fail_next(status=...)`` refuses the next handshake or HTTP request;
    ``drop_next_stream(after_chunks=n)`` closes the next websocket (code 1011) after it has sent
    ``n`` audio messages, or cuts the next HTTP body; ``set_latency`` delays each flush's first
    audio (``ttfb_s``) and spaces its chunks (``chunk_interval_s``)."""

    def __init__(self, *, api_key: str = "xi-test") -> None:
        super().__init__()
        self.api_key = api_key
        self.seconds_per_char = 0.02
        self.spoken: list[str] = []  # every text synthesized, per flush, in order

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    @property
    def sockets(self) -> list[RecordedRequest]:
        """Each websocket: its query (model_id, output_format...) and the JSON it received."""
        return [r for r in self.requests if r.path.endswith("/multi-stream-input")]

    def _routes(self) -> list[web.RouteDef]:
        return [
            web.get("/v1/text-to-speech/{voice_id}/multi-stream-input", self._multi_stream),
            web.post("/v1/text-to-speech/{voice_id}/stream", self._http_stream),
            web.get("/v1/voices", self._voices),
        ]

    def _refusal(self, request: web.Request) -> web.Response | None:
        if request.headers.get("xi-api-key") != self.api_key:
            detail = {"status": "invalid_api_key", "message": "Invalid API key"}
            return web.json_response({"detail": detail}, status=401)
        if status := self.faults.take_failure():
            return web.json_response(
                {"detail": {"status": "fake", "message": "injected"}}, status=status
            )
        return None

    def _audio(self, text: str, fmt: str, rate: int) -> tuple[bytes, float]:
        self.spoken.append(text.strip())
        duration = max(0.1, len(text) * self.seconds_per_char)
        return encode(tone(duration, rate), rate, fmt), duration

    async def _multi_stream(self, request: web.Request) -> web.StreamResponse:
        rec = self.record(request)
        if refusal := self._refusal(request):
            return refusal
        fmt, rate = _parse_format(request.query.get("output_format", "mp3_44100_128"))
        ws = self.track(web.WebSocketResponse())
        await ws.prepare(request)
        sock = _Socket(ws, rec, fmt, rate, self.faults.take_drop())
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                continue
            data = json.loads(msg.data)
            rec.messages.append(data)
            if data.get("close_socket"):
                break
            ctx = data.get("context_id", "")
            sock.text[ctx] = sock.text.get(ctx, "") + data.get("text", "")
            ends_input = bool(data.get("flush") or data.get("close_context"))
            if ends_input and not await self._flush(sock, ctx):
                break  # the scripted drop closed the socket
            if data.get("close_context"):
                del sock.text[ctx]
                await ws.send_json({"isFinal": True, "context_id": ctx})
        await ws.close()
        return ws

    async def _flush(self, sock: _Socket, ctx: str) -> bool:
        """Speak the context's buffered text; False if the scripted drop closed the socket."""
        # the alignment keeps the client's trailing space, as ElevenLabs' does, so the words
        # of consecutive flushes don't run together in the client's timed transcript
        text, sock.text[ctx] = sock.text[ctx], ""
        if not text.strip():
            return True
        audio, duration = self._audio(text, sock.fmt, sock.rate)
        alignment = _alignment(text, duration)
        await self.pause(self.faults.ttfb_s)
        for n, chunk in enumerate(chunks(audio, 4096)):
            if sock.drop_after is not None and sock.sent_chunks >= sock.drop_after:
                await sock.ws.close(code=1011, message=b"fake: dropped")
                return False
            if n:
                await self.pause(self.faults.chunk_interval_s)
            msg = {
                "audio": base64.b64encode(chunk).decode(),
                "context_id": ctx,
                "alignment": alignment if n == 0 else None,
                "normalizedAlignment": alignment if n == 0 else None,
            }
            await sock.ws.send_json(msg)
            sock.sent_chunks += 1
        return True

    async def _http_stream(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.record(request, body)
        if refusal := self._refusal(request):
            return refusal
        fmt, rate = _parse_format(request.query.get("output_format", "mp3_44100_128"))
        audio, _ = self._audio(body["text"], fmt, rate)
        return await self.stream_response(request, chunks(audio, 4096), _MEDIA[fmt])

    async def _voices(self, request: web.Request) -> web.Response:
        self.record(request)
        voice = {"voice_id": "fake-voice", "name": "Fake", "category": "premade"}
        return web.json_response({"voices": [voice]})


def _parse_format(output_format: str) -> tuple[str, int]:
    """``mp3_22050_32`` -> ("mp3", 22050)."""
    codec, rate, *_ = output_format.split("_")
    if codec not in _MEDIA:
        raise web.HTTPBadRequest(text=f"fake does not produce {output_format}")
    return codec, int(rate)


def _alignment(text: str, duration_s: float) -> dict[str, Any]:
    """Characters spread evenly over the audio, in ElevenLabs' camelCase alignment shape."""
    step = int(duration_s * 1000 / len(text))
    return {
        "chars": list(text),
        "charStartTimesMs": [i * step for i in range(len(text))],
        "charDurationsMs": [step] * len(text),
    }
