"""SQL for webhook endpoints and the delivery outbox (filled by triggers, see 0006)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypeAlias
from uuid import UUID, uuid4

import asyncpg

_ENDPOINT = "id, tenant_id, url, events, enabled, created_at"
# The log lists deliveries without their payloads (each up to an escalation's transcript);
# one delivery is read whole.
_DELIVERY_SUMMARY = (
    "id, endpoint_id, event_id, event_type, status, attempts, last_status, last_error, "
    "next_attempt_at, created_at, delivered_at"
)
_DELIVERY = f"{_DELIVERY_SUMMARY}, payload"

Conn: TypeAlias = asyncpg.Connection | asyncpg.Pool


async def create_endpoint(
    conn: Conn, tenant_id: UUID, url: str, secret: str, events: list[str]
) -> asyncpg.Record:
    row: asyncpg.Record = await conn.fetchrow(
        f"""INSERT INTO webhook_endpoints (id, tenant_id, url, secret, events)
        VALUES ($1, $2, $3, $4, $5) RETURNING {_ENDPOINT}""",
        uuid4(),
        tenant_id,
        url,
        secret,
        events,
    )
    return row


async def list_endpoints(conn: Conn, tenant_id: UUID) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(
        f"SELECT {_ENDPOINT} FROM webhook_endpoints WHERE tenant_id = $1 ORDER BY created_at",
        tenant_id,
    )
    return rows


async def delete_endpoint(conn: Conn, tenant_id: UUID, endpoint_id: UUID) -> bool:
    done: str = await conn.execute(
        "DELETE FROM webhook_endpoints WHERE id = $1 AND tenant_id = $2", endpoint_id, tenant_id
    )
    return done.endswith(" 1")


async def list_deliveries(
    conn: Conn,
    tenant_id: UUID,
    *,
    endpoint_id: UUID | None,
    status: str | None,
    event_type: str | None,
    before: tuple[datetime, UUID] | None,
    limit: int,
) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(
        f"""
        SELECT {_DELIVERY_SUMMARY} FROM webhook_deliveries
        WHERE tenant_id = $1
          AND ($2::uuid IS NULL OR endpoint_id = $2)
          AND ($3::text IS NULL OR status = $3)
          AND ($4::text IS NULL OR event_type = $4)
          AND ($5::timestamptz IS NULL OR (created_at, id) < ($5, $6::uuid))
        ORDER BY created_at DESC, id DESC LIMIT $7
        """,
        tenant_id,
        endpoint_id,
        status,
        event_type,
        before[0] if before else None,
        before[1] if before else None,
        limit,
    )
    return rows


async def get_delivery(conn: Conn, tenant_id: UUID, delivery_id: UUID) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(
        f"SELECT {_DELIVERY} FROM webhook_deliveries WHERE id = $1 AND tenant_id = $2",
        delivery_id,
        tenant_id,
    )
    return row


async def replay(conn: Conn, tenant_id: UUID, delivery_id: UUID) -> asyncpg.Record | None:
    """Send a delivery again (delivered or failed alike), now, with a fresh attempt budget."""
    row: asyncpg.Record | None = await conn.fetchrow(
        f"""
        UPDATE webhook_deliveries SET status = 'pending', attempts = 0, next_attempt_at = now(),
            last_error = NULL
        WHERE id = $1 AND tenant_id = $2 RETURNING {_DELIVERY}
        """,
        delivery_id,
        tenant_id,
    )
    return row


async def claim_due(
    conn: Conn, *, lease_s: float, limit: int, per_endpoint: int, sending: dict[UUID, int]
) -> list[asyncpg.Record]:
    """Up to ``limit`` due deliveries, each leased to this sender (pushed out by ``lease_s``) so
    another replica's sender skips it; a sender that dies mid-send leaves it to be retried.

    At most ``per_endpoint`` per endpoint counting the ``sending`` ones (endpoint id -> in
    flight here), the oldest of each endpoint first and endpoints taking turns, so a backlog for
    one endpoint does not hold back another's deliveries. The due test is repeated where rows
    are locked: a row another sender claimed meanwhile is no longer due when re-checked.
    """
    rows: list[asyncpg.Record] = await conn.fetch(
        """
        UPDATE webhook_deliveries d SET next_attempt_at = now() + make_interval(secs => $1),
            attempts = d.attempts + 1
        FROM webhook_endpoints e
        WHERE d.endpoint_id = e.id AND d.id IN (
            SELECT id FROM webhook_deliveries
            WHERE status = 'pending' AND next_attempt_at <= now() AND id IN (
                SELECT ranked.id FROM (
                    SELECT id, endpoint_id, next_attempt_at, row_number() OVER (
                        PARTITION BY endpoint_id ORDER BY next_attempt_at) AS turn
                    FROM webhook_deliveries
                    WHERE status = 'pending' AND next_attempt_at <= now()
                ) ranked
                LEFT JOIN unnest($4::uuid[], $5::int[]) AS busy(endpoint_id, sending)
                    USING (endpoint_id)
                WHERE ranked.turn + coalesce(busy.sending, 0) <= $3
                ORDER BY ranked.turn, ranked.next_attempt_at LIMIT $2
            )
            FOR UPDATE SKIP LOCKED
        )
        RETURNING d.id, d.endpoint_id, d.payload, d.attempts, d.event_type, e.url, e.secret
        """,
        lease_s,
        limit,
        per_endpoint,
        list(sending),
        list(sending.values()),
    )
    return rows


async def mark_delivered(conn: Conn, delivery_id: UUID, status: int) -> None:
    await conn.execute(
        """UPDATE webhook_deliveries SET status = 'delivered', delivered_at = now(),
        last_status = $2, last_error = NULL WHERE id = $1""",
        delivery_id,
        status,
    )


async def mark_attempt_failed(
    conn: Conn,
    delivery_id: UUID,
    *,
    status: int | None,
    error: str,
    retry_in_s: float | None,
) -> None:
    """A failed attempt: retried after ``retry_in_s``, or ``failed`` for good when None."""
    await conn.execute(
        """
        UPDATE webhook_deliveries SET last_status = $2, last_error = $3,
            status = CASE WHEN $4::float8 IS NULL THEN 'failed' ELSE 'pending' END,
            next_attempt_at = CASE WHEN $4::float8 IS NULL THEN next_attempt_at
                                   ELSE now() + make_interval(secs => $4) END
        WHERE id = $1
        """,
        delivery_id,
        status,
        error[:500],
        retry_in_s,
    )


def as_dict(row: asyncpg.Record) -> dict[str, Any]:
    data = dict(row)
    data["delivery_id"] = data.pop("id")
    if data["status"] != "pending":
        data["next_attempt_at"] = None
    return data
