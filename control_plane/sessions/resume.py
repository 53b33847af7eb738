"""Stateless resume: when a session's worker is lost, send the session to another worker.

Workers keep nothing a session needs: its slide and conversation live here. So when a session
that still has people in it loses its presenter (its process was killed, its node died), the
control plane dispatches the presenter again; the new job sees the session ``resumed`` and picks
up from the stored slide and conversation. Two signals say a presenter is gone: its job stopped
reporting (``liveness.py``, within seconds) and LiveKit's ``participant_left`` webhook (after
LiveKit's ICE timeouts, ~20 s). The open-source server never re-sends a dispatch itself.
"""

from __future__ import annotations

import logging
from uuid import UUID

import asyncpg
from redis.asyncio import Redis

from control_plane.livekit_gateway import LiveKitGateway
from control_plane.sessions import repository
from control_plane.sessions.credentials import dispatch_metadata
from control_plane.sessions.liveness import JobLiveness, TryLater
from shared.settings import ControlPlaneSettings

logger = logging.getLogger(__name__)

ROOM_PREFIX = "podium-"
_SEEN_TTL_SECONDS = 3600
# After a re-dispatch, the other signal about the same loss (the webhook ~20 s after the
# watchdog, or the reverse) must not send a third presenter: quiet until the new job reports
# (JobLiveness.beat ends it), or this long when it never does.
_REDISPATCH_QUIET_SECONDS = 60


def session_of_room(room: str) -> UUID | None:
    if not room.startswith(ROOM_PREFIX):
        return None
    try:
        return UUID(room.removeprefix(ROOM_PREFIX))
    except ValueError:
        return None


class Resumer:
    def __init__(
        self,
        pool: asyncpg.Pool,
        redis: Redis,
        livekit: LiveKitGateway,
        settings: ControlPlaneSettings,
    ) -> None:
        self._pool = pool
        self._redis = redis
        self._livekit = livekit
        self._settings = settings
        self._liveness = JobLiveness(redis, silence_s=settings.job_silence_seconds)

    async def agent_left(self, room: str, agent_sid: str) -> bool:
        """LiveKit says a presenter left: re-dispatch if the session lost it mid-way."""
        session_id = session_of_room(room)
        if session_id is None:
            return False
        # LiveKit may deliver a webhook more than once: act once per departed agent. If acting
        # fails, forget it, so LiveKit's retry of this webhook is not taken for a duplicate.
        seen = f"podium:agent-left:{agent_sid}"
        if not await self._redis.set(seen, "1", nx=True, ex=_SEEN_TTL_SECONDS):
            return False
        try:
            return await self._redispatch(
                session_id, cause="agent_left", detail={"agent_sid": agent_sid}, replaced=False
            )
        except BaseException:
            await self._redis.delete(seen)
            raise

    async def job_silent(self, session_id: UUID) -> bool:
        """The session's job stopped reporting: its presenter, if still listed in the room, is
        a ghost LiveKit has not dropped yet, so another presenter is sent regardless.
        Raises :class:`TryLater` when nobody is in the room right now (they may be reconnecting)."""
        return await self._redispatch(session_id, cause="job_silent", detail={}, replaced=True)

    async def _redispatch(
        self, session_id: UUID, *, cause: str, detail: dict[str, str], replaced: bool
    ) -> bool:
        row = await repository.get_by_id(self._pool, session_id)
        if row is None or row["status"] != "active":
            return False  # ended (the agent left with everyone), or never started
        people, agents = await self._livekit.room_occupants(row["room"])
        if people == 0:
            if replaced:
                raise TryLater  # the watchdog looks again: they may be reconnecting
            return False  # everyone left too: nobody to present to
        if agents > 0 and not replaced:
            return False  # another presenter is already there
        quiet = self._liveness.redispatched_key(session_id)
        if not await self._redis.set(quiet, cause, nx=True, ex=_REDISPATCH_QUIET_SECONDS):
            # The other signal about this loss already sent a presenter that has not reported
            # yet. The watchdog looks again: should that presenter never arrive, the session is
            # sent once more when the quiet period is over.
            if replaced:
                raise TryLater
            return False
        try:
            return await self._dispatch(row, cause=cause, detail=detail)
        except BaseException:
            await self._redis.delete(quiet)
            raise

    async def _dispatch(self, row: asyncpg.Record, *, cause: str, detail: dict[str, str]) -> bool:
        session_id: UUID = row["id"]
        count = await repository.count_dispatch(
            self._pool, session_id, limit=1 + self._settings.max_redispatches
        )
        audit = {"cause": cause, **detail}
        if count is None:
            logger.error(
                "session lost its worker too often, not dispatching again",
                extra={"session_id": str(session_id)},
            )
            await self._audit(row, {**audit, "redispatched": False})
            return False
        await self._liveness.release(session_id)  # the next job to report owns the session
        # The new job's credential is bound to this dispatch: the lost job's is superseded.
        metadata = dispatch_metadata(self._settings, session_id, count)
        try:
            await self._livekit.dispatch_agent(row["room"], metadata)
        except BaseException:
            await repository.uncount_dispatch(self._pool, session_id)  # it did not happen
            raise
        await self._audit(row, {**audit, "redispatched": True, "dispatch": count})
        logger.warning(
            "session lost its worker; dispatched it again",
            extra={"session_id": str(session_id), "cause": cause, "dispatch": count},
        )
        return True

    async def _audit(self, row: asyncpg.Record, data: dict[str, object]) -> None:
        await repository.insert_audit_event(
            self._pool,
            tenant_id=row["tenant_id"],
            session_id=row["id"],
            actor="control_plane",
            type="agent.lost",
            data=data,
        )
