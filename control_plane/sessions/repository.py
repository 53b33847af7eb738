"""SQL for sessions and their audit events. Every read is scoped to a tenant."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

_COLUMNS = (
    "id, tenant_id, room, status, deck_id, participant_name, metadata, created_at, "
    "started_at, ended_at, end_reason, record, recording_key, recording_bytes"
)


async def insert_session(
    conn: asyncpg.Connection,
    *,
    session_id: UUID,
    tenant_id: UUID,
    room: str,
    deck_id: UUID | None,
    participant_name: str | None,
    metadata: dict[str, Any],
    record: bool | None = None,
    dispatched: bool = True,
) -> asyncpg.Record:
    """``record`` None: the tenant's default (``tenants.record_sessions``). ``dispatched``
    False: the presenter is sent when the first participant joins (dispatch count 0)."""
    row: asyncpg.Record = await conn.fetchrow(
        f"""
        INSERT INTO sessions (id, tenant_id, room, deck_id, participant_name, metadata, record,
                              dispatch_count)
        VALUES ($1, $2, $3, $4, $5, $6,
                coalesce($7, (SELECT record_sessions FROM tenants WHERE id = $2)), $8)
        RETURNING {_COLUMNS}
        """,
        session_id,
        tenant_id,
        room,
        deck_id,
        participant_name,
        metadata,
        record,
        1 if dispatched else 0,
    )
    return row


async def insert_created_session(
    conn: asyncpg.Connection,
    *,
    session_id: UUID,
    tenant_id: UUID,
    room: str,
    deck_id: UUID | None,
    participant_name: str | None,
    metadata: dict[str, Any],
    record: bool | None,
    dispatched: bool,
    language: str | None = None,
) -> None:
    """The new session and its ``session.created`` event, in one statement (the caller holds
    the tenant's lock across it: one round trip, not two). See :func:`insert_session`.
    ``language`` None: the deck's (read when the presenter loads the session)."""
    await conn.execute(
        """
        WITH created AS (
            INSERT INTO sessions (id, tenant_id, room, deck_id, participant_name, metadata,
                                  record, dispatch_count, language)
            VALUES ($1, $2, $3, $4, $5, $6,
                    coalesce($7, (SELECT record_sessions FROM tenants WHERE id = $2)), $8, $10)
            RETURNING id, tenant_id
        )
        INSERT INTO audit_events (tenant_id, session_id, actor, type, data)
        SELECT tenant_id, id, 'api', 'session.created', $9::jsonb FROM created
        """,
        session_id,
        tenant_id,
        room,
        deck_id,
        participant_name,
        metadata,
        record,
        1 if dispatched else 0,
        {"room": room},
        language,
    )


async def lock_tenant(conn: asyncpg.Connection, tenant_id: UUID) -> None:
    """Serialise this transaction with the tenant's other session creations (any replica)."""
    await conn.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended($1::uuid::text, 0))", tenant_id
    )


async def count_open_for_tenant(conn: asyncpg.Connection | asyncpg.Pool, tenant_id: UUID) -> int:
    n = await conn.fetchval(
        "SELECT count(*) FROM sessions WHERE tenant_id = $1 AND status <> 'ended'", tenant_id
    )
    return int(n)


async def waiting_for_presenter(
    conn: asyncpg.Connection | asyncpg.Pool, *, older_than_s: float, younger_than_s: float
) -> list[asyncpg.Record]:
    """Dispatched sessions whose presenter has not joined yet, oldest first (bounded)."""
    rows: list[asyncpg.Record] = await conn.fetch(
        """
        SELECT id, tenant_id, room, dispatch_count FROM sessions
        WHERE status = 'created' AND dispatch_count >= 1
          AND created_at < now() - make_interval(secs => $1)
          AND created_at > now() - make_interval(secs => $2)
        ORDER BY created_at LIMIT 100
        """,
        older_than_s,
        younger_than_s,
    )
    return rows


async def claim_first_dispatch(
    conn: asyncpg.Connection | asyncpg.Pool, session_id: UUID
) -> asyncpg.Record | None:
    """Count the first dispatch of a session created without one; None if it had one."""
    row: asyncpg.Record | None = await conn.fetchrow(
        f"""
        UPDATE sessions SET dispatch_count = 1
        WHERE id = $1 AND status = 'created' AND dispatch_count = 0
        RETURNING {_COLUMNS}
        """,
        session_id,
    )
    return row


async def unclaim_first_dispatch(conn: asyncpg.Connection | asyncpg.Pool, session_id: UUID) -> None:
    await conn.execute(
        "UPDATE sessions SET dispatch_count = 0 WHERE id = $1 AND dispatch_count = 1", session_id
    )


async def get_for_tenant(
    conn: asyncpg.Connection | asyncpg.Pool, tenant_id: UUID, session_id: UUID
) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM sessions WHERE id = $1 AND tenant_id = $2",
        session_id,
        tenant_id,
    )
    return row


async def get_by_id(
    conn: asyncpg.Connection | asyncpg.Pool, session_id: UUID
) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM sessions WHERE id = $1", session_id
    )
    return row


