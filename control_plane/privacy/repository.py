"""SQL for deleting records: a kind of a session's records past retention, a whole session, one
person's words across sessions, and the asset files their rows leave behind."""

from __future__ import annotations

from collections import Counter
from typing import Any, TypeAlias
from uuid import UUID

import asyncpg

from control_plane.privacy.policy import RecordKind

Conn: TypeAlias = asyncpg.Connection | asyncpg.Pool

# Deliveries whose payload copies a session's words (escalations carry the transcript so far)
# or announce its transcript: they expire with the transcript.
TRANSCRIPT_EVENTS = ["escalation.requested", "transcript.ready"]

# What a session still holds of each kind: a session is a retention candidate only then, so a
# sweep never walks the same sessions again once their records are gone.
_HOLDS: dict[RecordKind, str] = {
    "transcripts": """
        EXISTS (SELECT 1 FROM session_messages m WHERE m.session_id = s.id)
        OR EXISTS (SELECT 1 FROM escalations e WHERE e.session_id = s.id)
        OR EXISTS (SELECT 1 FROM webhook_deliveries w
                   WHERE w.tenant_id = s.tenant_id AND w.payload -> 'data' ? 'session_id'
                     AND w.payload -> 'data' ->> 'session_id' = s.id::text
                     AND w.event_type = ANY ($5::text[]))""",
    "turns": "EXISTS (SELECT 1 FROM session_turns t WHERE t.session_id = s.id)",
    "recordings": """
        s.recording_key IS NOT NULL
        OR EXISTS (SELECT 1 FROM session_recording_segments r WHERE r.session_id = s.id)
        OR EXISTS (SELECT 1 FROM session_redaction_spans x WHERE x.session_id = s.id)""",
    "events": """
        EXISTS (SELECT 1 FROM slide_transitions t WHERE t.session_id = s.id)
        OR EXISTS (SELECT 1 FROM audit_events a WHERE a.session_id = s.id)""",
}


async def tenants_with_policy(conn: Conn, tenant_id: UUID | None) -> list[asyncpg.Record]:
    """Every tenant (or the one named) with its stored retention days (NULL: the default)."""
    rows: list[asyncpg.Record] = await conn.fetch(
        """
        SELECT t.id, p.transcripts_days, p.turns_days, p.recordings_days, p.events_days,
               p.decks_days
        FROM tenants t LEFT JOIN tenant_data_policy p ON p.tenant_id = t.id
        WHERE $1::uuid IS NULL OR t.id = $1
        ORDER BY t.id
        """,
        tenant_id,
    )
    return rows


async def expired_sessions(
    conn: Conn,
    tenant_id: UUID,
    kind: RecordKind,
    *,
    days: int,
    records_grace_s: float,
    limit: int,
) -> list[UUID]:
    """Ended sessions whose ``kind`` records are past ``days`` and still there, oldest first.
    A session whose job may still send records (ended within the records grace and not
    reported complete) waits, so nothing arrives after its records were deleted."""
    rows = await conn.fetch(
        f"""
        SELECT s.id FROM sessions s
        WHERE s.tenant_id = $1 AND s.status = 'ended'
          AND s.ended_at <= now() - make_interval(days => $2)
          AND (s.records_complete_at IS NOT NULL
               OR s.ended_at <= now() - make_interval(secs => $3))
          AND ({_HOLDS[kind]})
        ORDER BY s.ended_at LIMIT $4
        """,
        tenant_id,
        days,
        records_grace_s,
        limit,
        *([TRANSCRIPT_EVENTS] if kind == "transcripts" else []),
    )
    return [r["id"] for r in rows]


async def _grouped(conn: Conn, delete_returning_session: str, *args: Any) -> Counter[UUID]:
    """Run a ``DELETE … RETURNING session_id`` and count the rows it deleted per session."""
    rows = await conn.fetch(
        f"WITH d AS ({delete_returning_session}) "
        "SELECT session_id, count(*) AS n FROM d GROUP BY session_id",
        *args,
    )
    return Counter({r["session_id"]: int(r["n"]) for r in rows})


