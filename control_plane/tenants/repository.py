"""SQL for tenants and API keys."""

from __future__ import annotations

from uuid import UUID

import asyncpg


async def insert_tenant(conn: asyncpg.Connection, name: str) -> UUID:
    tenant_id: UUID = await conn.fetchval(
        "INSERT INTO tenants (name) VALUES ($1) RETURNING id", name
    )
    return tenant_id


async def insert_api_key(
    conn: asyncpg.Connection, tenant_id: UUID, prefix: str, key_hash: bytes
) -> UUID:
    key_id: UUID = await conn.fetchval(
        "INSERT INTO api_keys (tenant_id, prefix, key_hash) VALUES ($1, $2, $3) RETURNING id",
        tenant_id,
        prefix,
        key_hash,
    )
    return key_id


async def tenant_for_key_hash(
    conn: asyncpg.Connection | asyncpg.Pool, key_hash: bytes
) -> UUID | None:
    tenant_id: UUID | None = await conn.fetchval(
        "SELECT tenant_id FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL", key_hash
    )
    return tenant_id


async def set_record_sessions(conn: asyncpg.Connection, tenant_id: UUID, record: bool) -> bool:
    """The tenant's default for new sessions' recording; False when there is no such tenant."""
    done: str = await conn.execute(
        "UPDATE tenants SET record_sessions = $2 WHERE id = $1", tenant_id, record
    )
    return done.endswith(" 1")


async def get_avatar(
    conn: asyncpg.Connection | asyncpg.Pool, tenant_id: UUID
) -> dict[str, object] | None:
    """The stored style (decoded by the pool's jsonb codec); None when unset or no such tenant."""
    avatar: dict[str, object] | None = await conn.fetchval(
        "SELECT avatar FROM tenants WHERE id = $1", tenant_id
    )
    return avatar


async def set_avatar(
    conn: asyncpg.Connection | asyncpg.Pool, tenant_id: UUID, avatar: dict[str, object]
) -> bool:
    """False when there is no such tenant."""
    done: str = await conn.execute(
        "UPDATE tenants SET avatar = $2 WHERE id = $1", tenant_id, avatar
    )
    return done.endswith(" 1")
