"""A local OpenAI: streamed chat completions with scripted text and tool calls, speech and
transcriptions, speaking the wire format the ``openai`` SDK parses.

    async with OpenAIFake() as fake:
        fake.llm.push_reply(text="Sure.", tool_calls=[("next_slide", {"reason": "asked"})])
        llm = openai.LLM(model="gpt-4.1-mini", base_url=f"{fake.url}/v1", api_key=fake.api_key)
"""

from __future__ import annotations

import base64
import itertools
import json
import re
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.fakes._audio import chunks, encode, tone
from tests.fakes._base import FakeServer

SPEECH_RATE = 24000  # OpenAI TTS always answers 24 kHz mono
_MEDIA = {"mp3": "audio/mpeg", "opus": "audio/ogg", "wav": "audio/wav", "flac": "audio/flac"}
_ids = itertools.count(1)


@dataclass
class Reply:
    """One scripted assistant turn: text deltas, then tool calls (arguments streamed in pieces)."""

    text: str = ""
    tool_calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


class ChatScript:
    """Replies served in order; ``default`` answers once the queue is empty."""

    def __init__(self) -> None:
        self.default = Reply(text="Okay.")
        self._replies: deque[Reply] = deque()
        self._last_turn: tuple[str, int] | None = None
        self._last_reply: Reply | None = None

    def push_reply(
        self, text: str = "", tool_calls: Sequence[tuple[str, Mapping[str, Any]]] = ()
    ) -> None:
        self._replies.append(Reply(text, [(name, dict(args)) for name, args in tool_calls]))

    def next(self) -> Reply:
        return self._replies.popleft() if self._replies else self.default

    def reply_for(self, messages: list[dict[str, Any]]) -> Reply:
        """The next reply; a request that asks the same turn as the request before it gets
        that request's reply again, as a deterministic model would give. The framework asks a
        turn twice when it discards a preemptive generation (the chat changed under it, e.g.
        a barge-in added the interrupted sentence) and when it retries."""
        turn = _turn_of(messages)
        if turn == self._last_turn and self._last_reply is not None:
            return self._last_reply
        self._last_turn, self._last_reply = turn, self.next()
        return self._last_reply