async def delete_transcripts(
    conn: asyncpg.Connection, tenant_id: UUID, sessions: list[UUID]
) -> dict[str, Counter[UUID]]:
    return {
        "messages": await _grouped(
            conn,
            "DELETE FROM session_messages WHERE session_id = ANY ($1::uuid[]) RETURNING session_id",
            sessions,
        ),
        "escalations": await _grouped(
            conn,
            "DELETE FROM escalations WHERE session_id = ANY ($1::uuid[]) RETURNING session_id",
            sessions,
        ),
        "webhook_deliveries": await _deliveries(conn, tenant_id, sessions, TRANSCRIPT_EVENTS),
    }


async def _deliveries(
    conn: asyncpg.Connection, tenant_id: UUID, sessions: list[UUID], types: list[str] | None
) -> Counter[UUID]:
    """Deliveries about these sessions (of ``types``; None: all of them)."""
    return await _grouped(
        conn,
        """
        DELETE FROM webhook_deliveries
        WHERE tenant_id = $1 AND payload -> 'data' ? 'session_id'
          AND payload -> 'data' ->> 'session_id' = ANY ($2::text[])
          AND ($3::text[] IS NULL OR event_type = ANY ($3::text[]))
        RETURNING (payload -> 'data' ->> 'session_id')::uuid AS session_id
        """,
        tenant_id,
        [str(s) for s in sessions],
        types,
    )


async def delete_turns(
    conn: asyncpg.Connection, tenant_id: UUID, sessions: list[UUID]
) -> dict[str, Counter[UUID]]:
    return {
        "turns": await _grouped(
            conn,
            "DELETE FROM session_turns WHERE session_id = ANY ($1::uuid[]) RETURNING session_id",
            sessions,
        )
    }


async def delete_events(
    conn: asyncpg.Connection, tenant_id: UUID, sessions: list[UUID]
) -> dict[str, Counter[UUID]]:
    return {
        "transitions": await _grouped(
            conn,
            "DELETE FROM slide_transitions WHERE session_id = ANY ($1::uuid[])"
            " RETURNING session_id",
            sessions,
        ),
        "events": await _grouped(
            conn,
            "DELETE FROM audit_events WHERE session_id = ANY ($1::uuid[]) RETURNING session_id",
            sessions,
        ),
    }


async def delete_recordings(
    conn: asyncpg.Connection, tenant_id: UUID, sessions: list[UUID]
) -> tuple[dict[str, Counter[UUID]], list[str]]:
    """The sessions' recording rows and redaction spans; returns the counts and the asset keys
    to delete once this commits (each session's recording folder, and a recording stored whole
    before segments)."""
    # The lock the recording's redaction takes while it rewrites a session's segment files
    # (control_plane.recordings.redaction): a rewrite under way finishes first, and one that
    # comes after finds no segment, so no file is written back after its rows went.
    await conn.execute(
        "SELECT pg_advisory_xact_lock(hashtext('recording_redaction:' || id::text))"
        " FROM unnest($1::uuid[]) AS s(id) ORDER BY id",
        sessions,
    )
    legacy = await conn.fetch(
        """
        UPDATE sessions s SET recording_key = NULL, recording_bytes = NULL
        FROM (SELECT id, recording_key FROM sessions
              WHERE id = ANY ($1::uuid[]) AND recording_key IS NOT NULL FOR UPDATE) old
        WHERE s.id = old.id
        RETURNING s.id AS session_id, old.recording_key
        """,
        sessions,
    )
    counts = {
        "recording_segments": await _grouped(
            conn,
            "DELETE FROM session_recording_segments WHERE session_id = ANY ($1::uuid[])"
            " RETURNING session_id",
            sessions,
        ),
        "redaction_spans": await _grouped(
            conn,
            "DELETE FROM session_redaction_spans WHERE session_id = ANY ($1::uuid[])"
            " RETURNING session_id",
            sessions,
        ),
    }
    counts["recording_segments"].update(r["session_id"] for r in legacy)
    keys = [f"recordings/{s}" for s in sessions] + [r["recording_key"] for r in legacy]
    return counts, keys


async def expired_decks(conn: Conn, tenant_id: UUID, *, days: int, limit: int) -> list[UUID]:
    """Decks uploaded more than ``days`` ago, ingested (or failed), that no live session uses."""
    rows = await conn.fetch(
        """
        SELECT d.id FROM decks d
        WHERE d.tenant_id = $1 AND d.status IN ('ready', 'failed')
          AND d.created_at <= now() - make_interval(days => $2)
          AND NOT EXISTS (SELECT 1 FROM sessions s
                          WHERE s.deck_id = d.id AND s.status <> 'ended')
        ORDER BY d.created_at LIMIT $3
        """,
        tenant_id,
        days,
        limit,
    )
    return [r["id"] for r in rows]


