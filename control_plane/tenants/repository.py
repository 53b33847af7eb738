"""SQL for tenants (their API keys: ``control_plane.keys.repository``)."""

from __future__ import annotations

from uuid import UUID

import asyncpg


async def insert_tenant(conn: asyncpg.Connection, name: str) -> UUID:
    tenant_id: UUID = await conn.fetchval(
        "INSERT INTO tenants (name) VALUES ($1) RETURNING id", name
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


async def exists(conn: asyncpg.Connection | asyncpg.Pool, tenant_id: UUID) -> bool:
    found: bool = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM tenants WHERE id = $1)", tenant_id
    )
    return found
