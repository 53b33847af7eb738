"""/v1/sessions/{id}/escalations: the hand-offs a presenter asked for, for integrators."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter

from control_plane.conversation import repository
from control_plane.deps import Pool, TenantId, requires
from control_plane.errors import NotFound
from control_plane.sessions import repository as sessions
from shared.schemas import Escalation

router = APIRouter(
    prefix="/v1/sessions", tags=["sessions"], dependencies=[requires("records:read")]
)


@router.get("/{session_id}/escalations")
async def list_escalations(tenant_id: TenantId, pool: Pool, session_id: UUID) -> list[Escalation]:
    """Each escalation with its reason, slide, last question, attempted answer and transcript."""
    if await sessions.get_for_tenant(pool, tenant_id, session_id) is None:
        raise NotFound(f"Session {session_id} was not found.")
    return await repository.list_escalations(pool, session_id)
