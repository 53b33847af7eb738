"""SQL for API keys. A key is found by its SHA-256 digest; the clear prefix only labels it."""

from __future__ import annotations

from typing import TypeAlias
from uuid import UUID

import asyncpg

Conn: TypeAlias = asyncpg.Connection | asyncpg.Pool

_KEY = "id, tenant_id, prefix, name, scopes, created_at, last_used_at, revoked_at, created_by"
# A key works until its revoked_at, which a rotation's grace period sets in the future.
_WORKS = "(revoked_at IS NULL OR revoked_at > now())"


async def insert(
    conn: Conn,
    tenant_id: UUID,
    *,
    prefix: str,
    key_hash: bytes,
    name: str,
    scopes: list[str],
    created_by: UUID | None,
) -> asyncpg.Record:
    row: asyncpg.Record = await conn.fetchrow(
        f"""INSERT INTO api_keys (tenant_id, prefix, key_hash, name, scopes, created_by)
        VALUES ($1, $2, $3, $4, $5, $6) RETURNING {_KEY}""",
        tenant_id,
        prefix,
        key_hash,
        name,
        scopes,
        created_by,
    )
    return row


async def verify(conn: Conn, key_hash: bytes) -> asyncpg.Record | None:
    """The working key with this digest (id, tenant_id, scopes, and ``expires_in_s`` when its
    revocation is scheduled), recording its use unless that was recorded within the minute: a
    busy key costs one write a minute, not one per lookup."""
    row: asyncpg.Record | None = await conn.fetchrow(
        f"""WITH k AS (
            SELECT id, tenant_id, scopes, revoked_at, last_used_at FROM api_keys
            WHERE key_hash = $1 AND {_WORKS}
        ), used AS (
            UPDATE api_keys SET last_used_at = now() FROM k
            WHERE api_keys.id = k.id
              AND (k.last_used_at IS NULL OR k.last_used_at < now() - interval '1 minute')
        )
        SELECT id, tenant_id, scopes,
               extract(epoch FROM k.revoked_at - now())::float8 AS expires_in_s
        FROM k""",
        key_hash,
    )
    return row


async def list_for_tenant(conn: Conn, tenant_id: UUID) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(
        f"SELECT {_KEY} FROM api_keys WHERE tenant_id = $1 ORDER BY created_at DESC, id",
        tenant_id,
    )
    return rows


async def get(
    conn: Conn, tenant_id: UUID, key_id: UUID, *, lock: bool = False
) -> asyncpg.Record | None:
    """The key; with ``lock``, held until the transaction ends (one rotation at a time)."""
    row: asyncpg.Record | None = await conn.fetchrow(
        f"SELECT {_KEY} FROM api_keys WHERE id = $1 AND tenant_id = $2"
        + (" FOR UPDATE" if lock else ""),
        key_id,
        tenant_id,
    )
    return row


async def lock_unrevoked(conn: asyncpg.Connection, tenant_id: UUID) -> list[asyncpg.Record]:
    """The tenant's keys with no revocation set, locked until the transaction ends, so two
    revocations at once cannot each leave the other as the last admin key."""
    rows: list[asyncpg.Record] = await conn.fetch(
        f"""SELECT {_KEY} FROM api_keys WHERE tenant_id = $1 AND revoked_at IS NULL
        ORDER BY id FOR UPDATE""",
        tenant_id,
    )
    return rows


async def revoke(
    conn: Conn, tenant_id: UUID, key_id: UUID, after_s: float = 0
) -> asyncpg.Record | None:
    """Set the key's revocation ``after_s`` from now, or bring a later one forward; a key
    already refused keeps its time. None when the tenant has no such key."""
    row: asyncpg.Record | None = await conn.fetchrow(
        f"""UPDATE api_keys
        SET revoked_at = least(coalesce(revoked_at, 'infinity'),
                               now() + make_interval(secs => $3))
        WHERE id = $1 AND tenant_id = $2 RETURNING {_KEY}""",
        key_id,
        tenant_id,
        after_s,
    )
    return row
