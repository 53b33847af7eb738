"""POST /v1/decks at the ASGI level: an upload reads its body only once a parse slot is its own,
and a body that does not arrive in time gives the slot back."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any
from uuid import uuid4

from fastapi import FastAPI
from fastapi.routing import APIRoute

from control_plane import deps
from control_plane.decks.extract import Limits
from control_plane.decks.router import router
from control_plane.decks.sandbox import Bounds
from control_plane.decks.service import DeckService, DeckUnprocessable, UploadTooSlow
from control_plane.errors import install_error_handlers

BODY = (
    b'--x\r\nContent-Disposition: form-data; name="file"; filename="big.pdf"\r\n\r\n'
    + b"%PDF" * 100
    + b"\r\n--x--\r\n"
)


def service(*, read_timeout_s: float = 120.0) -> DeckService:
    # One slot, and a file limit the body is over: the request ends at the size check, before
    # anything would need storage, a database or a parse.
    none: Any = None
    return DeckService(
        none,
        none,
        none,
        none,
        none,
        Limits(max_bytes=100, max_slides=5),
        Bounds(),
        max_parallel_parses=1,
        read_timeout_s=read_timeout_s,
    )


def app_for(decks: DeckService) -> FastAPI:
    """The decks routes with ``decks`` behind them; the upload route's other dependencies (the
    credential, tenant limits) let every request through."""
    app = FastAPI()
    install_error_handlers(app)
    app.include_router(router)
    upload = next(
        r
        for r in router.routes
        if isinstance(r, APIRoute) and r.path == "/v1/decks" and "POST" in r.methods
    )
    for dependency in upload.dependant.dependencies:
        if dependency.call is not None:
            app.dependency_overrides[dependency.call] = lambda: None
    app.dependency_overrides[deps._decks] = lambda: decks
    return app


def upload_scope() -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/decks",
        "raw_path": b"/v1/decks",
        "root_path": "",
        "query_string": b"",
        "headers": [
            (b"content-type", b"multipart/form-data; boundary=x"),
            (b"content-length", str(len(BODY)).encode()),
        ],
        "server": ("test", 80),
        "client": ("test", 1234),
        "state": {},
    }


async def test_an_upload_waiting_for_a_slot_leaves_its_body_unread() -> None:
    decks = service()
    reading, finish = asyncio.Event(), asyncio.Event()

    async def slow_file() -> tuple[str, bytes]:
        reading.set()
        await finish.wait()
        raise DeckUnprocessable("too_large", "The file is over the limit.")

    holder = asyncio.create_task(decks.upload(uuid4(), slow_file))
    await reading.wait()  # the only slot is taken while that body arrives

    reads = 0
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal reads
        reads += 1
        return {"type": "http.request", "body": BODY, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    request = asyncio.create_task(app_for(decks)(upload_scope(), receive, send))
    await asyncio.sleep(0.3)
    assert reads == 0, "the upload read its body before it had a parse slot"
    assert not request.done()

    finish.set()  # the first upload fails: its slot is free again
    with contextlib.suppress(DeckUnprocessable):
        await holder
    await asyncio.wait_for(request, 5)
    assert reads >= 1
    assert sent[0]["status"] == 413  # read, then refused by the file limit


async def test_a_body_that_does_not_arrive_in_time_frees_the_slot() -> None:
    decks = service(read_timeout_s=0.2)
    never = asyncio.Event()

    async def stalled() -> tuple[str, bytes]:
        await never.wait()
        return "never.pdf", b""

    try:
        await decks.upload(uuid4(), stalled)
    except UploadTooSlow as exc:
        assert exc.status_code == 408
        assert "0.2 s" in exc.message
    else:
        raise AssertionError("a stalled upload was not cut off")

    async def oversized() -> tuple[str, bytes]:
        raise DeckUnprocessable("too_large", "The file is over the limit.")

    # The slot came back: the next upload gets to read its file at once.
    try:
        await asyncio.wait_for(decks.upload(uuid4(), oversized), 1)
    except DeckUnprocessable as exc:
        assert exc.code == "too_large"
