"""A redacted tenant's recordings: the user's channel silenced where personal data was spoken.

Spans arrive with the turn log (``session_redaction_spans``), segments with their uploads, in
either order. Each segment remembers the newest span it was checked against
(``redacted_through``); :func:`apply_pending` silences every segment over the spans it has not
seen yet. Adding spans and applying them take the same per-session lock, so no span is passed
over by a concurrent pass. It runs after new spans, after each upload, and before a segment is
served, so a recording is never handed out with a span not yet applied.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from uuid import UUID

import asyncpg
import av

from control_plane.metrics import RECORDING_SEGMENTS_UNREDACTABLE, RECORDING_SPANS_SILENCED
from control_plane.privacy.redact import Span
from control_plane.recordings.silence import silence_channel, silent_ogg
from control_plane.storage import AssetStorage

logger = logging.getLogger(__name__)

_LOCK = "SELECT pg_advisory_xact_lock(hashtext('recording_redaction:' || $1::text))"


async def add_spans(pool: asyncpg.Pool, session_id: UUID, spans: Sequence[Span]) -> None:
    if not spans:
        return
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(_LOCK, str(session_id))
        await conn.executemany(
            """
            INSERT INTO session_redaction_spans (session_id, start_at, end_at, entities)
            VALUES ($1, to_timestamp($2), to_timestamp($3), $4)
            """,
            [(session_id, s.start, s.end, list(s.entities)) for s in spans],
        )


async def apply_pending(pool: asyncpg.Pool, storage: AssetStorage, session_id: UUID) -> int:
    """Silence the session's segments over the spans each has not been checked against;
    returns how many segments were rewritten."""
    rewritten = 0
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(_LOCK, str(session_id))
        newest: int | None = await conn.fetchval(
            "SELECT max(id) FROM session_redaction_spans WHERE session_id = $1", session_id
        )
        if newest is None:
            return 0
        segments = await conn.fetch(
            """
            SELECT g.seq, g.asset_key, g.redacted_through,
                   extract(epoch FROM coalesce(s.started_at, s.created_at))::float8
                       + g.started_at_s AS start_unix,
                   g.duration_s
            FROM session_recording_segments g JOIN sessions s ON s.id = g.session_id
            WHERE g.session_id = $1 AND g.redacted_through < $2
            ORDER BY g.seq
            """,
            session_id,
            newest,
        )
        for seg in segments:
            start, end = seg["start_unix"], seg["start_unix"] + seg["duration_s"]
            spans = await conn.fetch(
                """
                SELECT extract(epoch FROM start_at)::float8 AS start,
                       extract(epoch FROM end_at)::float8 AS end
                FROM session_redaction_spans
                WHERE session_id = $1 AND id > $2 AND id <= $3
                  AND end_at >= to_timestamp($4) AND start_at <= to_timestamp($5)
                """,
                session_id,
                seg["redacted_through"],
                newest,
                start,
                end,
            )
            size = None
            if spans:
                local = [(s["start"] - start, s["end"] - start) for s in spans]
                data = await storage.get_bytes(seg["asset_key"])
                silenced = await _silenced(data, local, seg["duration_s"], session_id)
                await storage.put_bytes(seg["asset_key"], silenced)
                size = len(silenced)
                rewritten += 1
                RECORDING_SPANS_SILENCED.inc(len(spans))
            await conn.execute(
                """
                UPDATE session_recording_segments
                SET redacted_through = $3, bytes = coalesce($4, bytes)
                WHERE session_id = $1 AND seq = $2
                """,
                session_id,
                seg["seq"],
                newest,
                size,
            )
    if rewritten:
        logger.info(
            "recording silenced over personal data",
            extra={"session_id": str(session_id), "segments": rewritten},
        )
    return rewritten


async def _silenced(
    data: bytes, spans: list[tuple[float, float]], duration_s: float, session_id: UUID
) -> bytes:
    """The segment silenced over ``spans``; one that cannot be decoded cannot be redacted, so
    it is replaced by silence of its length rather than kept (logged and counted)."""
    try:
        return await asyncio.to_thread(silence_channel, data, spans)
    except (av.FFmpegError, ValueError, IndexError):
        logger.exception(
            "a recording segment could not be decoded to redact it; replaced by silence",
            extra={"session_id": str(session_id)},
        )
        RECORDING_SEGMENTS_UNREDACTABLE.inc()
        return await asyncio.to_thread(silent_ogg, duration_s)
