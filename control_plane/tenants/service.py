"""Tenants: creating one (with its first API key) and its presenter's look."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from uuid import UUID

import asyncpg
from pydantic import ValidationError

from control_plane.errors import NotFound
from control_plane.keys.service import create_key
from control_plane.tenants import repository
from shared.schemas import AvatarStyle

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class NewTenant:
    tenant_id: UUID
    name: str
    api_key: str


async def create_tenant(conn: asyncpg.Connection, name: str) -> NewTenant:
    """The tenant and its first key, which has every scope."""
    name = name.strip()
    if not 1 <= len(name) <= 200:
        raise ValueError("tenant name must be 1-200 characters")
    async with conn.transaction():
        tenant_id = await repository.insert_tenant(conn, name)
        key = await create_key(conn, tenant_id, "default")
    return NewTenant(tenant_id=tenant_id, name=name, api_key=key.api_key)


async def get_avatar(conn: asyncpg.Connection | asyncpg.Pool, tenant_id: UUID) -> AvatarStyle:
    """The tenant's effective style: the stored one over the defaults."""
    stored = await repository.get_avatar(conn, tenant_id)
    if stored is None:
        return AvatarStyle()
    try:
        return AvatarStyle.model_validate(stored)
    except ValidationError:
        # Stored before AvatarStyle changed shape: a session must still start, looking default.
        logger.warning("stored avatar style no longer valid", extra={"tenant_id": str(tenant_id)})
        return AvatarStyle()


async def set_avatar(
    conn: asyncpg.Connection | asyncpg.Pool, tenant_id: UUID, avatar: AvatarStyle
) -> AvatarStyle:
    """Replace the tenant's style; every field is stored, so later default changes do not move
    a style the tenant chose."""
    if not await repository.set_avatar(conn, tenant_id, avatar.model_dump(mode="json")):
        raise NotFound(f"Tenant {tenant_id} was not found.")
    return avatar
