"""Stateless resume: when a session's worker is lost, send the session to another worker.

Workers keep nothing a session needs: its slide and conversation live here. So when the
presenter leaves a room that still has people in it while the session is live (its process was
killed, its node died), the control plane dispatches the presenter again; the new job sees the
session ``resumed`` and picks up from the stored slide and conversation. LiveKit tells us through
its ``participant_left`` webhook; the open-source server never re-sends a dispatch itself.
"""

from __future__ import annotations

import logging
from uuid import UUID

import asyncpg
from redis.asyncio import Redis

from control_plane.livekit_gateway import LiveKitGateway
from control_plane.sessions import repository
from shared.credentials import mint_session_credential
from shared.schemas import DispatchMetadata
from shared.settings import ControlPlaneSettings

logger = logging.getLogger(__name__)

ROOM_PREFIX = "podium-"
_SEEN_TTL_SECONDS = 3600


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

    async def agent_left(self, room: str, agent_sid: str) -> bool:
        """Re-dispatch the session if its presenter was lost mid-session; True when it did."""
        session_id = session_of_room(room)
        if session_id is None:
            return False
        # LiveKit may deliver a webhook more than once: act once per departed agent.
        if not await self._redis.set(
            f"podium:agent-left:{agent_sid}", "1", nx=True, ex=_SEEN_TTL_SECONDS
        ):
            return False
        row = await repository.get_by_id(self._pool, session_id)
        if row is None or row["status"] != "active":
            return False  # ended (the agent left with everyone), or never started
        people, agents = await self._livekit.room_occupants(room)
        if people == 0:
            return False  # everyone left too: nobody to present to
        if agents > 0:
            return False  # another presenter is already there
        count = await repository.count_dispatch(
            self._pool, session_id, limit=1 + self._settings.max_redispatches
        )
        if count is None:
            logger.error(
                "session lost its worker too often, not dispatching again",
                extra={"session_id": str(session_id)},
            )
            await repository.insert_audit_event(
                self._pool,
                tenant_id=row["tenant_id"],
                session_id=session_id,
                actor="control_plane",
                type="agent.lost",
                data={"agent_sid": agent_sid, "redispatched": False},
            )
            return False
        credential = mint_session_credential(
            self._settings.internal_secret.get_secret_value(),
            session_id,
            self._settings.worker_credential_ttl_seconds,
        )
        metadata = DispatchMetadata(session_id=session_id, credential=credential)
        await self._livekit.dispatch_agent(room, metadata.model_dump_json())
        await repository.insert_audit_event(
            self._pool,
            tenant_id=row["tenant_id"],
            session_id=session_id,
            actor="control_plane",
            type="agent.lost",
            data={"agent_sid": agent_sid, "redispatched": True, "dispatch": count},
        )
        logger.warning(
            "session lost its worker; dispatched it again",
            extra={"session_id": str(session_id), "dispatch": count},
        )
        return True
