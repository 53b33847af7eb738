"""SQL the fleet and the metrics read: counts and new completions, never tenant content."""

from __future__ import annotations

from datetime import datetime
from typing import TypeAlias

import asyncpg

Conn: TypeAlias = asyncpg.Connection | asyncpg.Pool

# Bounds one refresh's work when many sessions or decks finished since the last one.
_BATCH = 5000


async def count_open_sessions(conn: Conn) -> dict[str, int]:
    """Sessions not ended, by status ('created' waits for an agent, 'active' has one)."""
    rows = await conn.fetch(
        "SELECT status, count(*) AS n FROM sessions WHERE status <> 'ended' GROUP BY status"
    )
    return {str(r["status"]): int(r["n"]) for r in rows}


async def count_waiting_sessions(conn: Conn, within_seconds: float) -> int:
    """Sessions created in the last ``within_seconds`` whose agent has not joined yet."""
    n = await conn.fetchval(
        """
        SELECT count(*) FROM sessions
        WHERE status = 'created' AND created_at > now() - make_interval(secs => $1)
        """,
        within_seconds,
    )
    return int(n)


async def joins_since(conn: Conn, after: datetime) -> list[tuple[datetime, float]]:
    """(started_at, seconds from created to agent joined) of sessions joined after ``after``."""
    rows = await conn.fetch(
        """
        SELECT started_at, extract(epoch FROM started_at - created_at)::float8 AS join_s
        FROM sessions WHERE started_at > $1 ORDER BY started_at LIMIT $2
        """,
        after,
        _BATCH,
    )
    return [(r["started_at"], float(r["join_s"])) for r in rows]


async def count_decks(conn: Conn) -> dict[str, int]:
    rows = await conn.fetch("SELECT status, count(*) AS n FROM decks GROUP BY status")
    return {str(r["status"]): int(r["n"]) for r in rows}


async def ingested_since(conn: Conn, after: datetime) -> list[tuple[datetime, float, int]]:
    """(ready_at, seconds from upload to ready, slides) of decks ready after ``after``."""
    rows = await conn.fetch(
        """
        SELECT ready_at, extract(epoch FROM ready_at - created_at)::float8 AS ingest_s,
               slides_total
        FROM decks WHERE ready_at > $1 ORDER BY ready_at LIMIT $2
        """,
        after,
        _BATCH,
    )
    return [(r["ready_at"], float(r["ingest_s"]), int(r["slides_total"])) for r in rows]