class OpenAIFake(FakeServer):
    """``/v1/chat/completions`` (SSE), ``/v1/audio/speech``, ``/v1/audio/transcriptions``,
    ``/v1/models``. Faults (``fail_next``, ``drop_next_stream``, ``set_latency``) apply to
    whichever of these is requested next."""

    def __init__(self, *, api_key: str = "sk-test") -> None:
        super().__init__()
        self.api_key = api_key
        self.llm = ChatScript()
        self.default_transcript = ""
        self._transcripts: deque[str] = deque()
        self.speech_seconds_per_char = 0.03
        # (model, prompt_tokens, completion_tokens) of every chat answer that reported usage
        self.usage_reported: list[tuple[str, int, int]] = []

    def push_transcript(self, text: str) -> None:
        self._transcripts.append(text)

    @property
    def chat_requests(self) -> list[dict[str, Any]]:
        """The JSON bodies of every chat completion request: what the model saw."""
        return [r.body for r in self.requests if r.path == "/v1/chat/completions"]

    def _routes(self) -> list[web.RouteDef]:
        return [
            web.post("/v1/chat/completions", self._chat),
            web.post("/v1/audio/speech", self._speech),
            web.post("/v1/audio/transcriptions", self._transcription),
            web.get("/v1/models", self._models),
        ]

    def _refusal(self, request: web.Request) -> web.Response | None:
        """The error OpenAI would answer instead, if the key is wrong or a failure is due."""
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return _error(401, "Incorrect API key provided.", "invalid_api_key")
        status = self.faults.take_failure()
        return _error(status, "The server had an error.", "server_error") if status else None

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.record(request, body)
        if refusal := self._refusal(request):
            return refusal
        if not body.get("stream"):
            return _error(400, "fake serves only stream=true", "invalid_request_error")
        reply, cid = self.llm.reply_for(body["messages"]), f"chatcmpl-{next(_ids)}"
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))

        def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
            return _chunk(cid, body["model"], [choice], include_usage)

        events = [chunk({"role": "assistant", "content": ""})]
        events += [chunk({"content": piece}) for piece in re.findall(r"\s*\S+", reply.text)]
        for index, (name, args) in enumerate(reply.tool_calls):
            call = {"index": index, "id": f"call_{next(_ids)}", "type": "function"}
            events.append(
                chunk({"tool_calls": [{**call, "function": {"name": name, "arguments": ""}}]})
            )
            raw = json.dumps(args)
            for piece in (raw[i : i + 8] for i in range(0, len(raw), 8)):
                events.append(
                    chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
                )
        events.append(chunk({}, "tool_calls" if reply.tool_calls else "stop"))
        if include_usage:
            prompt = len(json.dumps(body["messages"])) // 4
            done = len(reply.text) // 4 + 1
            usage = {
                "prompt_tokens": prompt,
                "completion_tokens": done,
                "total_tokens": prompt + done,
            }
            self.usage_reported.append((body["model"], prompt, done))
            events.append({**_chunk(cid, body["model"], [], True), "usage": usage})
        return await self._sse(request, [json.dumps(e) for e in events] + ["[DONE]"])

    async def _speech(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.record(request, body)
        if refusal := self._refusal(request):
            return refusal
        fmt = body.get("response_format", "mp3")
        if fmt not in (*_MEDIA, "pcm"):
            return _error(400, f"fake cannot produce {fmt}", "unsupported_format")
        pcm = tone(max(0.2, len(body["input"]) * self.speech_seconds_per_char), SPEECH_RATE)
        audio = encode(pcm, SPEECH_RATE, fmt)
        if body.get("stream_format") == "sse":
            events: list[dict[str, Any]] = [
                {"type": "speech.audio.delta", "audio": base64.b64encode(c).decode()}
                for c in chunks(audio, 4800)
            ]
            usage = {"input_tokens": len(body["input"]) // 4 + 1, "output_tokens": len(pcm) // 480}
            events.append({"type": "speech.audio.done", "usage": usage})
            return await self._sse(request, [json.dumps(e) for e in events])
        return await self.stream_response(
            request, chunks(audio, 4800), _MEDIA.get(fmt, "audio/pcm")
        )

    async def _transcription(self, request: web.Request) -> web.Response:
        form = {
            k: v.file.read() if isinstance(v, web.FileField) else v
            for k, v in (await request.post()).items()
        }
        self.record(request, form)
        if refusal := self._refusal(request):
            return refusal
        text = self._transcripts.popleft() if self._transcripts else self.default_transcript
        await self.pause(self.faults.ttfb_s)
        if form.get("response_format") == "verbose_json":
            lang = str(form.get("language", "en"))
            return web.json_response({"text": text, "language": lang, "duration": 1.0})
        return web.json_response({"text": text, "usage": {"type": "duration", "seconds": 1}})

    async def _models(self, request: web.Request) -> web.Response:
        self.record(request)
        return web.json_response(
            {
                "object": "list",
                "data": [
                    {"id": "gpt-4.1-mini", "object": "model", "created": 0, "owned_by": "fake"}
                ],
            }
        )

    async def _sse(self, request: web.Request, datas: list[str]) -> web.StreamResponse:
        payloads = [f"data: {data}\n\n".encode() for data in datas]
        return await self.stream_response(request, payloads, "text/event-stream")


def _turn_of(messages: list[dict[str, Any]]) -> tuple[str, int] | None:
    """Which turn a request asks: the user's last message, and how many messages (tool calls
    and their results) came after it."""
    users = [n for n, m in enumerate(messages) if m.get("role") == "user"]
    if not users:
        return None
    return json.dumps(messages[users[-1]].get("content")), len(messages) - users[-1]


def _chunk(cid: str, model: str, choices: list[Any], with_usage: bool) -> dict[str, Any]:
    out = {
        "id": cid,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": "fp_fake",
        "choices": choices,
    }
    return {**out, "usage": None} if with_usage else out


def _error(status: int, message: str, code: str) -> web.Response:
    kind = "server_error" if status >= 500 else "invalid_request_error"
    body = {"error": {"message": message, "type": kind, "param": None, "code": code}}
    return web.json_response(body, status=status)
