"""/v1/sessions/{id}/escalations: the hand-offs a presenter asked for, for integrators."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query

from control_plane import pagination
from control_plane.conversation import repository
from control_plane.conversation.schemas import EscalationPage
from control_plane.deps import Pool, TenantId, requires
from control_plane.errors import NotFound
from control_plane.sessions import repository as sessions

router = APIRouter(
    prefix="/v1/sessions", tags=["sessions"], dependencies=[requires("records:read")]
)


# Each escalation carries up to 200 transcript lines: pages stay small.
MAX_PAGE = 100


@router.get("/{session_id}/escalations")
async def list_escalations(
    tenant_id: TenantId,
    pool: Pool,
    session_id: UUID,
    cursor: pagination.Cursor = None,
    limit: Annotated[
        int, Query(ge=1, le=MAX_PAGE, description=f"Items per page, at most {MAX_PAGE}.")
    ] = 20,
) -> EscalationPage:
    """Each escalation with its reason, slide, last question, attempted answer and transcript,
    oldest first."""
    if await sessions.get_for_tenant(pool, tenant_id, session_id) is None:
        raise NotFound(f"Session {session_id} was not found.")
    after = pagination.decode(cursor, datetime, UUID) if cursor else None
    found = await repository.list_escalations(pool, session_id, after=after, limit=limit + 1)
    page = found[:limit]
    last = page[-1] if len(found) > limit else None
    return EscalationPage(
        session_id=session_id,
        items=page,
        next_cursor=pagination.encode(last.created_at, last.escalation_id) if last else None,
    )
