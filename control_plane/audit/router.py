"""/v1/audit: the tenant's audit trail, newest first, filtered, paged by cursor."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query
from pydantic import AwareDatetime

from control_plane import pagination
from control_plane.audit import service
from control_plane.audit.repository import Filters
from control_plane.audit.schemas import AuditPage, Method, Outcome
from control_plane.deps import Pool, TenantId, requires
from shared.schemas import NO_NUL

router = APIRouter(prefix="/v1/audit", tags=["audit"], dependencies=[requires("admin")])


@router.get("")
async def list_audit(
    tenant_id: TenantId,
    pool: Pool,
    since: Annotated[
        AwareDatetime | None,
        Query(alias="from", description="Entries at or after this time (with its offset: …Z)."),
    ] = None,
    until: Annotated[
        AwareDatetime | None, Query(alias="to", description="Entries before this time.")
    ] = None,
    route: Annotated[
        str | None,
        Query(
            max_length=300,
            pattern=NO_NUL,
            description="A route's template, e.g. /v1/sessions/{session_id}/export.",
        ),
    ] = None,
    key_id: UUID | None = None,
    target_id: Annotated[str | None, Query(max_length=200, pattern=NO_NUL)] = None,
    outcome: Outcome | None = None,
    method: Method | None = None,
    cursor: pagination.Cursor = None,
    limit: Annotated[
        int,
        Query(ge=1, le=service.MAX_PAGE, description=f"At most {service.MAX_PAGE}."),
    ] = 100,
) -> AuditPage:
    """Who changed what, and who read which records, through the API: each call with its key
    id, route, target, status, outcome, client address and time. Reading it is recorded too."""
    filters = Filters(
        since=since,
        until=until,
        route=route,
        key_id=key_id,
        target_id=target_id,
        outcome=outcome,
        method=method,
    )
    return await service.page(pool, tenant_id, filters, cursor=cursor, limit=limit)
