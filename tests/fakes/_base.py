"""What every fake shares: a loopback aiohttp server on a free port, run as an async context
manager, plus the script of injected latency and faults."""

from __future__ import annotations

import asyncio
import itertools
import weakref
from collections import deque
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

from aiohttp import web

_ids = itertools.count(1)


@dataclass
class RecordedRequest:
    """One request as the fake received it: what the client actually sent."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any = None  # parsed JSON, or form fields (file fields as bytes)
    messages: list[Any] = field(default_factory=list)  # websocket messages received, in order


class Faults:
    """Latency and failures to inject. Each ``fail_next``/``drop_next_stream`` is consumed by
    one request or connection, in order."""

    def __init__(self) -> None:
        self.ttfb_s = 0.0  # after the response headers, before its first chunk or message
        self.chunk_interval_s = 0.0  # between later chunks
        self._failures: deque[int] = deque()
        self._drops: deque[int] = deque()

    def set_latency(self, *, ttfb_s: float = 0.0, chunk_interval_s: float = 0.0) -> None:
        self.ttfb_s, self.chunk_interval_s = ttfb_s, chunk_interval_s

    def fail_next(self, *, status: int = 500, times: int = 1) -> None:
        self._failures.extend([status] * times)

    def drop_next_stream(self, *, after_chunks: int = 0) -> None:
        self._drops.append(after_chunks)

    def take_failure(self) -> int | None:
        return self._failures.popleft() if self._failures else None

    def take_drop(self) -> int | None:
        return self._drops.popleft() if self._drops else None


class FakeServer:
    """Base for the provider fakes; subclasses add their routes in ``_routes``."""

    def __init__(self) -> None:
        self.faults = Faults()
        self.requests: list[RecordedRequest] = []
        self._runner: web.AppRunner | None = None
        self._sockets: weakref.WeakSet[web.WebSocketResponse] = weakref.WeakSet()
        self._tasks: set[asyncio.Task[None]] = set()
        self.port = 0

    def _routes(self) -> list[web.RouteDef]:
        raise NotImplementedError

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # the fault script, forwarded so tests read `fake.fail_next(...)`
    def set_latency(self, *, ttfb_s: float = 0.0, chunk_interval_s: float = 0.0) -> None:
        self.faults.set_latency(ttfb_s=ttfb_s, chunk_interval_s=chunk_interval_s)

    def fail_next(self, *, status: int = 500, times: int = 1) -> None:
        self.faults.fail_next(status=status, times=times)

    def drop_next_stream(self, *, after_chunks: int = 0) -> None:
        self.faults.drop_next_stream(after_chunks=after_chunks)

    def record(self, request: web.Request, body: Any = None) -> RecordedRequest:
        rec = RecordedRequest(
            request.method, request.path, dict(request.query), dict(request.headers), body
        )
        self.requests.append(rec)
        return rec

    def track(self, ws: web.WebSocketResponse) -> web.WebSocketResponse:
        self._sockets.add(ws)
        return ws

    def spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """A background task the server owns and cancels on exit."""
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    @staticmethod
    async def pause(seconds: float) -> None:
        if seconds > 0:
            await asyncio.sleep(seconds)

    @staticmethod
    def abort(request: web.Request) -> None:
        """Drop the TCP connection mid-response, as a crashed upstream or proxy would."""
        if request.transport is not None:
            request.transport.abort()

    async def stream_response(
        self, request: web.Request, payloads: Sequence[bytes], content_type: str
    ) -> web.StreamResponse:
        """Write ``payloads`` one by one with the scripted latency, or drop the connection
        after as many of them as the next ``drop_next_stream`` says."""
        drop_after = self.faults.take_drop()
        headers = {"Content-Type": content_type, "x-request-id": f"req_{next(_ids)}"}
        resp = web.StreamResponse(headers=headers)
        await resp.prepare(request)
        await self.pause(self.faults.ttfb_s)
        for n, payload in enumerate(payloads):
            if drop_after is not None and n >= drop_after:
                self.abort(request)
                return resp
            if n:
                await self.pause(self.faults.chunk_interval_s)
            await resp.write(payload)
        await resp.write_eof()
        return resp

    async def __aenter__(self) -> Self:
        app = web.Application()
        app.add_routes(self._routes())
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for ws in list(self._sockets):
            await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()