async def delete_decks(conn: asyncpg.Connection, tenant_id: UUID, decks: list[UUID]) -> list[UUID]:
    """As ``DELETE /v1/decks/{id}`` deletes one (slides and chunks cascade), unless a live
    session took it up meanwhile; returns the decks deleted."""
    rows = await conn.fetch(
        """
        DELETE FROM decks d WHERE d.id = ANY ($2::uuid[]) AND d.tenant_id = $1
          AND NOT EXISTS (SELECT 1 FROM sessions s
                          WHERE s.deck_id = d.id AND s.status <> 'ended')
        RETURNING d.id
        """,
        tenant_id,
        decks,
    )
    return [r["id"] for r in rows]


# --- one whole session --------------------------------------------------------------------


async def lock_session(
    conn: asyncpg.Connection, tenant_id: UUID, session_id: UUID
) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(
        "SELECT id, status FROM sessions WHERE id = $1 AND tenant_id = $2 FOR UPDATE",
        session_id,
        tenant_id,
    )
    return row


async def delete_session(
    conn: asyncpg.Connection, tenant_id: UUID, session_id: UUID
) -> tuple[dict[str, int], list[str]]:
    """Every row the session left, then the session; returns counts per kind of row and the
    asset keys to delete once this commits. The caller holds the session's row lock."""
    one = [session_id]
    found: dict[str, Counter[UUID]] = {}
    found |= await delete_transcripts(conn, tenant_id, one)
    found |= await delete_turns(conn, tenant_id, one)
    found |= await delete_events(conn, tenant_id, one)
    recordings, keys = await delete_recordings(conn, tenant_id, one)
    found |= recordings
    found["webhook_deliveries"] += await _deliveries(conn, tenant_id, one, None)
    counts = {name: c[session_id] for name, c in found.items()}
    counts["slide_states"] = _count(
        await conn.execute("DELETE FROM slide_states WHERE session_id = $1", session_id)
    )
    await conn.execute(
        "DELETE FROM sessions WHERE id = $1 AND tenant_id = $2", session_id, tenant_id
    )
    return counts, keys


def _count(status: str) -> int:
    return int(status.rsplit(" ", 1)[-1])


# --- one person's words, across sessions ----------------------------------------------------


async def sessions_spoken_in(
    conn: asyncpg.Connection, tenant_id: UUID, identity: str
) -> list[UUID]:
    """The tenant's sessions holding a message or turn of ``identity``, locked."""
    rows = await conn.fetch(
        """
        SELECT s.id FROM sessions s
        WHERE s.tenant_id = $1 AND s.id IN (
            SELECT session_id FROM session_messages WHERE speaker = $2
            UNION SELECT session_id FROM session_turns WHERE speaker = $2)
        ORDER BY s.created_at, s.id
        FOR UPDATE
        """,
        tenant_id,
        identity,
    )
    return [r["id"] for r in rows]


async def sole_speaker_sessions(
    conn: asyncpg.Connection, sessions: list[UUID], identity: str
) -> list[UUID]:
    """Of ``sessions``, those where every user message and every turn with user words is
    ``identity``'s: their recording's user channel holds nobody else's voice. Words of an
    unknown speaker count as someone else's."""
    rows = await conn.fetch(
        """
        SELECT id FROM unnest($1::uuid[]) AS s(id)
        WHERE NOT EXISTS (SELECT 1 FROM session_messages m
                          WHERE m.session_id = s.id AND m.role = 'user'
                            AND m.speaker IS DISTINCT FROM $2)
          AND NOT EXISTS (SELECT 1 FROM session_turns t
                          WHERE t.session_id = s.id AND t.record ->> 'user_text' IS NOT NULL
                            AND t.speaker IS DISTINCT FROM $2)
        ORDER BY id
        """,
        sessions,
        identity,
    )
    return [r["id"] for r in rows]


