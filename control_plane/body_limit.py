"""Refuse request bodies over their route's cap before anything buffers them (memory or disk).

The cap is chosen from the method and path alone, before routing and authentication: FastAPI
reads and parses a JSON body before it resolves any dependency (the credential among them), so a
cap applied after authentication would come too late. A declared ``Content-Length`` over the cap
is refused at once; a body without one (chunked) is counted as it arrives and refused as soon as
it passes the cap.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.settings import ControlPlaneSettings

KiB = 2**10
MiB = 2**20
# libopus's default target for stereo (64 kb/s, plus 32 kb/s for the coupled channel), which the
# framework's recorder keeps; the encoder is VBR and stays under it (white noise: 86 kb/s).
_RECORDING_BYTES_PER_S = 96_000 // 8
_MAX_SEGMENT_S = 120  # WorkerSettings.recording_segment_seconds' maximum
# How long the rest of a refused body is read (and dropped) so its sender sees the 413.
_LINGER_S = 5.0


@dataclass(frozen=True)
class BodyCap:
    max_bytes: int
    message: str  # the 413's sentence, naming the limit


def _size(n: int) -> str:
    return f"{n // MiB} MB" if n >= MiB else f"{n // KiB} KB"


def _json(max_bytes: int) -> BodyCap:
    return BodyCap(
        max_bytes, f"The request body is over the {_size(max_bytes)} limit for this route."
    )


def body_caps(settings: ControlPlaneSettings) -> BodyCaps:
    """Every route that may take more than a small JSON body, and why; the rest get the JSON cap."""
    upload_mb = settings.max_upload_mb
    # A segment is at most twice the longest segment length the worker accepts (120 s, stretched
    # while the presenter speaks); 1 MB more for the Ogg container.
    segment = (math.ceil(2 * _MAX_SEGMENT_S * _RECORDING_BYTES_PER_S / MiB) + 1) * MiB
    return BodyCaps(
        {
            # The deck plus room for the multipart envelope around it.
            ("POST", "/v1/decks"): BodyCap(
                (upload_mb + 1) * MiB, f"The file is over the {upload_mb} MB limit."
            ),
            # 200 questions (shared.evaluation.MAX_QUESTIONS) of at most ~4.5 KB each: a
            # 500-character question and a 100-character id, all escaped, 50 slides, tags.
            ("POST", "/v1/decks/{deck_id}/evaluations"): _json(MiB),
            ("PUT", "/internal/v1/sessions/{session_id}/recording/segments/{n}"): BodyCap(
                segment, f"A recording segment is over the {_size(segment)} limit."
            ),
            # The schema's largest batch: 100 messages of 10,000 characters, 6 bytes each when
            # escaped (6 MB). A refused batch is dropped by the worker's outbox, not retried.
            ("POST", "/internal/v1/sessions/{session_id}/messages"): _json(8 * MiB),
            # The worker sends 20 turns a batch; each holds up to 30,000 characters of speech
            # and its tool calls' arguments and results (10,000 characters each): 16 MB leaves
            # ~800 KB a turn, dozens of times what a turn with a few tool calls takes.
            ("POST", "/internal/v1/sessions/{session_id}/turns"): _json(16 * MiB),
            # Up to 10,000 room names (WorkerHeartbeat.rooms) of ~45 bytes (podium-<uuid>).
            ("PUT", "/internal/v1/fleet/workers/{worker}"): _json(MiB),
            # LiveKit's event carries the room's and a participant's metadata (512 KB each by
            # its default limits) and attributes (64 KB), escaped inside the JSON.
            ("POST", "/livekit/webhook"): _json(4 * MiB),
        },
        default=_json(settings.max_json_body_kb * KiB),
    )


class BodyCaps:
    def __init__(self, routes: Mapping[tuple[str, str], BodyCap], *, default: BodyCap) -> None:
        self._routes: list[tuple[str, re.Pattern[str], BodyCap]] = [
            (method, compile_path(path)[0], cap) for (method, path), cap in routes.items()
        ]
        self.default = default

    def for_request(self, method: str, path: str) -> BodyCap:
        # "/v1/decks/" is redirected to "/v1/decks": the same cap, not the JSON one.
        path = path.rstrip("/") or "/"
        for route_method, pattern, cap in self._routes:
            if method == route_method and pattern.match(path):
                return cap
        return self.default


class BodyTooLarge(Exception):
    pass


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, caps: BodyCaps) -> None:
        self.app = app
        self.caps = caps

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"].removeprefix(scope.get("root_path", ""))
        cap = self.caps.for_request(scope["method"], path)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > cap.max_bytes:
            await _refuse(send, cap, unread=receive)
            return
        seen = 0
        started = False
        refused = False

        async def counted_receive() -> Message:
            nonlocal seen, refused
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > cap.max_bytes:
                    if not started and not refused:
                        refused = True
                        await _refuse(
                            send, cap, unread=receive if message.get("more_body") else None
                        )
                    raise BodyTooLarge
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if refused:
                # The 413 is out. FastAPI turns any error while reading a body into its own
                # 400, which must not follow it.
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        # Answered with 413 above, or too late to answer: the server closes the connection.
        with contextlib.suppress(BodyTooLarge):
            await self.app(scope, counted_receive, guarded_send)


async def _refuse(send: Send, cap: BodyCap, *, unread: Receive | None) -> None:
    """Answer 413 at once and close; ``unread`` is the rest of the body, if any."""
    body = json.dumps({"error": "too_large", "message": cap.message}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": unread is not None})
    if unread is None:
        return
    # Most HTTP clients write the whole body before they read: closing on unread bytes resets
    # the connection and loses the answer. So the rest is read and dropped (nothing is kept)
    # for a few seconds before the connection closes.
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(_LINGER_S):
            while (await unread()).get("more_body", False):
                pass
    await send({"type": "http.response.body", "body": b""})
