"""SQL for analytics: a deck's sessions in a time range and their records, read in one query
per kind for all the sessions at once (``session_id = ANY($1)``, each on its session index)."""

from __future__ import annotations

from datetime import datetime
from typing import TypeAlias
from uuid import UUID

import asyncpg

from control_plane.analytics.timeline import Transition

Conn: TypeAlias = asyncpg.Connection | asyncpg.Pool

_SESSION = (
    "id, status, created_at, started_at, ended_at, end_reason, last_activity_at, deck_id, "
    "(SELECT slide_count FROM slide_states s WHERE s.session_id = sessions.id) AS slide_count"
)
# The words the presenter declines with when it answered without a search (an LLM may);
# declines.is_declined reads the same in Python.
_DECLINED_SQL = r"record->>'agent_text' ~* '\m(does|do|did)(n''t| not) cover\M'"
# Questions counted per answer (500 sessions of 40 questions); at most MAX_LISTED are listed.
MAX_QUESTION_TURNS = 20_000
MAX_LISTED = 2000


async def session(conn: Conn, tenant_id: UUID, session_id: UUID) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(
        f"SELECT {_SESSION} FROM sessions WHERE id = $1 AND tenant_id = $2",
        session_id,
        tenant_id,
    )
    return row


async def deck_sessions(
    conn: Conn, tenant_id: UUID, deck_id: UUID, since: datetime, until: datetime, limit: int
) -> list[asyncpg.Record]:
    """The deck's sessions created in [since, until) that someone joined, newest first
    (index sessions_deck_created_idx, migration 0019)."""
    rows: list[asyncpg.Record] = await conn.fetch(
        f"""SELECT {_SESSION} FROM sessions
        WHERE tenant_id = $1 AND deck_id = $2 AND created_at >= $3 AND created_at < $4
          AND started_at IS NOT NULL
        ORDER BY created_at DESC LIMIT $5""",
        tenant_id,
        deck_id,
        since,
        until,
        limit,
    )
    return rows


async def transitions(conn: Conn, session_ids: list[UUID]) -> dict[UUID, list[Transition]]:
    rows = await conn.fetch(
        """SELECT session_id, created_at, action, from_index, to_index, paused, actor,
                  idempotency_key
        FROM slide_transitions WHERE session_id = ANY($1::uuid[])
        ORDER BY session_id, version""",
        session_ids,
    )
    found: dict[UUID, list[Transition]] = {}
    for r in rows:
        found.setdefault(r["session_id"], []).append(
            Transition(
                at=r["created_at"],
                action=r["action"],
                from_index=r["from_index"],
                to_index=r["to_index"],
                paused=r["paused"],
                actor=r["actor"],
                idempotency_key=r["idempotency_key"],
            )
        )
    return found


async def question_turns(conn: Conn, session_ids: list[UUID]) -> dict[UUID, list[asyncpg.Record]]:
    """Turns that searched the deck for an answer, or declined one: the questions, each with
    only what analytics reads of its record (``record``: user and agent text, slide before, the
    search calls), oldest first, at most ``MAX_QUESTION_TURNS``."""
    rows = await conn.fetch(
        f"""SELECT session_id, number, started_at,
               jsonb_build_object(
                   'user_text', record->'user_text', 'agent_text', record->'agent_text',
                   'slide_before', record->'slide_before',
                   'tool_calls', coalesce((
                       SELECT jsonb_agg(c) FROM jsonb_array_elements(record->'tool_calls') c
                       WHERE c->>'name' = 'search_slides'), '[]'::jsonb)
               ) AS record
        FROM session_turns
        WHERE session_id = ANY($1::uuid[])
          AND (record->'tool_calls' @> '[{{"name": "search_slides"}}]' OR {_DECLINED_SQL})
        ORDER BY started_at, session_id, number LIMIT $2""",
        session_ids,
        MAX_QUESTION_TURNS,
    )
    found: dict[UUID, list[asyncpg.Record]] = {}
    for r in rows:
        found.setdefault(r["session_id"], []).append(r)
    return found


async def interruptions(conn: Conn, session_ids: list[UUID]) -> dict[UUID, list[datetime]]:
    """When the presenter was cut off: its interrupted lines (narration or answers)."""
    rows = await conn.fetch(
        """SELECT session_id, coalesce(ended_at, started_at, created_at) AS at
        FROM session_messages
        WHERE session_id = ANY($1::uuid[]) AND role = 'assistant' AND interrupted
        ORDER BY session_id, seq""",
        session_ids,
    )
    found: dict[UUID, list[datetime]] = {}
    for r in rows:
        found.setdefault(r["session_id"], []).append(r["at"])
    return found


async def escalations(conn: Conn, session_ids: list[UUID]) -> dict[UUID, list[asyncpg.Record]]:
    rows = await conn.fetch(
        """SELECT session_id, created_at, reason, slide_index FROM escalations
        WHERE session_id = ANY($1::uuid[]) ORDER BY created_at, id""",
        session_ids,
    )
    found: dict[UUID, list[asyncpg.Record]] = {}
    for r in rows:
        found.setdefault(r["session_id"], []).append(r)
    return found
