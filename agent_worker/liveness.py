"""The presenting job's heartbeat: the control plane sends the session to another worker when
it stops (see control_plane/sessions/liveness.py), and tells a job that was replaced to leave."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from .control_plane_client import ControlPlaneError, SessionApi

logger = logging.getLogger(__name__)


class JobHeartbeat:
    def __init__(
        self,
        deck: SessionApi,
        job_id: str,
        *,
        interval_s: float,
        on_superseded: Callable[[], None],
    ) -> None:
        self._deck = deck
        self._job_id = job_id
        self._interval_s = interval_s
        self._on_superseded = on_superseded
        self._task = asyncio.create_task(self._run(), name="job_heartbeat")

    async def _run(self) -> None:
        """One report per interval on a fixed schedule: a slow answer delays no later report
        (the control plane takes a job silent for 3 intervals as lost)."""
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while True:
            next_at += self._interval_s
            try:
                owner = await asyncio.wait_for(
                    self._deck.report_alive(self._job_id), self._interval_s
                )
            except TimeoutError:
                logger.warning("reporting the job alive took longer than its interval")
            except ControlPlaneError as exc:
                # The control plane may be restarting; it waits a silence period after start
                # before it takes any session as lost, and the next report catches up.
                logger.warning("could not report the job alive", extra={"status": exc.status_code})
            else:
                if not owner:
                    logger.warning("another job presents this session now; leaving")
                    self._on_superseded()
                    return
            await asyncio.sleep(max(0.0, next_at - loop.time()))

    async def aclose(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
