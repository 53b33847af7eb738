"""Deleting on request: a whole session (``DELETE /v1/sessions/{id}``) and one person's words
across a tenant's sessions (``POST /v1/erasures``).

Each deletes its rows in one transaction that also lists the asset files to delete and raises
its webhook (``session.deleted``, ``erasure.completed``); the files are deleted once that
committed, and a file that could not be is retried by the retention sweeper
(``control_plane.privacy.files``).
"""

from __future__ import annotations

import hashlib
import logging
from uuid import UUID, uuid4

import asyncpg

from control_plane.errors import NotFound
from control_plane.privacy import files, repository
from control_plane.privacy.schemas import ErasureReport
from control_plane.storage import AssetStorage

logger = logging.getLogger(__name__)


def identity_digest(identity: str) -> str:
    return hashlib.sha256(identity.encode()).hexdigest()


async def delete_session(
    pool: asyncpg.Pool, storage: AssetStorage, tenant_id: UUID, session_id: UUID
) -> dict[str, int]:
    """Every row the ended session left, its files, then the session; counts of each."""
    async with pool.acquire() as conn, conn.transaction():
        if await repository.lock_session(conn, tenant_id, session_id) is None:
            raise NotFound(f"Session {session_id} was not found.")
        counts, keys = await repository.delete_session(conn, tenant_id, session_id)
        listed = await repository.queue_asset_deletions(conn, tenant_id, keys, "session_deleted")
        await repository.webhook_event(
            conn,
            tenant_id,
            "session.deleted",
            f"session.deleted:{session_id}",
            {"session_id": str(session_id), "deleted": counts},
        )
    deleted, _ = await files.delete_listed(pool, storage, ids=listed)
    counts["files"] = sum(deleted.values())
    logger.info("session deleted", extra={"session_id": str(session_id), "deleted": counts})
    return counts


async def erase(
    pool: asyncpg.Pool, storage: AssetStorage, tenant_id: UUID, identity: str
) -> ErasureReport:
    """``identity``'s messages and turns in every session of the tenant, the escalations of
    those sessions and the webhook deliveries carrying them, and the recordings of the sessions
    where nobody else spoke."""
    erasure_id = uuid4()
    digest = identity_digest(identity)
    async with pool.acquire() as conn, conn.transaction():
        sessions = await repository.sessions_spoken_in(conn, tenant_id, identity)
        alone = await repository.sole_speaker_sessions(conn, sessions, identity)
        deleted = await repository.erase_words(conn, tenant_id, sessions, identity)
        recordings, keys = await repository.delete_recordings(conn, tenant_id, alone)
        for name, per_session in recordings.items():
            deleted[name] = sum(per_session.values())
        listed = await repository.queue_asset_deletions(conn, tenant_id, keys, "erasure")
        # Each segment row (and a recording stored whole) names one file; the report is
        # written in this transaction, before the files go.
        deleted["files"] = deleted["recording_segments"]
        kept = sorted(set(sessions) - set(alone))
        row = await repository.insert_erasure(
            conn,
            erasure_id=erasure_id,
            tenant_id=tenant_id,
            identity_sha256=digest,
            sessions=sessions,
            recordings_kept=kept,
            deleted=deleted,
        )
        await repository.webhook_event(
            conn,
            tenant_id,
            "erasure.completed",
            f"erasure.completed:{erasure_id}",
            {
                "erasure_id": str(erasure_id),
                "identity_sha256": digest,
                "sessions": [str(s) for s in sessions],
                "recordings_kept": [str(s) for s in kept],
                "deleted": deleted,
                "completed_at": row["completed_at"].isoformat(),
            },
        )
    await files.delete_listed(pool, storage, ids=listed)
    logger.info(
        "erasure completed",
        extra={"erasure_id": str(erasure_id), "sessions": len(sessions), "deleted": deleted},
    )
    return to_report(row, identity)


async def get_erasure(pool: asyncpg.Pool, tenant_id: UUID, erasure_id: UUID) -> ErasureReport:
    row = await repository.get_erasure(pool, tenant_id, erasure_id)
    if row is None:
        raise NotFound(f"Erasure {erasure_id} was not found.")
    return to_report(row, None)


def to_report(row: asyncpg.Record, identity: str | None) -> ErasureReport:
    return ErasureReport(
        erasure_id=row["id"],
        identity=identity,
        identity_sha256=row["identity_sha256"],
        sessions=row["sessions"],
        deleted=row["deleted"],
        recordings_kept=row["recordings_kept"],
        requested_at=row["requested_at"],
        completed_at=row["completed_at"],
    )
