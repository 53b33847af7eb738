"""SQL for per-tenant limits and the counts that the count limits are checked against."""

from __future__ import annotations

from datetime import timedelta
from typing import TypeAlias
from uuid import UUID

import asyncpg

from control_plane.limits.models import LIMIT_NAMES, LimitName

Conn: TypeAlias = asyncpg.Connection | asyncpg.Pool

_COLUMNS = ", ".join(LIMIT_NAMES)


async def get_overrides(conn: Conn, tenant_id: UUID) -> dict[LimitName, int]:
    """The values the tenant chose (its other limits are the defaults)."""
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM tenant_limits WHERE tenant_id = $1", tenant_id
    )
    if row is None:
        return {}
    return {name: row[name] for name in LIMIT_NAMES if row[name] is not None}


async def tenant_exists(conn: Conn, tenant_id: UUID) -> bool:
    return bool(
        await conn.fetchval("SELECT EXISTS (SELECT 1 FROM tenants WHERE id = $1)", tenant_id)
    )


async def set_overrides(
    conn: asyncpg.Connection, tenant_id: UUID, values: dict[LimitName, int | None]
) -> bool:
    """Store ``values`` (None: back to the default); False when there is no such tenant."""
    names = [name for name in LIMIT_NAMES if name in values]  # only known column names
    if not names:
        return await tenant_exists(conn, tenant_id)
    columns = ", ".join(names)
    placeholders = ", ".join(f"${i}" for i in range(2, len(names) + 2))
    updates = ", ".join(f"{name} = EXCLUDED.{name}" for name in names)
    try:
        await conn.execute(
            f"""INSERT INTO tenant_limits (tenant_id, {columns}) VALUES ($1, {placeholders})
            ON CONFLICT (tenant_id) DO UPDATE SET {updates}, updated_at = now()""",
            tenant_id,
            *(values[name] for name in names),
        )
    except asyncpg.ForeignKeyViolationError:
        return False
    return True


async def lock_tenant(conn: asyncpg.Connection, tenant_id: UUID, what: str) -> None:
    """Serialise check-then-act on one tenant's ``what`` until the transaction ends (every
    replica takes the same lock)."""
    await conn.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", f"podium.limits.{what}.{tenant_id}"
    )


async def uploads_in_flight(conn: asyncpg.Connection, tenant_id: UUID) -> int:
    """The tenant's decks still ingesting plus its uploads being checked right now."""
    count: int = await conn.fetchval(
        """SELECT (SELECT count(*) FROM decks
                   WHERE tenant_id = $1 AND status IN ('pending', 'processing'))
                + (SELECT count(*) FROM upload_checks
                   WHERE tenant_id = $1 AND expires_at > now())""",
        tenant_id,
    )
    return count


async def insert_upload_check(conn: asyncpg.Connection, tenant_id: UUID, hold: timedelta) -> UUID:
    await conn.execute(
        "DELETE FROM upload_checks WHERE tenant_id = $1 AND expires_at <= now()", tenant_id
    )
    check_id: UUID = await conn.fetchval(
        "INSERT INTO upload_checks (tenant_id, expires_at) VALUES ($1, now() + $2) RETURNING id",
        tenant_id,
        hold,
    )
    return check_id


async def delete_upload_check(conn: Conn, check_id: UUID) -> None:
    await conn.execute("DELETE FROM upload_checks WHERE id = $1", check_id)


async def webhook_endpoints(conn: asyncpg.Connection, tenant_id: UUID) -> int:
    count: int = await conn.fetchval(
        "SELECT count(*) FROM webhook_endpoints WHERE tenant_id = $1", tenant_id
    )
    return count


async def session_tenant(conn: Conn, session_id: UUID) -> UUID | None:
    tenant_id: UUID | None = await conn.fetchval(
        "SELECT tenant_id FROM sessions WHERE id = $1", session_id
    )
    return tenant_id
