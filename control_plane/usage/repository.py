"""SQL for usage metering (tables in migration 0018)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, TypeAlias
from uuid import UUID

import asyncpg

Conn: TypeAlias = asyncpg.Connection | asyncpg.Pool

# -- what the worker reports ---------------------------------------------------------------


async def take_job_totals(
    conn: asyncpg.Connection,
    tenant_id: UUID,
    session_id: UUID,
    job_id: str,
    totals: list[tuple[str, str, float]],
) -> list[tuple[str, str, float]]:
    """Store a job's cumulative totals and add what each grew by to today's counters, in the
    caller's transaction. Returns the increments added ((meter, dimension, delta), delta > 0).

    Reports of one job are taken one at a time (an advisory lock on the job), so two copies of
    one report arriving together cannot both see the old total."""
    await conn.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended($1::uuid::text || '/' || $2, 17))",
        session_id,
        job_id,
    )
    rows = await conn.fetch(
        """WITH incoming AS (
               SELECT * FROM unnest($3::text[], $4::text[], $5::float8[])
                   AS t(meter, dimension, quantity)
           ),
           before AS (
               SELECT i.meter, i.dimension, i.quantity,
                      coalesce(j.quantity, 0) AS taken
               FROM incoming i
               LEFT JOIN usage_job_totals j
                 ON j.session_id = $1 AND j.job_id = $2
                AND j.meter = i.meter AND j.dimension = i.dimension
           ),
           grown AS (
               INSERT INTO usage_job_totals AS j (session_id, job_id, meter, dimension, quantity)
               SELECT $1, $2, meter, dimension, quantity FROM before WHERE quantity > taken
               ON CONFLICT (session_id, job_id, meter, dimension)
               DO UPDATE SET quantity = EXCLUDED.quantity, updated_at = now()
               RETURNING meter, dimension
           )
           SELECT b.meter, b.dimension, b.quantity - b.taken AS delta
           FROM before b JOIN grown g USING (meter, dimension)""",
        session_id,
        job_id,
        [t[0] for t in totals],
        [t[1] for t in totals],
        [t[2] for t in totals],
    )
    grown = [(r["meter"], r["dimension"], float(r["delta"])) for r in rows]
    if grown:
        await conn.execute(
            """INSERT INTO usage_counters AS c (tenant_id, day, session_id, meter, dimension,
                                                quantity)
               SELECT $1, (now() AT TIME ZONE 'UTC')::date, $2, t.meter, t.dimension, t.delta
               FROM unnest($3::text[], $4::text[], $5::float8[]) AS t(meter, dimension, delta)
               ON CONFLICT (tenant_id, day, session_id, meter, dimension)
               DO UPDATE SET quantity = c.quantity + EXCLUDED.quantity""",
            tenant_id,
            session_id,
            [g[0] for g in grown],
            [g[1] for g in grown],
            [g[2] for g in grown],
        )
    return grown


# -- time in the room (LiveKit webhooks) ----------------------------------------------------


async def open_span(
    conn: Conn,
    tenant_id: UUID,
    session_id: UUID,
    key: str,
    meter: str,
    dimension: str,
    at: datetime,
) -> bool:
    """A participant joined (or the session's room got its first one); False if known."""
    row = await conn.fetchrow(
        """INSERT INTO usage_spans (tenant_id, session_id, key, meter, dimension, started_at)
           VALUES ($1, $2, $3, $4, $5, $6)
           ON CONFLICT (session_id, key) DO NOTHING RETURNING 1""",
        tenant_id,
        session_id,
        key,
        meter,
        dimension,
        at,
    )
    return row is not None


async def close_span(conn: Conn, session_id: UUID, key: str, at: datetime) -> float | None:
    """A participant left: its span ends at ``at``. Returns its length in seconds, or None when
    it was already closed (a repeated webhook) or never opened."""
    value: float | None = await conn.fetchval(
        """UPDATE usage_spans SET ended_at = greatest($3, started_at)
           WHERE session_id = $1 AND key = $2 AND ended_at IS NULL
           RETURNING extract(epoch FROM ended_at - started_at)::float8""",
        session_id,
        key,
        at,
    )
    return value


async def close_session_spans(
    conn: Conn, session_id: UUID, at: datetime
) -> list[tuple[str, float]]:
    """The room finished: every span of the session still open ends. Returns (meter, seconds).

    LiveKit stamps a webhook in whole seconds, up to a second before the room really closed,
    while reads already cut an open span at its session's precise end; so when the session
    ended within that second, the spans end there too and a finished session's figure does not
    shrink once the webhook lands."""
    rows = await conn.fetch(
        """UPDATE usage_spans SET ended_at = greatest(started_at, coalesce(
               (SELECT ended_at FROM sessions WHERE id = $1
                  AND ended_at >= $2 AND ended_at < $2 + interval '1 second'), $2))
           WHERE session_id = $1 AND ended_at IS NULL
           RETURNING meter, extract(epoch FROM ended_at - started_at)::float8 AS seconds""",
        session_id,
        at,
    )
    return [(r["meter"], float(r["seconds"])) for r in rows]


# -- reading ------------------------------------------------------------------------------

# Every quantity of a tenant within [lo, hi) as rows (day, session_id, meter, dimension,
# quantity): the counters of the days in range, the spans cut at each UTC midnight (an open span
# counts up to now, or to its session's end when the leave was never heard of), and the bytes
# of decks (no session) and recording segments stored on each day, of those still stored.
_ROWS = """
    WITH spans AS (
        SELECT sp.session_id, sp.meter, sp.dimension,
               greatest(sp.started_at, $2) AS a,
               least(coalesce(sp.ended_at, 'infinity'), coalesce(s.ended_at, 'infinity'),
                     now(), $3) AS b
        FROM usage_spans sp
        LEFT JOIN sessions s ON s.id = sp.session_id
        WHERE sp.tenant_id = $1 AND sp.started_at < $3
          AND (sp.ended_at IS NULL OR sp.ended_at > $2)
    ),
    cut AS (
        SELECT g.day::date AS day, session_id, meter, dimension,
               extract(epoch FROM
                   least(b, (g.day + interval '1 day') AT TIME ZONE 'UTC')
                   - greatest(a, g.day AT TIME ZONE 'UTC'))::float8 AS quantity
        FROM spans
        CROSS JOIN LATERAL generate_series(
            (a AT TIME ZONE 'UTC')::date::timestamp,
            (b AT TIME ZONE 'UTC')::date::timestamp,
            interval '1 day') AS g(day)
        WHERE b > a
    ),
    rows AS (
        SELECT day, session_id, meter, dimension, quantity FROM cut WHERE quantity > 0
        UNION ALL
        SELECT day, session_id, meter, dimension, quantity FROM usage_counters
        WHERE tenant_id = $1 AND day >= ($2 AT TIME ZONE 'UTC')::date
          AND day < ($3 AT TIME ZONE 'UTC')::date
        UNION ALL
        SELECT (created_at AT TIME ZONE 'UTC')::date, NULL::uuid, 'deck_bytes_added', '',
               size_bytes::float8
        FROM decks WHERE tenant_id = $1 AND created_at >= $2 AND created_at < $3
        UNION ALL
        SELECT (g.created_at AT TIME ZONE 'UTC')::date, g.session_id, 'recording_bytes_added',
               '', g.bytes::float8
        FROM session_recording_segments g JOIN sessions s ON s.id = g.session_id
        WHERE s.tenant_id = $1 AND g.created_at >= $2 AND g.created_at < $3
    )
"""


async def by_day(conn: Conn, tenant_id: UUID, lo: datetime, hi: datetime) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(
        _ROWS
        + """SELECT day, meter, dimension, sum(quantity)::float8 AS quantity FROM rows
             GROUP BY day, meter, dimension ORDER BY day, meter, dimension""",
        tenant_id,
        lo,
        hi,
    )
    return rows


async def by_session(
    conn: Conn,
    tenant_id: UUID,
    lo: datetime,
    hi: datetime,
    *,
    after: UUID | None,
    limit: int,
) -> list[asyncpg.Record]:
    """Rows of the first ``limit`` sessions (by id) after ``after`` that used anything."""
    rows: list[asyncpg.Record] = await conn.fetch(
        _ROWS
        + """, page AS (
                 SELECT DISTINCT session_id FROM rows
                 WHERE session_id IS NOT NULL AND ($4::uuid IS NULL OR session_id > $4)
                 ORDER BY session_id LIMIT $5
             )
             SELECT session_id, meter, dimension, sum(quantity)::float8 AS quantity
             FROM rows WHERE session_id IN (SELECT session_id FROM page)
             GROUP BY session_id, meter, dimension ORDER BY session_id, meter, dimension""",
        tenant_id,
        lo,
        hi,
        after,
        limit,
    )
    return rows


async def storage_bytes(conn: Conn, tenant_id: UUID) -> dict[str, int]:
    """What the tenant stores now: its decks' uploaded files and its recordings' segments."""
    row = await conn.fetchrow(
        """SELECT
             (SELECT coalesce(sum(size_bytes), 0) FROM decks WHERE tenant_id = $1)::bigint
                 AS decks,
             (SELECT coalesce(sum(g.bytes), 0) FROM session_recording_segments g
              JOIN sessions s ON s.id = g.session_id WHERE s.tenant_id = $1)::bigint
             + (SELECT coalesce(sum(recording_bytes), 0) FROM sessions
                WHERE tenant_id = $1 AND recording_key IS NOT NULL
                  AND NOT EXISTS (SELECT 1 FROM session_recording_segments g
                                  WHERE g.session_id = sessions.id))::bigint
                 AS recordings""",
        tenant_id,
    )
    assert row is not None
    return {"decks": int(row["decks"]), "recordings": int(row["recordings"])}


# -- the daily webhook ----------------------------------------------------------------------


async def tenants_with_usage(conn: Conn, day: date) -> list[UUID]:
    """Tenants that used anything on ``day`` (UTC) and were not yet reported for it. Spans are
    read from a week before the day (a session ends within its maximum duration, hours) and
    those still open, so the sweep reads a bounded range however long the table grows."""
    rows = await conn.fetch(
        """WITH bounds AS (
               SELECT ($1::date::timestamp AT TIME ZONE 'UTC') AS lo,
                      (($1::date + 1)::timestamp AT TIME ZONE 'UTC') AS hi
           )
           SELECT tenant_id FROM usage_counters WHERE day = $1
           UNION
           SELECT sp.tenant_id FROM usage_spans sp, bounds b
           WHERE sp.started_at >= b.lo - interval '7 days' AND sp.started_at < b.hi
             AND (sp.ended_at IS NULL OR sp.ended_at > b.lo)
           UNION
           SELECT sp.tenant_id FROM usage_spans sp, bounds b
           WHERE sp.ended_at IS NULL AND sp.started_at < b.hi
           EXCEPT
           SELECT tenant_id FROM usage_daily_reports WHERE day = $1""",
        day,
    )
    return [r["tenant_id"] for r in rows]


async def claim_daily(conn: asyncpg.Connection, tenant_id: UUID, day: date) -> bool:
    """Note the day reported for the tenant, in the caller's transaction; False if it was."""
    row = await conn.fetchrow(
        """INSERT INTO usage_daily_reports (tenant_id, day) VALUES ($1, $2)
           ON CONFLICT DO NOTHING RETURNING 1""",
        tenant_id,
        day,
    )
    return row is not None


async def raise_daily(
    conn: asyncpg.Connection, tenant_id: UUID, day: date, data: dict[str, Any]
) -> None:
    """The signed ``usage.daily`` event into the webhook outbox (one per endpoint and day)."""
    await conn.execute(
        "SELECT podium_webhook_event($1, 'usage.daily', $2, $3::jsonb)",
        tenant_id,
        f"usage.daily:{tenant_id}:{day.isoformat()}",
        data,
    )
