"""API keys: authentication on every request, and their lifecycle (create, list, revoke, rotate).

A key is a random 256-bit secret shown once; Postgres keeps its SHA-256 digest, its clear
prefix, its name and its scopes. Authentication caches a verified key for ``CACHE_SECONDS``
per replica, which bounds how long a key revoked anywhere (another replica, ``podium admin``)
keeps working here; the replica that revokes a key forgets it at once.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Collection
from dataclasses import dataclass
from uuid import UUID

import asyncpg

from control_plane.errors import Conflict, Forbidden, NotFound
from control_plane.keys import repository
from control_plane.keys.schemas import ALL_SCOPES, KeyCreated, KeyPublic, KeyRotated

KEY_PREFIX = "pdm_"
_PREFIX_CHARS = len(KEY_PREFIX) + 6
# How long a replica trusts a key it verified: the most a revocation waits to reach it. One
# indexed lookup per busy key per replica every few seconds is the whole cost.
CACHE_SECONDS = 5.0
# Keys that work at once, per tenant: more is a leak in someone's automation, not a need.
MAX_ACTIVE_KEYS = 100


class LastAdminKey(Conflict):
    code = "last_admin_key"


class KeyRevoked(Conflict):
    code = "key_revoked"


class TooManyKeys(Conflict):
    code = "too_many_keys"


@dataclass(frozen=True)
class Caller:
    """Who a request's API key speaks for, and what it may do."""

    tenant_id: UUID
    key_id: UUID
    scopes: frozenset[str]


def hash_key(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8")).digest()


def new_api_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


class KeyCache:
    """Recently verified keys, so a busy integrator's requests skip the key lookup.

    Only hits are cached, for ``ttl_s`` at most (less when the key's revocation is scheduled
    sooner): a revoked key stops working within that time, and an unknown key always costs a
    query (a flood of bad keys cannot fill the cache).
    """

    def __init__(self, ttl_s: float = CACHE_SECONDS, max_entries: int = 10_000) -> None:
        self._ttl_s = ttl_s
        self._max = max_entries
        self._entries: dict[bytes, tuple[Caller, float]] = {}

    def get(self, digest: bytes) -> Caller | None:
        entry = self._entries.get(digest)
        if entry is None or entry[1] < time.monotonic():
            return None
        return entry[0]

    def put(self, digest: bytes, caller: Caller, expires_in_s: float | None = None) -> None:
        if len(self._entries) >= self._max:
            self._entries.clear()  # rare; a cold cache only costs lookups
        ttl = self._ttl_s if expires_in_s is None else min(self._ttl_s, expires_in_s)
        self._entries[digest] = (caller, time.monotonic() + ttl)

    def forget(self, key_id: UUID) -> None:
        """Drop a key this replica revoked (rare: a scan is fine)."""
        self._entries = {d: e for d, e in self._entries.items() if e[0].key_id != key_id}


async def authenticate(
    pool: asyncpg.Pool, key: str, cache: KeyCache | None = None
) -> Caller | None:
    if not key.startswith(KEY_PREFIX) or len(key) > 200:
        return None
    digest = hash_key(key)
    if cache is not None and (hit := cache.get(digest)) is not None:
        return hit
    row = await repository.verify(pool, digest)
    if row is None:
        return None
    caller = Caller(row["tenant_id"], row["id"], frozenset(row["scopes"]))
    if cache is not None:
        cache.put(digest, caller, row["expires_in_s"])
    return caller


def _public(row: asyncpg.Record) -> KeyPublic:
    return KeyPublic(
        key_id=row["id"],
        prefix=row["prefix"],
        name=row["name"],
        scopes=row["scopes"],
        created_at=row["created_at"],
        last_used_at=row["last_used_at"],
        revoked_at=row["revoked_at"],
        created_by=row["created_by"],
    )


def _check_grantable(scopes: Collection[str], granter: Caller | None) -> None:
    if granter is None:
        return  # the operator (podium admin) may grant anything
    missing = sorted(set(scopes) - granter.scopes)
    if missing:
        raise Forbidden(
            f"A key can only grant scopes it has itself; this one lacks {', '.join(missing)}."
        )


async def create_key(
    conn: asyncpg.Connection,
    tenant_id: UUID,
    name: str,
    scopes: Collection[str] = ALL_SCOPES,
    *,
    created_by: Caller | None = None,
) -> KeyCreated:
    """A new key of the tenant; ``created_by`` (None for the operator) must hold its scopes."""
    unknown = sorted(set(scopes) - set(ALL_SCOPES))
    if unknown or not scopes:
        raise ValueError(f"scopes must be some of {', '.join(ALL_SCOPES)}")
    _check_grantable(scopes, created_by)
    async with conn.transaction():
        if len(await repository.lock_unrevoked(conn, tenant_id)) >= MAX_ACTIVE_KEYS:
            raise TooManyKeys(
                f"A tenant has at most {MAX_ACTIVE_KEYS} keys that are not revoked; revoke one."
            )
        key = new_api_key()
        row = await repository.insert(
            conn,
            tenant_id,
            prefix=key[:_PREFIX_CHARS],
            key_hash=hash_key(key),
            name=name,
            scopes=[s for s in ALL_SCOPES if s in scopes],
            created_by=created_by.key_id if created_by else None,
        )
    return KeyCreated(**_public(row).model_dump(), api_key=key)


async def list_keys(conn: asyncpg.Connection | asyncpg.Pool, tenant_id: UUID) -> list[KeyPublic]:
    """All the tenant's keys, newest first, revoked ones included (never a secret or digest)."""
    return [_public(r) for r in await repository.list_for_tenant(conn, tenant_id)]


async def revoke_key(
    conn: asyncpg.Connection, tenant_id: UUID, key_id: UUID, *, keep_an_admin_key: bool = True
) -> KeyPublic:
    """Revoke the key now (idempotent). With ``keep_an_admin_key`` (the API), the tenant's last
    working admin key cannot go: the tenant would lose the means to manage its keys, and only
    the operator could give it a new one."""
    async with conn.transaction():
        unrevoked = await repository.lock_unrevoked(conn, tenant_id)
        if keep_an_admin_key and any(k["id"] == key_id for k in unrevoked):
            admins = [k for k in unrevoked if "admin" in k["scopes"]]
            if [k["id"] for k in admins] == [key_id]:
                raise LastAdminKey(
                    "This is the tenant's last admin key; create another admin key (or rotate "
                    "this one) before revoking it."
                )
        row = await repository.revoke(conn, tenant_id, key_id)
    if row is None:
        raise NotFound(f"API key {key_id} was not found.")
    return _public(row)


async def rotate_key(
    conn: asyncpg.Connection,
    tenant_id: UUID,
    key_id: UUID,
    grace_s: int = 0,
    *,
    created_by: Caller | None = None,
) -> KeyRotated:
    """A new key with the old one's name and scopes; the old one is revoked ``grace_s`` from
    now. A key already revoked, or already being rotated, cannot be rotated."""
    async with conn.transaction():
        old = await repository.get(conn, tenant_id, key_id, lock=True)
        if old is None:
            raise NotFound(f"API key {key_id} was not found.")
        if old["revoked_at"] is not None:
            raise KeyRevoked(
                f"API key {key_id} is already revoked (or being rotated); rotate a working key."
            )
        new = await create_key(conn, tenant_id, old["name"], old["scopes"], created_by=created_by)
        revoked = await repository.revoke(conn, tenant_id, key_id, after_s=grace_s)
    assert revoked is not None  # the row was read in this transaction
    return KeyRotated(new_key=new, old_key=_public(revoked))
