"""/v1/erasures: erase one end user's words from every session of the calling tenant.

The ``admin`` scope: an erasure reaches across all of the tenant's sessions and cannot be
undone, which is a data-protection officer's call, not an app's that creates sessions with a
``sessions`` key."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter

from control_plane.deps import Pool, Storage, TenantId, requires
from control_plane.privacy import service
from control_plane.privacy.schemas import ErasureCreate, ErasureReport

router = APIRouter(prefix="/v1/erasures", tags=["privacy"], dependencies=[requires("admin")])


@router.post("")
async def create_erasure(
    tenant_id: TenantId, pool: Pool, storage: Storage, body: ErasureCreate
) -> ErasureReport:
    """Delete what ``identity`` said in every session of yours (their messages and turns), the
    escalations of those sessions (each copies the transcript), the webhook deliveries that
    carried them, and the recordings of the sessions where nobody else spoke; the identity is
    replaced by ``erased`` where it names who changed a slide or got a token. Answers with what
    was deleted, once it is; an ``erasure.completed`` webhook (with the identity's SHA-256,
    never the identity) says so too. Words spoken after this in a live session are not covered:
    end it first."""
    return await service.erase(pool, storage, tenant_id, body.identity)


@router.get("/{erasure_id}")
async def get_erasure(tenant_id: TenantId, pool: Pool, erasure_id: UUID) -> ErasureReport:
    """The report of an erasure (without the identity, which Podium did not keep)."""
    return await service.get_erasure(pool, tenant_id, erasure_id)
