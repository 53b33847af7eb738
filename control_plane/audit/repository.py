"""SQL for the audit trail: one INSERT per call, and a tenant's entries newest first."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeAlias
from uuid import UUID

import asyncpg

from control_plane.audit.schemas import AuditRecord

Conn: TypeAlias = asyncpg.Connection | asyncpg.Pool


async def insert(conn: Conn, record: AuditRecord) -> None:
    await conn.execute(
        """INSERT INTO audit_log
            (tenant_id, key_id, actor, method, route, target_id, status, outcome, client_ip)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)""",
        record.tenant_id,
        record.key_id,
        record.actor,
        record.method,
        record.route,
        record.target_id,
        record.status,
        record.outcome,
        record.client_ip,
    )


@dataclass(frozen=True)
class Filters:
    """Each one set narrows the list; ``since`` is inclusive, ``until`` exclusive."""

    since: datetime | None = None
    until: datetime | None = None
    route: str | None = None
    key_id: UUID | None = None
    target_id: str | None = None
    outcome: str | None = None
    method: str | None = None


_COLUMNS = {
    "route": "route",
    "key_id": "key_id",
    "target_id": "target_id",
    "outcome": "outcome",
    "method": "method",
}


async def list_for_tenant(
    conn: Conn, tenant_id: UUID, filters: Filters, *, before_id: int | None, limit: int
) -> list[asyncpg.Record]:
    """The tenant's entries with ``id < before_id`` (all, when None), newest first. Only the
    filters that are set become conditions, so every query is one backward range of the
    (tenant_id, id) index."""
    where = ["tenant_id = $1"]
    args: list[Any] = [tenant_id]

    def condition(template: str, value: Any) -> None:
        args.append(value)
        where.append(template.format(f"${len(args)}"))

    if before_id is not None:
        condition("id < {}", before_id)
    if filters.since is not None:
        condition("at >= {}", filters.since)
    if filters.until is not None:
        condition("at < {}", filters.until)
    for field, column in _COLUMNS.items():
        value = getattr(filters, field)
        if value is not None:
            condition(f"{column} = {{}}", value)
    args.append(limit)
    rows: list[asyncpg.Record] = await conn.fetch(
        f"""SELECT id, at, key_id, actor, method, route, target_id, status, outcome, client_ip
        FROM audit_log WHERE {" AND ".join(where)}
        ORDER BY id DESC LIMIT ${len(args)}""",
        *args,
    )
    return rows
