"""Heartbeats to the control plane: load, jobs, warm processes, draining, rooms held.

Every ``PODIUM_HEARTBEAT_INTERVAL_SECONDS``, and at once when a drain starts, the worker puts its
state at ``/internal/v1/fleet/workers/{name}``; on exit it deletes it. The control plane keeps
each heartbeat in Redis with a TTL, so a worker that dies leaves the fleet view on its own.
A heartbeat that fails is logged and retried on the next tick: the fleet view is advisory and
must never take a worker down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time

import httpx
from livekit.agents import AgentServer

from shared.fleet import WorkerHeartbeat, mint_worker_credential
from shared.settings import WorkerSettings

from .metrics import snapshot

logger = logging.getLogger(__name__)


def default_worker_name() -> str:
    """The pod name in Kubernetes (its hostname); host:pid elsewhere, unique per process."""
    host = socket.gethostname()[:100] or "worker"
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        return host
    return f"{host}:{os.getpid()}"


# livekit-server hears of a slot freed by an ended job with the worker's next status update
# (the framework sends one every 2.5 s); admission reads the heartbeats, so a freed slot is
# reported free only after that, or the control plane would admit a session the server then
# offers to a worker it still counts as full (and drops).
FREED_SLOT_DELAY_S = 3.0


class BusySlots:
    """The active-job count to report: a rise at once, a fall once it is FREED_SLOT_DELAY_S old."""

    def __init__(self, delay_s: float = FREED_SLOT_DELAY_S) -> None:
        self._delay_s = delay_s
        self._reported = 0
        self._fell_at: float | None = None

    def report(self, active: int, now: float) -> int:
        if active >= self._reported:
            self._reported, self._fell_at = active, None
        elif self._fell_at is None:
            self._fell_at = now
        elif now - self._fell_at >= self._delay_s:
            self._reported, self._fell_at = active, None
        return self._reported


class FleetReporter:
    def __init__(self, server: AgentServer, settings: WorkerSettings, drain: asyncio.Event) -> None:
        self.name = settings.worker_name or default_worker_name()
        self._server = server
        self._settings = settings
        self._drain = drain
        self._url = (
            f"{settings.control_plane_url.rstrip('/')}/internal/v1/fleet/workers/{self.name}"
        )
        self._client = httpx.AsyncClient(timeout=settings.request_timeout_seconds)
        self._busy = BusySlots()

    def heartbeat(self) -> WorkerHeartbeat:
        snap = snapshot(self._server, self._settings.max_sessions, draining=self._drain.is_set())
        return WorkerHeartbeat(
            worker=self.name,
            livekit_worker_id=snap.livekit_worker_id,
            agent_name=self._settings.agent_name,
            max_sessions=self._settings.max_sessions,
            active_jobs=self._busy.report(snap.active_jobs, time.monotonic()),
            idle_processes=snap.idle_processes,
            load=snap.load,
            draining=snap.draining,
            rooms=snap.rooms,
        )

    async def run(self) -> None:
        """Report until cancelled; a drain request sends one report at once."""
        drain_reported = False
        while True:
            await self._request("PUT", self.heartbeat().model_dump_json())
            if self._drain.is_set() and not drain_reported:
                drain_reported = True
                logger.info("reported draining to the control plane")
            wait = self._settings.heartbeat_interval_seconds
            if drain_reported:
                await asyncio.sleep(wait)
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._drain.wait(), wait)

    async def leave(self) -> None:
        """Tell the control plane this worker is gone (best effort; the TTL covers a failure)."""
        await self._request("DELETE", None)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _request(self, method: str, body: str | None) -> None:
        token = mint_worker_credential(self._settings.fleet_key_ring(), self.name)
        headers = {"Authorization": f"Bearer {token}"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        try:
            resp = await self._client.request(method, self._url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            logger.warning(
                "fleet heartbeat failed", extra={"method": method, "error": type(exc).__name__}
            )
            return
        if resp.status_code >= 400:
            logger.warning(
                "fleet heartbeat refused", extra={"method": method, "status": resp.status_code}
            )
