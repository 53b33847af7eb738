"""/v1/usage (what the tenant used) and the worker's usage reports."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query, status

from control_plane import pagination
from control_plane.deps import Pool, Settings, TenantId, WorkerSessionId, requires
from control_plane.errors import NotFound
from control_plane.usage import service
from control_plane.usage.schemas import GroupBy, UsagePage
from shared.usage import UsageReport

router = APIRouter(prefix="/v1/usage", tags=["usage"], dependencies=[requires("admin")])
internal_router = APIRouter(
    prefix="/internal/v1/sessions", tags=["internal"], include_in_schema=False
)


def _today() -> date:
    return datetime.now(UTC).date()


@router.get("")
async def get_usage(
    tenant_id: TenantId,
    pool: Pool,
    first: Annotated[
        date | None,
        Query(
            alias="from", description="The first UTC day included (YYYY-MM-DD); today if omitted."
        ),
    ] = None,
    last: Annotated[
        date | None,
        Query(alias="to", description="The last UTC day included (YYYY-MM-DD); today if omitted."),
    ] = None,
    group_by: Annotated[GroupBy, Query(description="'day' or 'session'.")] = "day",
    cursor: pagination.Cursor = None,
    limit: Annotated[
        int,
        Query(
            ge=1,
            le=service.MAX_PAGE,
            description=f"Sessions per page with group_by=session, at most {service.MAX_PAGE}.",
        ),
    ] = 100,
) -> UsagePage:
    """What the tenant used between two UTC days (at most 366): session and participant
    minutes, STT audio seconds and TTS characters by provider, LLM tokens by model, avatar
    minutes by provider, per day or per session; and the bytes it stores now."""
    today = _today()
    return await service.usage(
        pool, tenant_id, first or last or today, last or today, group_by, cursor=cursor, limit=limit
    )


@internal_router.post("/{session_id}/usage", status_code=status.HTTP_204_NO_CONTENT)
async def report_usage(
    session_id: UUID, scope: WorkerSessionId, pool: Pool, settings: Settings, body: UsageReport
) -> None:
    """A job's cumulative usage totals; only what grew since its last report is counted."""
    if scope != session_id:
        raise NotFound(f"Session {session_id} was not found.")
    await service.take_report(pool, settings, session_id, body)
