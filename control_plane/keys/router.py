"""/v1/keys: a tenant's API keys, managed with an admin key. A new key's secret is in its
creation's answer only."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Body, status

from control_plane.deps import ApiCaller, ApiKeyCache, Pool, TenantId, requires
from control_plane.keys import service
from control_plane.keys.schemas import KeyCreate, KeyCreated, KeyPublic, KeyRotate, KeyRotated

router = APIRouter(prefix="/v1/keys", tags=["api keys"], dependencies=[requires("admin")])


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_key(caller: ApiCaller, pool: Pool, body: KeyCreate) -> KeyCreated:
    """A new key with some of your key's scopes; store `api_key` now, it is not shown again."""
    async with pool.acquire() as conn:
        return await service.create_key(
            conn, caller.tenant_id, body.name, body.scopes, created_by=caller
        )


@router.get("")
async def list_keys(tenant_id: TenantId, pool: Pool) -> list[KeyPublic]:
    """Your keys, newest first, revoked ones included: prefix, name, scopes and use."""
    return await service.list_keys(pool, tenant_id)


@router.delete("/{key_id}", status_code=status.HTTP_204_NO_CONTENT)
async def revoke_key(tenant_id: TenantId, pool: Pool, cache: ApiKeyCache, key_id: UUID) -> None:
    """Revoke a key: refused at once here, within seconds everywhere. Your last admin key
    cannot be revoked (409 last_admin_key): create or rotate to another first."""
    async with pool.acquire() as conn:
        await service.revoke_key(conn, tenant_id, key_id)
    cache.forget(key_id)


@router.post("/{key_id}/rotate", status_code=status.HTTP_201_CREATED)
async def rotate_key(
    caller: ApiCaller,
    pool: Pool,
    cache: ApiKeyCache,
    key_id: UUID,
    body: Annotated[KeyRotate | None, Body()] = None,
) -> KeyRotated:
    """A new key with the same name and scopes; the old one works `grace_seconds` more (0, the
    default, revokes it now)."""
    grace_s = body.grace_seconds if body else 0
    async with pool.acquire() as conn:
        rotated = await service.rotate_key(
            conn, caller.tenant_id, key_id, grace_s, created_by=caller
        )
    if grace_s == 0:
        cache.forget(key_id)
    return rotated