async def mark_ended(
    conn: asyncpg.Connection | asyncpg.Pool, session_id: UUID, reason: str
) -> asyncpg.Record | None:
    """End the session once; returns the row only if this call ended it."""
    row: asyncpg.Record | None = await conn.fetchrow(
        f"""
        UPDATE sessions SET status = 'ended', ended_at = now(), end_reason = $2
        WHERE id = $1 AND status <> 'ended'
        RETURNING {_COLUMNS}
        """,
        session_id,
        reason,
    )
    return row


async def note_ending(
    conn: asyncpg.Connection | asyncpg.Pool, session_id: UUID, reason: str | None
) -> None:
    """Say why a live session is about to end (None: it is not, after all), so LiveKit's
    room_finished webhook for the room we are closing records our reason, not its own."""
    await conn.execute(
        "UPDATE sessions SET end_reason = $2 WHERE id = $1 AND status <> 'ended'",
        session_id,
        reason,
    )


async def mark_started(conn: asyncpg.Connection | asyncpg.Pool, session_id: UUID) -> None:
    await conn.execute(
        """
        UPDATE sessions SET status = 'active', started_at = now()
        WHERE id = $1 AND status = 'created'
        """,
        session_id,
    )


async def credential_state(
    conn: asyncpg.Connection | asyncpg.Pool, session_id: UUID, *, grace_s: float
) -> asyncpg.Record | None:
    """What a worker credential is checked against: the current dispatch, whether the session
    ended, and whether its records are closed (complete, or ``grace_s`` past the end)."""
    row: asyncpg.Record | None = await conn.fetchrow(
        """
        SELECT dispatch_count, status,
               status = 'ended' AND (records_complete_at IS NOT NULL
                                     OR coalesce(ended_at < now() - make_interval(secs => $2),
                                                 true))
                 AS records_closed
        FROM sessions WHERE id = $1
        """,
        session_id,
        grace_s,
    )
    return row


async def count_dispatch(
    conn: asyncpg.Connection | asyncpg.Pool, session_id: UUID, *, limit: int
) -> int | None:
    """Count one more dispatch of a live session; None when it has had ``limit`` already."""
    count: int | None = await conn.fetchval(
        """
        UPDATE sessions SET dispatch_count = dispatch_count + 1
        WHERE id = $1 AND status <> 'ended' AND dispatch_count < $2
        RETURNING dispatch_count
        """,
        session_id,
        limit,
    )
    return count


async def uncount_dispatch(conn: asyncpg.Connection | asyncpg.Pool, session_id: UUID) -> None:
    """Take back a dispatch counted by :func:`count_dispatch` that could not be sent."""
    await conn.execute(
        "UPDATE sessions SET dispatch_count = dispatch_count - 1 "
        "WHERE id = $1 AND dispatch_count > 1",
        session_id,
    )


async def insert_audit_event(
    conn: asyncpg.Connection | asyncpg.Pool,
    *,
    tenant_id: UUID,
    session_id: UUID | None,
    actor: str,
    type: str,
    data: dict[str, Any],
) -> None:
    await conn.execute(
        """
        INSERT INTO audit_events (tenant_id, session_id, actor, type, data)
        VALUES ($1, $2, $3, $4, $5)
        """,
        tenant_id,
        session_id,
        actor,
        type,
        data,
    )


async def list_for_tenant(
    conn: asyncpg.Connection | asyncpg.Pool,
    tenant_id: UUID,
    *,
    status: str | None,
    deck_id: UUID | None,
    created_after: datetime | None,
    created_before: datetime | None,
    before: tuple[datetime, UUID] | None,
    limit: int,
) -> list[asyncpg.Record]:
    """The tenant's sessions, newest first, filtered; ``before`` is the keyset cursor."""
    rows: list[asyncpg.Record] = await conn.fetch(
        f"""
        SELECT {_COLUMNS} FROM sessions
        WHERE tenant_id = $1
          AND ($2::text IS NULL OR status = $2)
          AND ($3::uuid IS NULL OR deck_id = $3)
          AND ($4::timestamptz IS NULL OR created_at >= $4)
          AND ($5::timestamptz IS NULL OR created_at < $5)
          AND ($6::timestamptz IS NULL OR (created_at, id) < ($6, $7::uuid))
        ORDER BY created_at DESC, id DESC
        LIMIT $8
        """,
        tenant_id,
        status,
        deck_id,
        created_after,
        created_before,
        before[0] if before else None,
        before[1] if before else None,
        limit,
    )
    return rows


async def set_recording(
    conn: asyncpg.Connection | asyncpg.Pool, session_id: UUID, key: str, size: int
) -> None:
    await conn.execute(
        "UPDATE sessions SET recording_key = $2, recording_bytes = $3 WHERE id = $1",
        session_id,
        key,
        size,
    )


async def language_of(conn: asyncpg.Connection | asyncpg.Pool, session_id: UUID) -> str:
    """The session's language: set at creation, else its deck's, else English."""
    language = await conn.fetchval(
        """SELECT coalesce(s.language, d.language, 'en')
        FROM sessions s LEFT JOIN decks d ON d.id = s.deck_id WHERE s.id = $1""",
        session_id,
    )
    return str(language or "en")
