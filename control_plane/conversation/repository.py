"""SQL for session messages and escalations."""

from __future__ import annotations

from uuid import UUID, uuid4

import asyncpg

from shared.schemas import ConversationMessage, Escalation, EscalationRequest, TranscriptLine

# What a resumed worker reloads: enough context for a model, bounded for a long session.
RESUME_MESSAGES = 50
# The transcript an escalation carries: its most recent messages (the full one is the
# session's transcript).
ESCALATION_MESSAGES = 200


async def add_messages(
    conn: asyncpg.Connection | asyncpg.Pool, session_id: UUID, messages: list[ConversationMessage]
) -> None:
    """Store each message once: a worker resends a batch it is not sure landed."""
    await conn.executemany(
        """
        INSERT INTO session_messages
            (session_id, item_id, role, text, interrupted, started_at, ended_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7)
        ON CONFLICT (session_id, item_id) DO NOTHING
        """,
        [
            (session_id, m.item_id, m.role, m.text, m.interrupted, m.started_at, m.ended_at)
            for m in messages
        ],
    )
    if messages:  # someone spoke: the session is not idle
        await conn.execute("UPDATE sessions SET last_activity_at = now() WHERE id = $1", session_id)


async def recent_messages(
    conn: asyncpg.Connection | asyncpg.Pool, session_id: UUID, limit: int = RESUME_MESSAGES
) -> list[ConversationMessage]:
    rows = await conn.fetch(
        """
        SELECT item_id, role, text, interrupted FROM (
            SELECT id, item_id, role, text, interrupted FROM session_messages
            WHERE session_id = $1 ORDER BY id DESC LIMIT $2
        ) recent ORDER BY id
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
            SELECT id, role, text, interrupted FROM session_messages
            WHERE session_id = $1 ORDER BY id DESC LIMIT $2
        ) recent ORDER BY id
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
    conn: asyncpg.Connection | asyncpg.Pool, session_id: UUID
) -> list[Escalation]:
    rows = await conn.fetch(
        f"SELECT {_ESCALATION_COLUMNS} FROM escalations WHERE session_id = $1 ORDER BY created_at",
        session_id,
    )
    return [_escalation(r) for r in rows]