async def erase_words(
    conn: asyncpg.Connection, tenant_id: UUID, sessions: list[UUID], identity: str
) -> dict[str, int]:
    """``identity``'s messages and turns in ``sessions``, the escalations of those sessions
    (each copies the transcript) and the deliveries carrying them; the identity is replaced
    by ``erased`` where it names who moved a slide or for whom a token was minted."""
    counts = {
        "messages": _count(
            await conn.execute(
                "DELETE FROM session_messages WHERE session_id = ANY ($1::uuid[]) AND speaker = $2",
                sessions,
                identity,
            )
        ),
        "turns": _count(
            await conn.execute(
                "DELETE FROM session_turns WHERE session_id = ANY ($1::uuid[]) AND speaker = $2",
                sessions,
                identity,
            )
        ),
        "escalations": _count(
            await conn.execute(
                "DELETE FROM escalations WHERE session_id = ANY ($1::uuid[])", sessions
            )
        ),
    }
    counts["webhook_deliveries"] = sum(
        (await _deliveries(conn, tenant_id, sessions, ["escalation.requested"])).values()
    )
    counts["transitions_anonymized"] = _count(
        await conn.execute(
            """
            UPDATE slide_transitions t SET actor = 'participant:erased'
            FROM sessions s
            WHERE t.session_id = s.id AND s.tenant_id = $1 AND t.actor = 'participant:' || $2
            """,
            tenant_id,
            identity,
        )
    )
    counts["events_anonymized"] = _count(
        await conn.execute(
            """
            UPDATE audit_events SET data = jsonb_set(data, '{identity}', '"erased"')
            WHERE tenant_id = $1 AND data ? 'identity' AND data ->> 'identity' = $2
            """,
            tenant_id,
            identity,
        )
    )
    return counts


async def insert_erasure(
    conn: asyncpg.Connection,
    *,
    erasure_id: UUID,
    tenant_id: UUID,
    identity_sha256: str,
    sessions: list[UUID],
    recordings_kept: list[UUID],
    deleted: dict[str, int],
) -> asyncpg.Record:
    row: asyncpg.Record = await conn.fetchrow(
        """
        INSERT INTO erasures (id, tenant_id, identity_sha256, sessions, recordings_kept, deleted,
                              requested_at, completed_at)
        VALUES ($1, $2, $3, $4, $5, $6, now(), clock_timestamp())
        RETURNING id, identity_sha256, sessions, recordings_kept, deleted, requested_at,
                  completed_at
        """,
        erasure_id,
        tenant_id,
        identity_sha256,
        sessions,
        recordings_kept,
        deleted,
    )
    return row


async def get_erasure(conn: Conn, tenant_id: UUID, erasure_id: UUID) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(
        """
        SELECT id, identity_sha256, sessions, recordings_kept, deleted, requested_at,
               completed_at
        FROM erasures WHERE id = $1 AND tenant_id = $2
        """,
        erasure_id,
        tenant_id,
    )
    return row


# --- webhooks and the asset files left to delete --------------------------------------------


async def webhook_event(
    conn: asyncpg.Connection, tenant_id: UUID, event_type: str, key: str, data: dict[str, Any]
) -> None:
    """Raise an integrator event in the caller's transaction (the outbox of migration 0006)."""
    await conn.execute(
        "SELECT podium_webhook_event($1, $2, $3, $4::jsonb)",
        tenant_id,
        event_type,
        key,
        data,  # the pool's jsonb codec encodes it
    )


async def queue_asset_deletions(
    conn: asyncpg.Connection, tenant_id: UUID, keys: list[str], reason: str
) -> list[int]:
    rows = await conn.fetch(
        """
        INSERT INTO asset_deletions (tenant_id, key, reason)
        SELECT $1, key, $3 FROM unnest($2::text[]) AS k(key) RETURNING id
        """,
        tenant_id,
        keys,
        reason,
    )
    return [r["id"] for r in rows]


async def pending_asset_deletions(
    conn: Conn, *, ids: list[int] | None, tenant_id: UUID | None, limit: int
) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(
        """
        SELECT id, key, reason FROM asset_deletions
        WHERE ($1::bigint[] IS NULL OR id = ANY ($1::bigint[]))
          AND ($2::uuid IS NULL OR tenant_id = $2)
        ORDER BY id LIMIT $3
        """,
        ids,
        tenant_id,
        limit,
    )
    return rows


async def asset_deleted(conn: Conn, deletion_id: int) -> None:
    await conn.execute("DELETE FROM asset_deletions WHERE id = $1", deletion_id)


async def asset_deletion_failed(conn: Conn, deletion_id: int, error: str) -> None:
    await conn.execute(
        "UPDATE asset_deletions SET attempts = attempts + 1, last_error = $2 WHERE id = $1",
        deletion_id,
        error[:500],
    )
