"""Tenants and their API keys. A key is shown once, at creation; only its digest is stored."""

from __future__ import annotations

import hashlib
import logging
import secrets
import time
from dataclasses import dataclass
from uuid import UUID

import asyncpg
from pydantic import ValidationError

from control_plane.errors import NotFound
from control_plane.tenants import repository
from shared.schemas import AvatarStyle

logger = logging.getLogger(__name__)

KEY_PREFIX = "pdm_"


@dataclass(frozen=True)
class NewTenant:
    tenant_id: UUID
    name: str
    api_key: str


def hash_key(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8")).digest()


def new_api_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


async def create_tenant(conn: asyncpg.Connection, name: str) -> NewTenant:
    name = name.strip()
    if not 1 <= len(name) <= 200:
        raise ValueError("tenant name must be 1-200 characters")
    key = new_api_key()
    async with conn.transaction():
        tenant_id = await repository.insert_tenant(conn, name)
        await repository.insert_api_key(conn, tenant_id, key[: len(KEY_PREFIX) + 6], hash_key(key))
    return NewTenant(tenant_id=tenant_id, name=name, api_key=key)


class KeyCache:
    """Recently verified keys, so a busy integrator's requests skip the key lookup.

    Only hits are cached, for ``ttl_s``: a revoked key stops working within that time, and an
    unknown key always costs a query (a flood of bad keys cannot fill the cache).
    """

    def __init__(self, ttl_s: float = 30.0, max_entries: int = 10_000) -> None:
        self._ttl_s = ttl_s
        self._max = max_entries
        self._entries: dict[bytes, tuple[UUID, float]] = {}

    def get(self, digest: bytes) -> UUID | None:
        entry = self._entries.get(digest)
        if entry is None or entry[1] < time.monotonic():
            return None
        return entry[0]

    def put(self, digest: bytes, tenant_id: UUID) -> None:
        if len(self._entries) >= self._max:
            self._entries.clear()  # rare; a cold cache only costs lookups
        self._entries[digest] = (tenant_id, time.monotonic() + self._ttl_s)


async def authenticate(pool: asyncpg.Pool, key: str, cache: KeyCache | None = None) -> UUID | None:
    if not key.startswith(KEY_PREFIX) or len(key) > 200:
        return None
    digest = hash_key(key)
    if cache is not None and (hit := cache.get(digest)) is not None:
        return hit
    tenant_id = await repository.tenant_for_key_hash(pool, digest)
    if tenant_id is not None and cache is not None:
        cache.put(digest, tenant_id)
    return tenant_id


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
