"""Ending sessions: by the API, by LiveKit closing the room, and by the lifecycle sweeper.

Every way a session ends goes through :func:`finish`: the room is closed (so the presenter
leaves with everyone), the session marked ``ended`` once with its reason, and a
``session.ended`` audit event recorded; the database raises the integrator webhooks
(``session.ended``, then ``transcript.ready``) in the same transaction.

The sweeper ends sessions nobody ended: open longer than ``PODIUM_SESSION_MAX_DURATION_SECONDS``
(``max_duration``), active with nobody speaking for ``PODIUM_SESSION_IDLE_TIMEOUT_SECONDS``
(``idle_timeout``), or never joined within ``PODIUM_SESSION_NO_SHOW_SECONDS`` (``no_show``).
A session everyone left is closed by LiveKit after the room's empty timeout
(``PODIUM_ROOM_EMPTY_TIMEOUT_SECONDS``) and its ``room_finished`` webhook (``room_finished``).
"""

from __future__ import annotations

import asyncio
import logging
from uuid import UUID

import asyncpg

from control_plane.background import BackgroundLoop
from control_plane.errors import UpstreamUnavailable
from control_plane.livekit_gateway import LiveKitGateway
from control_plane.sessions import repository
from shared.settings import ControlPlaneSettings

logger = logging.getLogger(__name__)


async def finish(
    pool: asyncpg.Pool,
    livekit: LiveKitGateway | None,
    row: asyncpg.Record,
    reason: str,
    *,
    actor: str,
) -> asyncpg.Record | None:
    """End the session; returns its row if this call ended it (None: it had ended already).
    ``livekit`` None: the room is gone already (LiveKit said so)."""
    if livekit is not None:
        # Close the room first: if LiveKit refuses, the session stays live and can be retried.
        await repository.note_ending(pool, row["id"], reason)
        try:
            await livekit.delete_room(row["room"])
        except UpstreamUnavailable:
            await repository.note_ending(pool, row["id"], None)
            raise
    async with pool.acquire() as conn, conn.transaction():
        ended = await repository.mark_ended(conn, row["id"], reason)
        if ended is None:
            return None
        await repository.insert_audit_event(
            conn,
            tenant_id=row["tenant_id"],
            session_id=row["id"],
            actor=actor,
            type="session.ended",
            data={"reason": reason},
        )
    logger.info("session ended", extra={"session_id": str(row["id"]), "reason": reason})
    return ended


async def overdue(pool: asyncpg.Pool, settings: ControlPlaneSettings) -> list[tuple[UUID, str]]:
    rows = await pool.fetch(
        """
        SELECT id, CASE
            WHEN coalesce(started_at, created_at) < now() - make_interval(secs => $1)
                THEN 'max_duration'
            WHEN status = 'active'
                 AND coalesce(last_activity_at, started_at) < now() - make_interval(secs => $2)
                THEN 'idle_timeout'
            WHEN status = 'created' AND created_at < now() - make_interval(secs => $3)
                THEN 'no_show'
        END AS reason
        FROM sessions
        WHERE status <> 'ended' AND (
            coalesce(started_at, created_at) < now() - make_interval(secs => $1)
            OR (status = 'active'
                AND coalesce(last_activity_at, started_at) < now() - make_interval(secs => $2))
            OR (status = 'created' AND created_at < now() - make_interval(secs => $3)))
        ORDER BY created_at LIMIT 100
        """,
        settings.session_max_duration_seconds,
        settings.session_idle_timeout_seconds,
        settings.session_no_show_seconds,
    )
    return [(r["id"], r["reason"]) for r in rows]


class LifecycleSweeper(BackgroundLoop):
    def __init__(
        self, pool: asyncpg.Pool, livekit: LiveKitGateway, settings: ControlPlaneSettings
    ) -> None:
        self._pool = pool
        self._livekit = livekit
        self._settings = settings

    name = "session_lifecycle"

    async def sweep(self) -> int:
        ended = 0
        for session_id, reason in await overdue(self._pool, self._settings):
            row = await repository.get_by_id(self._pool, session_id)
            if row is None:
                continue
            try:
                if await finish(self._pool, self._livekit, row, reason, actor="control_plane"):
                    ended += 1
            except UpstreamUnavailable:
                logger.warning(
                    "could not close an overdue session's room; retrying next sweep",
                    extra={"session_id": str(session_id), "reason": reason},
                )
        return ended

    async def _run(self) -> None:
        while True:
            try:
                await self.sweep()
            except Exception:  # one bad round (Postgres, LiveKit) must not stop the sweeper
                logger.exception("session lifecycle sweep failed")
            await asyncio.sleep(self._settings.lifecycle_sweep_seconds)
