"""/v1/tenant: settings that apply to all of the calling tenant's sessions."""

from __future__ import annotations

from fastapi import APIRouter

from control_plane.deps import Pool, Settings, TenantId, requires
from control_plane.privacy import policy
from control_plane.privacy.policy import DataPolicy, DataPolicyUpdate
from control_plane.tenants import service
from shared.schemas import AvatarStyle

router = APIRouter(prefix="/v1/tenant", tags=["tenant"], dependencies=[requires("admin")])


@router.get("/avatar")
async def get_avatar(tenant_id: TenantId, pool: Pool) -> AvatarStyle:
    """Your presenter's look: the style you stored, or the defaults."""
    return await service.get_avatar(pool, tenant_id)


@router.put("/avatar")
async def put_avatar(tenant_id: TenantId, pool: Pool, body: AvatarStyle) -> AvatarStyle:
    """Replace your presenter's look; omitted fields take their defaults. Sessions whose job
    starts (or resumes) afterwards use it."""
    return await service.set_avatar(pool, tenant_id, body)


@router.get("/data-policy")
async def get_data_policy(tenant_id: TenantId, pool: Pool, settings: Settings) -> DataPolicy:
    """What is redacted before your records are stored or sent, and how long each kind is
    kept; ``defaults`` lists the parts you did not choose."""
    return await policy.get(pool, tenant_id, settings)


@router.put("/data-policy")
async def put_data_policy(
    tenant_id: TenantId, pool: Pool, settings: Settings, body: DataPolicyUpdate
) -> DataPolicy:
    """Replace your data policy; omitted parts follow the defaults. Redaction applies to what is
    stored from now on; retention to every record at the next sweep."""
    return await policy.put(pool, tenant_id, body, settings)
