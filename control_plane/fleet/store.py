"""Worker heartbeats in Redis: one key per worker with a TTL, plus a sorted index by expiry.

A worker that dies stops refreshing its key and leaves the view within the TTL; nothing here
needs Postgres, and losing Redis only empties the view until the next heartbeats (seconds).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

from pydantic import ValidationError
from redis.asyncio import Redis

from shared.fleet import WorkerHeartbeat, WorkerStatus

WORKER_PREFIX = "podium:fleet:worker:"
INDEX_KEY = "podium:fleet:workers"  # worker name -> expiry (unix seconds)
# Slots promised to new sessions (admission.py): room -> expiry. A worker listing the room holds
# the slot from then on, so each heartbeat ends the promises for the rooms it lists.
RESERVATIONS_KEY = "podium:admission:reservations"


class HeartbeatStore:
    def __init__(self, redis: Redis, ttl_seconds: float) -> None:
        self.redis = redis
        self._ttl_ms = int(ttl_seconds * 1000)

    async def put(self, heartbeat: WorkerHeartbeat) -> WorkerStatus:
        status = WorkerStatus(**heartbeat.model_dump(), seen_at=datetime.now(UTC))
        now = time.time()
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(WORKER_PREFIX + status.worker, status.model_dump_json(), px=self._ttl_ms)
            pipe.zadd(INDEX_KEY, {status.worker: now + self._ttl_ms / 1000})
            pipe.zremrangebyscore(INDEX_KEY, "-inf", now)
            if status.rooms:
                pipe.zrem(RESERVATIONS_KEY, *status.rooms)
            await pipe.execute()
        return status

    async def remove(self, worker: str) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(WORKER_PREFIX + worker)
            pipe.zrem(INDEX_KEY, worker)
            await pipe.execute()

    async def alive(self) -> list[WorkerStatus]:
        """Workers whose last heartbeat is younger than the TTL, by name."""
        names = sorted(
            _text(n) for n in await self.redis.zrangebyscore(INDEX_KEY, time.time(), "+inf")
        )
        if not names:
            return []
        raw = await self.redis.mget([WORKER_PREFIX + n for n in names])
        workers = []
        for value in raw:
            if value is None:  # expired between the two reads
                continue
            try:
                workers.append(WorkerStatus.model_validate_json(_text(value)))
            except ValidationError:
                continue  # written by another release with another schema: it will age out
        return workers


def _text(value: object) -> str:
    """Redis answers bytes or str depending on the client's decode_responses."""
    return value.decode() if isinstance(value, bytes) else str(value)
