"""SQL for slide state and transitions. A change is one statement: no read-then-write window."""

from __future__ import annotations

from typing import TypeAlias
from uuid import UUID

import asyncpg

Conn: TypeAlias = asyncpg.Connection | asyncpg.Pool

# Every read of a state answers these columns, so one mapping turns any of them into a record.
_STATE = """
    s.id AS session_id, s.tenant_id, s.room, s.status, st.deck_id, st.slide_count, {index},
    {version}, {paused}, {locked}, {changed_by}, {changed_at}, sl.title, sl.image_key
"""
_CURRENT = _STATE.format(
    index="st.index",
    version="st.version",
    paused="st.paused",
    locked="st.locked",
    changed_by="st.changed_by",
    changed_at="st.changed_at",
)
# The state as a recorded transition left it.
_AT_TRANSITION = _STATE.format(
    index="t.to_index AS index",
    version="t.version",
    paused="t.paused",
    locked="t.locked",
    changed_by="t.actor AS changed_by",
    changed_at="t.created_at AS changed_at",
)


async def start(conn: Conn, session_id: UUID, deck_id: UUID) -> asyncpg.Record | None:
    """Slide 1, version 1, for a new session (in the caller's transaction); None when the deck
    has no slides."""
    row: asyncpg.Record | None = await conn.fetchrow(
        f"""
        WITH deck AS (SELECT count(*)::int AS n FROM slides WHERE deck_id = $2),
        st AS (
            INSERT INTO slide_states
                (session_id, deck_id, slide_count, index, version, paused, changed_by)
            SELECT $1, $2, n, 1, 1, false, 'api' FROM deck WHERE n > 0
            RETURNING *
        ),
        recorded AS (
            INSERT INTO slide_transitions (session_id, version, action, from_index, to_index,
                paused, actor, reason, idempotency_key, created_at)
            SELECT session_id, version, 'start', NULL, index, paused, changed_by,
                'session created', 'session-start', changed_at
            FROM st
        )
        SELECT {_CURRENT}
        FROM st JOIN sessions s ON s.id = st.session_id
        LEFT JOIN slides sl ON sl.deck_id = st.deck_id AND sl.index = st.index
        """,
        session_id,
        deck_id,
    )
    return row


async def apply(
    conn: Conn,
    *,
    session_id: UUID,
    tenant_id: UUID | None,
    room: str | None,
    action: str,
    index: int | None,
    expected_version: int | None,
    actor: str,
    reason: str | None,
    idempotency_key: str,
    bound_by_lock: bool = False,
) -> asyncpg.Record | None:
    """Apply one change and record it, atomically; None when nothing matched (the session is
    unknown or ended, has no deck, the version moved, the move is impossible, or the state is
    locked and the change is ``bound_by_lock``: a participant's move, not the host's).

    The row lock taken by the UPDATE serialises concurrent changes, and READ COMMITTED re-checks
    the WHERE clause against the newest row, so relative moves never lose an update. A reused
    idempotency key fails the INSERT, which undoes the UPDATE too.
    """
    row: asyncpg.Record | None = await conn.fetchrow(
        f"""
        WITH applied AS (
            UPDATE slide_states st SET
                previous_index = st.index,
                index = CASE $4
                    WHEN 'next' THEN st.index + 1
                    WHEN 'previous' THEN st.index - 1
                    WHEN 'first' THEN 1
                    WHEN 'last' THEN st.slide_count
                    WHEN 'goto' THEN $5
                    ELSE st.index END,
                paused = CASE $4
                    WHEN 'pause' THEN true
                    WHEN 'resume' THEN false
                    ELSE st.paused END,
                locked = CASE $4
                    WHEN 'lock' THEN true
                    WHEN 'unlock' THEN false
                    ELSE st.locked END,
                version = st.version + 1,
                changed_by = $7,
                changed_at = now()
            WHERE st.session_id = $1
              AND ($6::bigint IS NULL OR st.version = $6)
              AND CASE $4
                    WHEN 'next' THEN st.index < st.slide_count
                    WHEN 'previous' THEN st.index > 1
                    WHEN 'goto' THEN $5 BETWEEN 1 AND st.slide_count
                    ELSE true END
              AND NOT ($10 AND st.locked)
              AND EXISTS (
                SELECT 1 FROM sessions s WHERE s.id = $1 AND s.status <> 'ended'
                  AND ($2::uuid IS NULL OR s.tenant_id = $2)
                  AND ($3::text IS NULL OR s.room = $3))
            RETURNING st.*
        ),
        recorded AS (
            INSERT INTO slide_transitions (session_id, version, action, from_index, to_index,
                paused, locked, actor, reason, idempotency_key, created_at)
            SELECT session_id, version, $4, previous_index, index, paused, locked, $7, $8, $9,
                changed_at
            FROM applied
        )
        SELECT {_CURRENT}
        FROM applied st JOIN sessions s ON s.id = st.session_id
        LEFT JOIN slides sl ON sl.deck_id = st.deck_id AND sl.index = st.index
        """,
        session_id,
        tenant_id,
        room,
        action,
        index,
        expected_version,
        actor,
        reason,
        idempotency_key,
        bound_by_lock,
    )
    return row


async def current(conn: Conn, session_id: UUID) -> asyncpg.Record | None:
    """The session (tenant, room, status) with its slide state, which is NULL without a deck."""
    row: asyncpg.Record | None = await conn.fetchrow(
        f"""
        SELECT {_CURRENT}
        FROM sessions s
        LEFT JOIN slide_states st ON st.session_id = s.id
        LEFT JOIN slides sl ON sl.deck_id = st.deck_id AND sl.index = st.index
        WHERE s.id = $1
        """,
        session_id,
    )
    return row


async def by_idempotency_key(conn: Conn, session_id: UUID, key: str) -> asyncpg.Record | None:
    """The state a recorded change produced, with what it asked for (action, actor)."""
    row: asyncpg.Record | None = await conn.fetchrow(
        f"""
        SELECT {_AT_TRANSITION}, t.action
        FROM slide_transitions t
        JOIN sessions s ON s.id = t.session_id
        LEFT JOIN slide_states st ON st.session_id = t.session_id
        LEFT JOIN slides sl ON sl.deck_id = st.deck_id AND sl.index = t.to_index
        WHERE t.session_id = $1 AND t.idempotency_key = $2
        """,
        session_id,
        key,
    )
    return row


async def list_transitions(
    conn: Conn, session_id: UUID, *, after_version: int, limit: int
) -> list[asyncpg.Record]:
    return list(
        await conn.fetch(
            """
            SELECT version, action, from_index, to_index, paused, locked, actor, reason,
                idempotency_key, created_at
            FROM slide_transitions
            WHERE session_id = $1 AND version > $2
            ORDER BY version
            LIMIT $3
            """,
            session_id,
            after_version,
            limit,
        )
    )


async def live_states(conn: Conn, limit: int) -> list[asyncpg.Record]:
    """Current states of sessions that have not ended, most recently changed first."""
    return list(
        await conn.fetch(
            f"""
            SELECT {_CURRENT}
            FROM slide_states st JOIN sessions s ON s.id = st.session_id
            LEFT JOIN slides sl ON sl.deck_id = st.deck_id AND sl.index = st.index
            WHERE s.status <> 'ended'
            ORDER BY st.changed_at DESC
            LIMIT $1
            """,
            limit,
        )
    )
