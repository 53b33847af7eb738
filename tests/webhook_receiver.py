"""An integrator's webhook endpoint for tests: a real HTTP server that records each delivery,
checks its signature, and can be told to fail."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from control_plane.webhooks.signing import verify
from shared.devstack.services import free_port


@dataclass
class Receiver:
    """An integrator's endpoint: records each request; answers 500 while ``failing`` > 0."""

    url: str = ""
    failing: int = 0
    always_fail: bool = False
    got: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.Response:
        self.got.append((dict(request.headers), await request.read()))
        self.arrived.set()
        if self.always_fail or self.failing > 0:
            self.failing -= 1
            return web.Response(status=500)
        return web.Response(status=204)

    def events(self, secret: str) -> list[dict[str, Any]]:
        """Bodies that verified, in arrival order (a failed attempt's too)."""
        out = []
        for headers, body in self.got:
            assert verify(
                secret, headers["Podium-Webhook-Timestamp"], body, headers["Podium-Signature"]
            ), headers
            out.append({**json.loads(body), "_delivery": headers["Podium-Webhook-Id"]})
        return out

    async def until(self, check: Any, seconds: float = 20) -> None:
        async with asyncio.timeout(seconds):
            while not check():
                self.arrived.clear()
                await self.arrived.wait()


class serve_receiver:
    def __init__(self) -> None:
        self.found = Receiver()
        self._runner: web.AppRunner | None = None

    async def __aenter__(self) -> Receiver:
        app = web.Application()
        app.router.add_post("/hook", self.found.handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", port).start()
        self.found.url = f"http://127.0.0.1:{port}/hook"
        return self.found

    async def __aexit__(self, *_: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
