"""Tenants and their API keys. A key is shown once, at creation; only its digest is stored."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from uuid import UUID

import asyncpg

from control_plane.tenants import repository

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


async def authenticate(pool: asyncpg.Pool, key: str) -> UUID | None:
    if not key.startswith(KEY_PREFIX) or len(key) > 200:
        return None
    return await repository.tenant_for_key_hash(pool, hash_key(key))
