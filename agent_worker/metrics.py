"""The worker's ops endpoint: ``/readyz`` (ready once registered and warm, 503 from the first
SIGTERM on) and Prometheus ``/metrics``.

The framework's own health route (``PODIUM_HTTP_PORT``, ``/``) stays the liveness probe: it
answers 200 through a drain, which is what keeps Kubernetes from killing a pod that is still
finishing sessions. Readiness is separate so a draining pod leaves Services and rollouts count
it as gone while its sessions continue.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass

from aiohttp import web
from livekit.agents import AgentServer
from prometheus_client import CONTENT_TYPE_LATEST, Gauge, generate_latest

ACTIVE_JOBS = Gauge("podium_worker_active_jobs", "Sessions this worker is running.")
IDLE_PROCESSES = Gauge("podium_worker_idle_processes", "Prewarmed job processes ready now.")
LOAD = Gauge("podium_worker_load", "Share of session slots in use (what LiveKit dispatches on).")
MAX_SESSIONS = Gauge("podium_worker_max_sessions", "Session slots of this worker.")
DRAINING = Gauge("podium_worker_draining", "1 once a shutdown signal asked the worker to drain.")
REGISTERED = Gauge("podium_worker_registered", "1 while registered with LiveKit.")

_UNREGISTERED = "unregistered"  # the framework's worker id until LiveKit accepts it


@dataclass(frozen=True)
class WorkerSnapshot:
    livekit_worker_id: str
    registered: bool
    active_jobs: int
    idle_processes: int
    load: float
    draining: bool
    rooms: list[str]


def snapshot(server: AgentServer, max_sessions: int, *, draining: bool) -> WorkerSnapshot:
    """What the worker is doing now, read from the agent server."""
    jobs = server.active_jobs
    load = min(1.0, len(jobs) / max_sessions)
    snap = WorkerSnapshot(
        livekit_worker_id="" if server.id == _UNREGISTERED else server.id,
        registered=server.id != _UNREGISTERED,
        active_jobs=len(jobs),
        idle_processes=_idle_processes(server),
        load=load if math.isfinite(load) else 1.0,
        draining=draining or server.draining,
        rooms=sorted(j.job.room.name for j in jobs),
    )
    ACTIVE_JOBS.set(snap.active_jobs)
    IDLE_PROCESSES.set(snap.idle_processes)
    LOAD.set(snap.load)
    MAX_SESSIONS.set(max_sessions)
    DRAINING.set(int(snap.draining))
    REGISTERED.set(int(snap.registered))
    return snap


def _idle_processes(server: AgentServer) -> int:
    # The framework exposes no count of warm processes; its pool keeps them in this queue
    # (initialised, waiting for a job). Absent before run() creates the pool.
    try:
        return server._proc_pool._warmed_proc_queue.qsize()
    except AttributeError:
        return 0


class OpsServer:
    """``/readyz`` and ``/metrics`` on their own port (the framework's app is built in run())."""

    def __init__(
        self,
        server: AgentServer,
        max_sessions: int,
        num_idle_processes: int,
        drain: asyncio.Event,
        host: str,
        port: int,
    ) -> None:
        self._server = server
        self._max_sessions = max_sessions
        self._drain = drain
        # Ready only once warm: a rollout then waits for replacements that can take a session
        # without a cold start. Later dips (a job took the warm process, a new one is forking)
        # do not flap readiness.
        self._warmed = num_idle_processes == 0
        self._host = host
        self._port = port
        app = web.Application()
        app.add_routes([web.get("/readyz", self._readyz), web.get("/metrics", self._metrics)])
        self._runner = web.AppRunner(app, access_log=None)

    async def start(self) -> None:
        await self._runner.setup()
        await web.TCPSite(self._runner, self._host, self._port).start()

    async def aclose(self) -> None:
        await self._runner.cleanup()

    async def _readyz(self, _: web.Request) -> web.Response:
        snap = snapshot(self._server, self._max_sessions, draining=self._drain.is_set())
        if snap.draining:
            return web.json_response({"status": "draining"}, status=503)
        if not snap.registered:
            return web.json_response({"status": "not_registered"}, status=503)
        self._warmed = self._warmed or snap.idle_processes > 0 or snap.active_jobs > 0
        if not self._warmed:
            return web.json_response({"status": "warming"}, status=503)
        return web.json_response({"status": "ready", "active_jobs": snap.active_jobs})

    async def _metrics(self, _: web.Request) -> web.Response:
        snapshot(self._server, self._max_sessions, draining=self._drain.is_set())
        # the default registry also holds the framework's worker metrics (load, job processes)
        return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})
