"""Reading the audit trail, for GET /v1/audit and ``podium admin audit``: a tenant's entries,
newest first, filtered, a page at a time."""

from __future__ import annotations

from uuid import UUID

import asyncpg

from control_plane import pagination
from control_plane.audit import repository
from control_plane.audit.repository import Conn, Filters
from control_plane.audit.schemas import AuditEntry, AuditPage
from control_plane.errors import PodiumError

MAX_PAGE = 500


class InvalidFilter(PodiumError):
    status_code = 422
    code = "invalid_filter"


def check(filters: Filters) -> None:
    if filters.since and filters.until and filters.since >= filters.until:
        raise InvalidFilter(
            f"'from' ({filters.since.isoformat()}) must be before 'to' "
            f"({filters.until.isoformat()})."
        )


async def page(
    conn: Conn, tenant_id: UUID, filters: Filters, *, cursor: str | None, limit: int
) -> AuditPage:
    """One page; ``next_cursor`` continues with older entries. Entries written while a reader
    pages (its own reads among them) are newer than its cursor, so they never shift a page."""
    check(filters)
    before_id = pagination.decode(cursor, int)[0] if cursor else None
    rows = await repository.list_for_tenant(
        conn, tenant_id, filters, before_id=before_id, limit=limit + 1
    )
    items = [_entry(r) for r in rows[:limit]]
    more = len(rows) > limit
    return AuditPage(items=items, next_cursor=pagination.encode(items[-1].id) if more else None)


def _entry(row: asyncpg.Record) -> AuditEntry:
    data = dict(row.items())
    ip = data.pop("client_ip")
    return AuditEntry(**data, client_ip=str(ip) if ip is not None else None)
