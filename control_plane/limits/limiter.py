"""Rate limits that hold across control-plane replicas: a moving window per limit and scope in
Redis (the ``limits`` library's storage and Lua scripts).

When Redis does not answer, this replica counts in its own memory with the same limits, so a
Redis outage means neither "no limits" nor "everything refused": each replica enforces the
limit by itself (a tenant spread over N replicas may get up to N times its rate), logs one
warning per outage and sets ``podium_limits_degraded``. Redis is tried again at most every
``probe_s``; once it answers, counting returns there (this replica's memory counts are dropped).
"""

from __future__ import annotations

import logging
import time
from types import TracebackType

from limits.aio.storage import MemoryStorage, MovingWindowSupport, RedisStorage
from redis.asyncio import ConnectionPool
from redis.exceptions import RedisError

from control_plane.limits.models import KINDS, LimitName
from control_plane.metrics import LIMITS_DEGRADED, LIMITS_LOCAL_CHECKS

logger = logging.getLogger(__name__)

KEY_PREFIX = "podium:limits"
_REDIS_DOWN = (RedisError, OSError, TimeoutError)


class RateLimiter:
    """App-scoped (``async with`` closes its Redis connections)."""

    def __init__(self, redis_url: str, *, timeout_s: float = 0.5, probe_s: float = 1.0) -> None:
        # Its own pool, with timeouts: a Redis that hangs must not hold requests for long.
        self._pool = ConnectionPool.from_url(
            redis_url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s
        )
        self._redis = RedisStorage(
            f"async+{redis_url}",
            implementation="redispy",
            key_prefix=KEY_PREFIX,
            connection_pool=self._pool,  # type: ignore[arg-type]  # passed through to redis-py
        )
        self._memory = MemoryStorage()
        self._probe_s = probe_s
        self._degraded_since: float | None = None
        self._next_probe = 0.0

    async def __aenter__(self) -> RateLimiter:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._pool.aclose()
        self._drop_memory()

    @property
    def degraded(self) -> bool:
        return self._degraded_since is not None

    async def hit(self, name: LimitName, limit: int, scope: str, cost: int = 1) -> float | None:
        """Count ``cost`` requests against ``limit`` per the limit's period for ``scope`` (a
        tenant or session id). None when allowed; else nothing is counted and the answer is the
        seconds until it would be. A ``cost`` above ``limit`` is taken as ``limit``, so a large
        batch waits for a whole window instead of being refused forever."""
        period = KINDS[name].period_s
        if period is None:
            raise ValueError(f"{name} is not a rate")
        key = f"{name}/{scope}"
        cost = max(1, min(cost, limit))
        if self._try_redis():
            try:
                wait = await _hit(self._redis, key, limit, period, cost)
            except _REDIS_DOWN as exc:
                await self._degrade(exc)
            else:
                self._recover()
                return wait
        LIMITS_LOCAL_CHECKS.inc()
        return await _hit(self._memory, key, limit, period, cost)

    def _try_redis(self) -> bool:
        if self._degraded_since is None:
            return True
        now = time.monotonic()
        if now < self._next_probe:
            return False
        self._next_probe = now + self._probe_s  # one probe per period, not one per request
        return True

    async def _degrade(self, exc: BaseException) -> None:
        self._next_probe = time.monotonic() + self._probe_s
        # Idle connections to the Redis that went away would each fail once more after it is
        # back, and throw this replica back into memory; a failed one is already dropped.
        await self._pool.disconnect(inuse_connections=False)
        if self._degraded_since is None:
            self._degraded_since = time.monotonic()
            LIMITS_DEGRADED.set(1)
            logger.warning(
                "redis unreachable: rate limits counted per replica in memory",
                extra={"error": type(exc).__name__},
            )

    def _recover(self) -> None:
        if self._degraded_since is None:
            return
        outage_s = time.monotonic() - self._degraded_since
        self._degraded_since = None
        LIMITS_DEGRADED.set(0)
        self._drop_memory()
        logger.warning("redis back: rate limits shared again", extra={"outage_s": outage_s})

    def _drop_memory(self) -> None:
        # The library's expiry task belongs to the storage it is dropped with.
        if self._memory.timer is not None:
            self._memory.timer.cancel()
        self._memory = MemoryStorage()


async def _hit(
    storage: MovingWindowSupport, key: str, limit: int, period_s: int, cost: int
) -> float | None:
    if await storage.acquire_entry(key, limit, period_s, cost):
        return None
    oldest, count = await storage.get_moving_window(key, limit, period_s)
    # The window frees a place when its oldest request leaves it.
    return max(oldest + period_s - time.time(), 0.0) if count else 0.0
