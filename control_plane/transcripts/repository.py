"""SQL for a session's turn log, its transcript and its event timeline."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import asyncpg

from shared.schemas import StoredTurn, TurnRecord


async def add_turns(conn: asyncpg.Connection, session_id: UUID, turns: list[TurnRecord]) -> int:
    """Store each turn once, numbered in arrival order; returns how many were new."""
    added = 0
    async with conn.transaction():
        # One writer numbers a session's turns at a time.
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1::text))", str(session_id))
        for turn in turns:
            status = await conn.execute(
                """
                INSERT INTO session_turns
                    (session_id, number, turn_id, record, started_at, speaker)
                SELECT $1, coalesce(max(number), 0) + 1, $2, $3, $4, $5
                FROM session_turns WHERE session_id = $1
                ON CONFLICT (session_id, turn_id) DO NOTHING
                """,
                session_id,
                turn.turn_id,
                # The word timings serve the recording's redaction; they are not kept.
                json.loads(turn.model_dump_json(exclude={"user_words"})),
                turn.started_at,
                turn.speaker,
            )
            added += status.endswith(" 1")
        if added:
            await conn.execute(
                "UPDATE sessions SET last_activity_at = now() WHERE id = $1", session_id
            )
    return added


async def list_turns(
    conn: asyncpg.Connection | asyncpg.Pool,
    session_id: UUID,
    *,
    after: int = 0,
    limit: int = 100,
    number: int | None = None,
) -> list[StoredTurn]:
    rows = await conn.fetch(
        """
        SELECT number, record FROM session_turns
        WHERE session_id = $1 AND number > $2 AND ($4::int IS NULL OR number = $4)
        ORDER BY number LIMIT $3
        """,
        session_id,
        after,
        limit,
        number,
    )
    return [
        StoredTurn.model_validate({**r["record"], "number": r["number"], "session_id": session_id})
        for r in rows
    ]


async def list_messages(
    conn: asyncpg.Connection | asyncpg.Pool, session_id: UUID, *, after: int, limit: int
) -> list[asyncpg.Record]:
    """The conversation oldest first; ``seq`` (1, 2, … within the session) is the cursor."""
    rows: list[asyncpg.Record] = await conn.fetch(
        """
        SELECT seq, item_id, role, text, interrupted, started_at, ended_at, created_at, speaker
        FROM session_messages WHERE session_id = $1 AND seq > $2
        ORDER BY seq LIMIT $3
        """,
        session_id,
        after,
        limit,
    )
    return rows


async def first_spoken(
    conn: asyncpg.Connection | asyncpg.Pool, session_id: UUID
) -> datetime | None:
    """When the session's earliest line began (its measured start, else its arrival)."""
    found: datetime | None = await conn.fetchval(
        "SELECT min(coalesce(started_at, created_at)) FROM session_messages WHERE session_id = $1",
        session_id,
    )
    return found


# A timeline position: (at, source, key) with source 1 slide transitions, 2 escalations,
# 3 audit events, and key the row's id as text (bigint ids zero-padded so text order is number
# order). START is before every position.
EventKey = tuple[datetime, int, str]
EVENTS_START: EventKey = (datetime.min.replace(tzinfo=UTC), 0, "")


async def list_events(
    conn: asyncpg.Connection | asyncpg.Pool,
    session_id: UUID,
    *,
    after: EventKey = EVENTS_START,
    limit: int,
) -> list[dict[str, Any]]:
    """Slide transitions, escalations and lifecycle (audit) events in time order, the first
    ``limit`` after the position ``after``; each with its ``position`` for the next page."""
    rows = await conn.fetch(
        """
        SELECT at, type, actor, data, source, key FROM (
            (SELECT created_at AS at, 'slide.' || action AS type, actor,
                    jsonb_build_object('version', version, 'from_index', from_index,
                                       'to_index', to_index, 'paused', paused,
                                       'reason', reason) AS data,
                    1 AS source, lpad(id::text, 20, '0') AS key
             FROM slide_transitions
             WHERE session_id = $1 AND created_at >= $2
               AND (created_at, 1, lpad(id::text, 20, '0')) > ($2, $3, $4)
             ORDER BY created_at, id LIMIT $5)
            UNION ALL
            (SELECT created_at, 'escalation.requested', 'agent',
                    jsonb_build_object('escalation_id', id, 'reason', reason,
                                       'slide_index', slide_index),
                    2, id::text
             FROM escalations
             WHERE session_id = $1 AND created_at >= $2
               AND (created_at, 2, id::text) > ($2, $3, $4)
             ORDER BY created_at, id::text LIMIT $5)
            UNION ALL
            (SELECT created_at, type, actor, data, 3, lpad(id::text, 20, '0')
             FROM audit_events
             WHERE session_id = $1 AND created_at >= $2
               AND (created_at, 3, lpad(id::text, 20, '0')) > ($2, $3, $4)
             ORDER BY created_at, id LIMIT $5)
        ) timeline
        ORDER BY at, source, key LIMIT $5
        """,
        session_id,
        *after,
        limit,
    )
    return [
        {
            "at": r["at"],
            "type": r["type"],
            "actor": r["actor"],
            "data": r["data"],
            "position": (r["at"], r["source"], r["key"]),
        }
        for r in rows
    ]


async def records_complete(conn: asyncpg.Connection, session_id: UUID) -> None:
    """The presenter's job sent everything it recorded: an ended session's transcript.ready
    goes out now (a session ending later sends it at once, see migration 0008)."""
    async with conn.transaction():
        # Only a job leaving an ending session speaks for its records: one superseded
        # mid-session (another job presents on) does not.
        await conn.execute(
            """UPDATE sessions SET records_complete_at = now()
            WHERE id = $1 AND (status = 'ended' OR end_reason IS NOT NULL)""",
            session_id,
        )
        await conn.execute(
            """
            UPDATE webhook_deliveries SET next_attempt_at = now()
            WHERE event_key = 'transcript.ready:' || $1::text AND status = 'pending'
              AND attempts = 0
            """,
            str(session_id),
        )
