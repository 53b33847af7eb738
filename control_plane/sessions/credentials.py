"""The dispatch metadata a presenter job receives, and the checks its credential passes.

A session credential names the dispatch it was minted for (the session's dispatch count then):
a re-dispatch counts one more, so the previous job's credential is ``superseded``. Once the
session ended and its job's records are in (the job said so, or the grace passed), its writes
are refused with ``session_ended``.
"""

from __future__ import annotations

from uuid import UUID

import asyncpg

from control_plane.errors import Conflict, NotFound, SessionEnded
from control_plane.sessions import repository
from shared.credentials import SessionClaims, mint_session_credential
from shared.schemas import DispatchMetadata
from shared.settings import ControlPlaneSettings


class Superseded(Conflict):
    code = "superseded"


def mint_for(settings: ControlPlaneSettings, session_id: UUID, dispatch: int) -> str:
    return mint_session_credential(
        settings.session_credential_key_ring(),
        session_id,
        dispatch,
        settings.worker_credential_ttl_seconds,
    )


def dispatch_metadata(settings: ControlPlaneSettings, session_id: UUID, dispatch: int) -> str:
    credential = mint_for(settings, session_id, dispatch)
    return DispatchMetadata(session_id=session_id, credential=credential).model_dump_json()


async def check_binding(
    pool: asyncpg.Pool, settings: ControlPlaneSettings, claims: SessionClaims, *, write: bool
) -> asyncpg.Record:
    """The session's credential state, when this credential may still act on it."""
    row = await repository.credential_state(
        pool, claims.session_id, grace_s=settings.records_grace_seconds
    )
    if row is None:
        raise NotFound(f"Session {claims.session_id} was not found.")
    if row["dispatch_count"] != claims.dispatch:
        raise Superseded("The session was dispatched to another job; leave the room.")
    if write and row["records_closed"]:
        raise SessionEnded(f"Session {claims.session_id} has ended; its records are closed.")
    return row
