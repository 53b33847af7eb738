"""SQL for a session's recording segments."""

from __future__ import annotations

from uuid import UUID

import asyncpg

_COLUMNS = "seq, job_id, n, started_at_s, duration_s, bytes, asset_key"


async def find_segment(
    conn: asyncpg.Connection | asyncpg.Pool, session_id: UUID, job_id: str, n: int
) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM session_recording_segments"
        " WHERE session_id = $1 AND job_id = $2 AND n = $3",
        session_id,
        job_id,
        n,
    )
    return row


async def add_segment(
    pool: asyncpg.Pool,
    session_id: UUID,
    *,
    job_id: str,
    n: int,
    started_at: float,
    duration_s: float,
    size: int,
    asset_key: str,
) -> tuple[asyncpg.Record, bool]:
    """The segment's row, numbered next in the session; False when it was already there."""
    async with pool.acquire() as conn, conn.transaction():
        # The session's row lock numbers concurrent segments one after the other.
        session = await conn.fetchrow(
            "SELECT coalesce(started_at, created_at) AS t0 FROM sessions WHERE id = $1 FOR UPDATE",
            session_id,
        )
        assert session is not None
        existing = await find_segment(conn, session_id, job_id, n)
        if existing is not None:
            return existing, False
        row: asyncpg.Record = await conn.fetchrow(
            f"""
            INSERT INTO session_recording_segments
                (session_id, seq, job_id, n, started_at_s, duration_s, bytes, asset_key)
            VALUES ($1,
                    (SELECT coalesce(max(seq) + 1, 0) FROM session_recording_segments
                     WHERE session_id = $1),
                    $2, $3,
                    greatest(0, $4::float8 - extract(epoch FROM $5::timestamptz)::float8),
                    $6, $7, $8)
            RETURNING {_COLUMNS}
            """,
            session_id,
            job_id,
            n,
            started_at,
            session["t0"],
            duration_s,
            size,
            asset_key,
        )
        return row, True


async def list_segments(
    conn: asyncpg.Connection | asyncpg.Pool, session_id: UUID, *, after: int, limit: int
) -> list[asyncpg.Record]:
    """From ``seq`` ``after`` (exclusive; -1 for the first page), in order."""
    rows: list[asyncpg.Record] = await conn.fetch(
        f"SELECT {_COLUMNS} FROM session_recording_segments"
        " WHERE session_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
        session_id,
        after,
        limit,
    )
    return rows


async def get_segment(
    conn: asyncpg.Connection | asyncpg.Pool, session_id: UUID, seq: int
) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM session_recording_segments WHERE session_id = $1 AND seq = $2",
        session_id,
        seq,
    )
    return row
