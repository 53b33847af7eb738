"""Sending the presenter again when livekit-server dropped a new session's dispatch.

livekit-server offers a dispatch to the workers once; if none accepts it (all full by their own
reckoning, which can lag the heartbeats admission reads by a second or two), the dispatch is
dropped and never sent again, and the session would wait for a presenter that never comes.
Every ``PODIUM_DISPATCH_CHECK_SECONDS`` this loop looks at the sessions still waiting for their
presenter (``created``, within the join window) and dispatches again those whose dispatches hold
no live job. A second presenter sent by a race is harmless: the first job to report owns the
session and the other leaves (``liveness.py``).
"""

from __future__ import annotations

import asyncio
import logging

import asyncpg
from prometheus_client import Counter

from control_plane.background import BackgroundLoop
from control_plane.errors import UpstreamUnavailable
from control_plane.livekit_gateway import LiveKitGateway
from control_plane.sessions import repository
from control_plane.sessions.credentials import dispatch_metadata
from shared.settings import ControlPlaneSettings

logger = logging.getLogger(__name__)

# A job shows in its dispatch's state only once the worker reports it, which on a worker still
# warming a process for it takes seconds: sending again sooner gave one room several jobs (and
# took the slots other sessions were waiting for).
SETTLE_S = 10.0

DISPATCH_RETRIES = Counter(
    "podium_dispatch_retries_total",
    "Dispatches sent again because livekit-server dropped a new session's (no worker took it).",
)


class DispatchWatchdog(BackgroundLoop):
    name = "dispatch_watchdog"

    def __init__(
        self, pool: asyncpg.Pool, livekit: LiveKitGateway, settings: ControlPlaneSettings
    ) -> None:
        self._pool = pool
        self._livekit = livekit
        self._settings = settings

    async def check(self) -> int:
        """Dispatch again every waiting session whose dispatch no worker holds; how many."""
        period = self._settings.dispatch_check_seconds
        waiting = await repository.waiting_for_presenter(
            self._pool, older_than_s=period, younger_than_s=self._settings.session_no_show_seconds
        )
        sent = 0
        for row in waiting:
            settled = await self._livekit.presenter_dispatched(row["room"], settle_s=SETTLE_S)
            if settled is not False:
                continue  # a worker has it, it is still being offered, or nobody asked for it
            # The dropped dispatch reached no job: the new one keeps its dispatch binding.
            metadata = dispatch_metadata(self._settings, row["id"], row["dispatch_count"])
            await self._livekit.dispatch_agent(row["room"], metadata)
            await repository.insert_audit_event(
                self._pool,
                tenant_id=row["tenant_id"],
                session_id=row["id"],
                actor="control_plane",
                type="dispatch.retried",
                data={"reason": "no worker took the dispatch"},
            )
            DISPATCH_RETRIES.inc()
            logger.warning(
                "no worker took a dispatch; sent it again", extra={"session_id": str(row["id"])}
            )
            sent += 1
        return sent

    async def _run(self) -> None:
        while True:
            try:
                await self.check()
            except UpstreamUnavailable:
                logger.warning("could not check dispatches; LiveKit did not answer")
            except Exception:  # one bad round (Postgres) must not stop the loop
                logger.exception("dispatch check failed")
            await asyncio.sleep(self._settings.dispatch_check_seconds)
