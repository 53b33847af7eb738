"""SQL the fleet and the metrics read: counts, completions and timings, never tenant content."""

from __future__ import annotations

import json
from datetime import datetime
from typing import TypeAlias
from uuid import UUID

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


async def tenant_share(conn: Conn, tenant_id: UUID) -> tuple[int, int]:
    """(the tenant's open sessions, tenants with open sessions): its place in the fleet."""
    row = await conn.fetchrow(
        """
        SELECT count(*) FILTER (WHERE tenant_id = $1) AS mine,
               count(DISTINCT tenant_id) AS tenants
        FROM sessions WHERE status <> 'ended'
        """,
        tenant_id,
    )
    return int(row["mine"]), int(row["tenants"])


async def sessions_by_tenant(conn: Conn) -> dict[str, int]:
    """Open sessions per tenant id (each holds, or waits for, a presenter's slot)."""
    rows = await conn.fetch(
        "SELECT tenant_id, count(*) AS n FROM sessions WHERE status <> 'ended' GROUP BY tenant_id"
    )
    return {str(r["tenant_id"]): int(r["n"]) for r in rows}


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


# The turn log's per-stage timings (seconds), as the worker recorded them (shared TurnTimings).
TURN_STAGES = ("end_of_turn_delay", "transcription_delay", "llm_ttft", "tts_ttfb")


async def last_turn_id(conn: Conn) -> int:
    return int(await conn.fetchval("SELECT coalesce(max(id), 0) FROM session_turns"))


async def turn_timings_since(
    conn: Conn, after_id: int
) -> list[tuple[int, float | None, dict[str, float]]]:
    """(id, end of speech → agent audio, stage delays) of turns logged after ``after_id``."""
    rows = await conn.fetch(
        """
        SELECT id, record->'timings' AS timings FROM session_turns
        WHERE id > $1 ORDER BY id LIMIT $2
        """,
        after_id,
        _BATCH,
    )
    out = []
    for r in rows:
        timings = _json_object(r["timings"])
        e2e = _seconds(timings.get("e2e_latency"))
        stages = {
            stage: value
            for stage in TURN_STAGES
            if (value := _seconds(timings.get(stage))) is not None
        }
        out.append((int(r["id"]), e2e, stages))
    return out


def _json_object(value: object) -> dict[str, object]:
    # the pool decodes jsonb (db.py); a bare connection hands back text
    if isinstance(value, str):
        value = json.loads(value)
    return value if isinstance(value, dict) else {}


def _seconds(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and value >= 0 else None
