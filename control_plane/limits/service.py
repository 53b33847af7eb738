"""Effective limits (a tenant's own values over the defaults) and the count limits' checks.

Rate limits are counted by :class:`~control_plane.limits.limiter.RateLimiter`; the count limits
(uploads in flight, webhook endpoints, and concurrent sessions, which session admission checks)
are counted in Postgres under a per-tenant lock, so they hold on every replica and without Redis.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from uuid import UUID

import asyncpg

from control_plane.errors import NotFound, TooManyRequests
from control_plane.limits import repository
from control_plane.limits.limiter import RateLimiter
from control_plane.limits.models import LIMIT_NAMES, LimitName, TenantLimits, refusal
from control_plane.metrics import RATE_LIMITED
from shared.settings import ControlPlaneSettings

# How stale a replica's view of a tenant's limits may be: `podium admin limits --set` applies
# everywhere within this time, and busy tenants cost one small query per replica per period.
CACHE_SECONDS = 5.0
_CACHE_MAX = 10_000
# Count limits have no window to wait for: the client is told to look again after this long.
UPLOAD_RETRY_S = 5
ENDPOINT_RETRY_S = 60


def defaults(settings: ControlPlaneSettings) -> TenantLimits:
    return TenantLimits(**{name: getattr(settings, f"limit_{name}") for name in LIMIT_NAMES})


class _OverrideCache:
    """Each tenant's stored values, for ``CACHE_SECONDS``; the defaults are applied on read, so
    the cache does not depend on settings."""

    def __init__(self) -> None:
        self._entries: dict[UUID, tuple[float, dict[LimitName, int]]] = {}

    async def get(self, conn: repository.Conn, tenant_id: UUID) -> dict[LimitName, int]:
        now = time.monotonic()
        entry = self._entries.get(tenant_id)
        if entry is not None and entry[0] > now:
            return entry[1]
        overrides = await repository.get_overrides(conn, tenant_id)
        if len(self._entries) >= _CACHE_MAX:
            self._entries.clear()  # rare; a cold cache costs one query per tenant
        self._entries[tenant_id] = (now + CACHE_SECONDS, overrides)
        return overrides


_cache = _OverrideCache()


async def limits_for(
    pool: asyncpg.Pool | asyncpg.Connection, tenant_id: UUID, settings: ControlPlaneSettings
) -> TenantLimits:
    """The tenant's effective limits, at most ``CACHE_SECONDS`` old."""
    overrides = await _cache.get(pool, tenant_id)
    return TenantLimits.model_validate({**defaults(settings).model_dump(), **overrides})


_session_tenants: dict[UUID, UUID] = {}


async def session_tenant(conn: repository.Conn, session_id: UUID) -> UUID | None:
    """The session's tenant (it never changes, so it is kept); None for an unknown session."""
    tenant_id = _session_tenants.get(session_id)
    if tenant_id is None:
        tenant_id = await repository.session_tenant(conn, session_id)
        if tenant_id is not None:
            if len(_session_tenants) >= _CACHE_MAX:
                _session_tenants.clear()
            _session_tenants[session_id] = tenant_id
    return tenant_id


def refused(name: LimitName, value: int, retry_after_s: float, hint: str = "") -> TooManyRequests:
    RATE_LIMITED.labels(name).inc()
    return refusal(name, value, retry_after_s, hint)


async def check_rate(
    limiter: RateLimiter, name: LimitName, limit: int, scope: str, cost: int = 1
) -> None:
    """Count a request (``cost`` of them) in ``scope``'s window; 429 when over the limit."""
    wait = await limiter.hit(name, limit, scope, cost)
    if wait is not None:
        raise refused(name, limit, wait)


@dataclass(frozen=True)
class LimitValue:
    name: LimitName
    value: int
    default: bool


async def describe_tenant(
    conn: asyncpg.Connection, tenant_id: UUID, settings: ControlPlaneSettings
) -> list[LimitValue]:
    """Every limit's effective value and whether it is the default (read fresh, not cached)."""
    if not await repository.tenant_exists(conn, tenant_id):
        raise NotFound(f"no tenant {tenant_id}")
    overrides = await repository.get_overrides(conn, tenant_id)
    base = defaults(settings)
    return [
        LimitValue(name, overrides.get(name, getattr(base, name)), name not in overrides)
        for name in LIMIT_NAMES
    ]


async def change(
    conn: asyncpg.Connection, tenant_id: UUID, values: dict[LimitName, int | None]
) -> None:
    """Set limits (None: back to the default). Values are checked by :class:`TenantLimits`'s
    bounds before this is called, and by Postgres again."""
    if not await repository.set_overrides(conn, tenant_id, values):
        raise NotFound(f"no tenant {tenant_id}")


@asynccontextmanager
async def upload_slot(
    pool: asyncpg.Pool, tenant_id: UUID, limit: int, hold_s: float
) -> AsyncIterator[None]:
    """Hold one of the tenant's ``uploads_in_flight`` while an upload is checked. Its deck, once
    recorded as pending, counts by itself; the slot is held until ``hold_s`` at most, should this
    replica die mid-check."""
    async with pool.acquire() as conn, conn.transaction():
        await repository.lock_tenant(conn, tenant_id, "uploads")
        if await repository.uploads_in_flight(conn, tenant_id) >= limit:
            raise refused(
                "uploads_in_flight",
                limit,
                UPLOAD_RETRY_S,
                "Wait until one of your decks is ready or failed. ",
            )
        check_id = await repository.insert_upload_check(conn, tenant_id, timedelta(seconds=hold_s))
    try:
        yield
    finally:
        await repository.delete_upload_check(pool, check_id)


async def check_webhook_endpoints(conn: asyncpg.Connection, tenant_id: UUID, limit: int) -> None:
    """Within the transaction that inserts the endpoint: a concurrent creation waits for it."""
    await repository.lock_tenant(conn, tenant_id, "webhook_endpoints")
    if await repository.webhook_endpoints(conn, tenant_id) >= limit:
        raise refused(
            "webhook_endpoints", limit, ENDPOINT_RETRY_S, "Delete an endpoint to add another. "
        )
