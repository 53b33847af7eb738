"""The agent server: explicit-dispatch registration, and its run / drain / close lifecycle."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable
from functools import partial
from typing import Any

from livekit.agents import AgentServer

from shared.settings import WorkerSettings

from .config import JobConfig
from .heartbeat import FleetReporter
from .job import run_job
from .metrics import OpsServer
from .prewarm import prewarm

logger = logging.getLogger(__name__)


_FULL = 0.999  # the framework requires a threshold below 1 in production mode
# Prewarming a job process (Silero, Whisper) takes ~0.6 s on an idle core, but over 10 s (the
# framework's default limit) on a saturated node, where the process was killed and the worker
# registered with no warm process at all.
_PROCESS_INIT_TIMEOUT_S = 30.0


def session_slot_load(max_sessions: int, server: AgentServer) -> float:
    return min(1.0, len(server.active_jobs) / max_sessions)


class SlotServer(AgentServer):
    """An agent server whose load is its share of session slots in use (``session_slot_load``).

    While it answers a job request the framework counts the job as "reserved" and adds an
    estimate of its load to the current one. With no job running it estimates a job at
    ``load_threshold / num_idle_processes``, i.e. the whole worker with one warm process: a
    second request arriving at an idle worker before the first job launched was answered "not
    available", and livekit-server, finding no other worker, dropped the dispatch, so one of
    several sessions created at once never got its presenter. Here a job is always one slot.
    """

    def __init__(self, *, max_sessions: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._slot_load = 1.0 / max_sessions

    def _get_effective_load(self) -> float:
        return self._worker_load + self._reserved_slots * self._slot_load


def build_server(settings: WorkerSettings, job_config: JobConfig) -> AgentServer:
    server = SlotServer(
        max_sessions=settings.max_sessions,
        ws_url=settings.livekit_url,
        api_key=settings.livekit_api_key,
        api_secret=settings.livekit_api_secret.get_secret_value(),
        host=settings.http_host,
        port=settings.http_port,
        num_idle_processes=settings.num_idle_processes,
        drain_timeout=settings.drain_timeout_seconds,
        initialize_process_timeout=_PROCESS_INIT_TIMEOUT_S,
        # Load is the share of session slots in use, not CPU: on small shared hosts the CPU
        # reading spikes at start-up and made the worker refuse its first job. Capacity per
        # worker comes from the capacity benchmark, and the fleet scales on the same count.
        load_fnc=partial(session_slot_load, settings.max_sessions),
        load_threshold=_FULL,
        # job processes are forked from a forkserver: these are pickled across, so they are
        # module-level functions bound with partial, not closures
        setup_fnc=partial(prewarm, job_config),
        preload_modules=["agent_worker.job"],
    )
    # an agent_name turns off automatic dispatch: only sessions that ask for it get a job
    server.rtc_session(partial(run_job, job_config), agent_name=settings.agent_name)
    return server


class _ShutdownSignals:
    """The first SIGTERM/SIGINT asks for a drain; a second one cuts the drain short."""

    def __init__(self) -> None:
        self.drain = asyncio.Event()
        self.hurry = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._on_signal, sig)

    def _on_signal(self, sig: signal.Signals) -> None:
        if self.drain.is_set():
            logger.warning("second shutdown signal, ending the drain", extra={"signal": sig.name})
            self.hurry.set()
        else:
            logger.info("shutdown signal received, draining", extra={"signal": sig.name})
            self.drain.set()


async def serve(server: AgentServer, settings: WorkerSettings) -> None:
    """Run until a shutdown signal, then drain and close.

    Draining stops the server from accepting jobs and waits, up to the drain timeout, for
    the running ones to end. From the first signal on, ``/readyz`` answers 503 and the
    heartbeat says ``draining``, so neither Kubernetes nor the autoscaler counts this worker
    as capacity while its sessions finish. Raises if the server stops on its own (e.g.
    LiveKit unreachable).
    """
    signals = _ShutdownSignals()
    async with contextlib.AsyncExitStack() as stack:
        reporter = FleetReporter(server, settings, signals.drain)
        stack.push_async_callback(reporter.aclose)
        if settings.ops_port is not None:
            ops = OpsServer(
                server,
                settings.max_sessions,
                settings.num_idle_processes,
                signals.drain,
                settings.http_host,
                settings.ops_port,
            )
            await ops.start()
            stack.push_async_callback(ops.aclose)
        running = asyncio.create_task(server.run(devmode=False), name="agent_server")
        reporting = asyncio.create_task(reporter.run(), name="fleet_heartbeat")
        try:
            # shielded: the server must keep running while it drains
            if await _unless_set(asyncio.shield(running), signals.drain):
                raise RuntimeError("agent server stopped on its own")
            await _drain(server, signals.hurry)
        finally:
            await server.aclose()
            await asyncio.gather(running, return_exceptions=True)
            reporting.cancel()
            await asyncio.gather(reporting, return_exceptions=True)
            await reporter.leave()


async def _drain(server: AgentServer, hurry: asyncio.Event) -> None:
    try:
        if await _unless_set(server.drain(), hurry):
            logger.info("drained, no jobs running")
    except TimeoutError:
        logger.warning("drain timed out, closing with jobs still running")


async def _unless_set(work: Awaitable[None], event: asyncio.Event) -> bool:
    """Await ``work``, giving up if ``event`` is set first. True when ``work`` finished.

    Whichever loses is cancelled and awaited, so neither outlives this call; an exception
    from ``work`` propagates.
    """
    work_task = asyncio.ensure_future(work)
    event_task = asyncio.create_task(event.wait())
    try:
        await asyncio.wait({work_task, event_task}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        work_task.cancel()
        event_task.cancel()
        await asyncio.gather(work_task, event_task, return_exceptions=True)
    if work_task.cancelled():
        return False
    work_task.result()
    return True
