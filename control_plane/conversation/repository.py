"""SQL for session messages and escalations."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID, uuid4

import asyncpg

from shared.schemas import ConversationMessage, Escalation, EscalationRequest, TranscriptLine

# What a resumed worker reloads: enough context for a model, bounded for a long session.
RESUME_MESSAGES = 50
# The transcript an escalation carries: its most recent messages (the full one is the
# session's transcript).
ESCALATION_MESSAGES = 200


async def add_messages(
    conn: asyncpg.Connection, session_id: UUID, messages: list[ConversationMessage]
) -> None:
    """Store each message once (a worker resends a batch it is not sure landed), numbered
    1, 2, … in the order the session's messages arrive (``seq``)."""
    first: dict[str, ConversationMessage] = {}
    for m in messages:
        first.setdefault(m.item_id, m)
    if not first:
        return
    fresh = list(first.values())
    async with conn.transaction():
        # One writer numbers a session's messages at a time (a retried batch may race the first).
        await conn.execute(
            "SELECT pg_advisory_xact_lock(hashtext('session_messages:' || $1::text))",
            str(session_id),
        )
        await conn.execute(
            """
            INSERT INTO session_messages
                (session_id, seq, item_id, role, text, interrupted, started_at, ended_at,
                 speaker)
            SELECT $1,
                   coalesce((SELECT max(seq) FROM session_messages WHERE session_id = $1), 0)
                       + row_number() OVER (ORDER BY m.ord),
                   m.item_id, m.role, m.text, m.interrupted, m.started_at, m.ended_at, m.speaker
            FROM unnest($2::text[], $3::text[], $4::text[], $5::boolean[],
                        $6::timestamptz[], $7::timestamptz[], $8::text[])
                 WITH ORDINALITY
                 AS m(item_id, role, text, interrupted, started_at, ended_at, speaker, ord)
            WHERE NOT EXISTS (
                SELECT 1 FROM session_messages s WHERE s.session_id = $1 AND s.item_id = m.item_id
            )
            ON CONFLICT (session_id, item_id) DO NOTHING
            """,
            session_id,
            [m.item_id for m in fresh],
            [m.role for m in fresh],
            [m.text for m in fresh],
            [m.interrupted for m in fresh],
            [m.started_at for m in fresh],
            [m.ended_at for m in fresh],
            [m.speaker for m in fresh],
        )
        # Someone spoke: the session is not idle.
        await conn.execute("UPDATE sessions SET last_activity_at = now() WHERE id = $1", session_id)


async def recent_messages(
    conn: asyncpg.Connection | asyncpg.Pool, session_id: UUID, limit: int = RESUME_MESSAGES
) -> list[ConversationMessage]:
    rows = await conn.fetch(
        """
        SELECT item_id, role, text, interrupted FROM (
            SELECT seq, item_id, role, text, interrupted FROM session_messages
            WHERE session_id = $1 ORDER BY seq DESC LIMIT $2
        ) recent ORDER BY seq
        """,
        session_id,
        limit,
    )
    return [ConversationMessage(**dict(r)) for r in rows]


_ESCALATION_COLUMNS = (
    "id, session_id, reason, slide_index, last_question, attempted_answer, transcript, created_at"
)


def _escalation(row: asyncpg.Record) -> Escalation:
    return Escalation(
        escalation_id=row["id"],
        session_id=row["session_id"],
        reason=row["reason"],
        slide_index=row["slide_index"],
        last_question=row["last_question"],
        attempted_answer=row["attempted_answer"],
        transcript=[TranscriptLine(**line) for line in row["transcript"]],
        created_at=row["created_at"],
    )


async def record_escalation(
    conn: asyncpg.Connection,
    session_id: UUID,
    request: EscalationRequest,
    *,
    idempotency_key: str,
) -> tuple[Escalation, bool]:
    """Record it with the transcript so far; a replayed key returns the first record (True)."""
    transcript = await conn.fetch(
        """
        SELECT role, text, interrupted FROM (
            SELECT seq, role, text, interrupted FROM session_messages
            WHERE session_id = $1 ORDER BY seq DESC LIMIT $2
        ) recent ORDER BY seq
        """,
        session_id,
        ESCALATION_MESSAGES,
    )
    row = await conn.fetchrow(
        f"""
        INSERT INTO escalations (id, session_id, reason, slide_index, last_question,
                                 attempted_answer, transcript, idempotency_key)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
        ON CONFLICT (session_id, idempotency_key) DO NOTHING
        RETURNING {_ESCALATION_COLUMNS}
        """,
        uuid4(),
        session_id,
        request.reason,
        request.slide_index,
        request.last_question,
        request.attempted_answer,
        [dict(r) for r in transcript],
        idempotency_key,
    )
    if row is not None:
        return _escalation(row), False
    row = await conn.fetchrow(
        f"SELECT {_ESCALATION_COLUMNS} FROM escalations "
        "WHERE session_id = $1 AND idempotency_key = $2",
        session_id,
        idempotency_key,
    )
    return _escalation(row), True


async def list_escalations(
    conn: asyncpg.Connection | asyncpg.Pool,
    session_id: UUID,
    *,
    after: tuple[datetime, UUID] | None,
    limit: int,
) -> list[Escalation]:
    """Oldest first, the first ``limit`` after the (created_at, id) key ``after``."""
    rows = await conn.fetch(
        f"""
        SELECT {_ESCALATION_COLUMNS} FROM escalations
        WHERE session_id = $1
          AND ($2::timestamptz IS NULL OR (created_at, id) > ($2, $3::uuid))
        ORDER BY created_at, id LIMIT $4
        """,
        session_id,
        after[0] if after else None,
        after[1] if after else None,
        limit,
    )
    return [_escalation(r) for r in rows]
