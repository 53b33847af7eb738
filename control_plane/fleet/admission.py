"""Admission: a session is created only when a presenter's slot can be had for it.

Capacity is the free session slots the ready workers report in their heartbeats (Redis, see
``store.py``) minus the slots already promised to sessions no worker shows yet. Those promises
are *reservations*: a Redis sorted set of room → expiry, written by the same Lua script that
reads the heartbeats, so control-plane replicas never promise one slot twice. A reservation
ends when a worker's heartbeat lists its room (the slot is counted there from then on; the
heartbeat itself removes it), or when it expires (the dispatch was lost, or the session ended
before a worker took it).

Fairness: when no more than ``fair_reserve_slots`` free slots remain, they go only to tenants
holding fewer sessions than their fair share (the fleet's slots over the tenants with open
sessions, the requester, and one tenant still to come), so one tenant's burst cannot take the
last slots from everyone else; those requests wait like any other, and the fleet grows. A
tenant's own ceiling is its concurrent-sessions limit, checked in Postgres by the session
service, under the tenant's lock, before each attempt.

A request with no slot waits up to ``admission_wait_seconds`` for one (it is counted as queued
meanwhile, and the fleet view adds queued requests to the desired worker count), then gets
``503 no_capacity`` with ``Retry-After``.

With Redis unreachable, admission keeps working from the last fleet size this replica saw (at
most ``admission_stale_fleet_seconds`` old) against the sessions Postgres holds open, logging and
counting every such decision; with no recent fleet size it refuses. It never admits blindly.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
from prometheus_client import Counter, Histogram
from redis.asyncio import Redis
from redis.exceptions import RedisError

from control_plane.errors import PodiumError
from control_plane.fleet import repository
from control_plane.fleet.store import INDEX_KEY, RESERVATIONS_KEY, WORKER_PREFIX

logger = logging.getLogger(__name__)

QUEUE_KEY = "podium:admission:queue"  # waiting request id -> expiry (unix seconds)
RETRY_POLL_S = 0.25

ADMISSIONS = Counter(
    "podium_admissions_total",
    "Session admissions by outcome: admitted, admitted_degraded (Redis down, last fleet size), "
    "no_capacity, fair_share, fleet_unknown.",
    ["outcome"],
)
ADMISSION_WAIT = Histogram(
    "podium_admission_wait_seconds",
    "Time a session creation waited for a presenter slot (admitted or not).",
    buckets=(0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 10),
)

# Reads every live heartbeat and the reservations in one atomic step. It reads worker keys by
# name (the index holds them), which a single Redis (or a primary with replicas) allows; a Redis
# Cluster would need the fleet keys in one hash slot.
_ADMIT = """
local now = tonumber(ARGV[1])
local names = redis.call('ZRANGEBYSCORE', KEYS[1], now, '+inf')
local total, free = 0, 0
local running = {}
for _, name in ipairs(names) do
  local raw = redis.call('GET', ARGV[2] .. name)
  if raw then
    local ok, w = pcall(cjson.decode, raw)
    if ok and type(w) == 'table' then
      if w.draining == false then
        total = total + w.max_sessions
        free = free + math.max(w.max_sessions - w.active_jobs, 0)
      end
      if type(w.rooms) == 'table' then
        for _, room in ipairs(w.rooms) do running[room] = true end
      end
    end
  end
end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
local held = 0
for _, room in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
  if running[room] then redis.call('ZREM', KEYS[2], room) else held = held + 1 end
end
local available = free - held
if ARGV[3] == '' or available <= 0 then return {0, total, available} end
local tenants = math.max(tonumber(ARGV[6]), 1)
local fair_share = math.ceil(total / tenants)
if available <= tonumber(ARGV[5]) and tonumber(ARGV[7]) >= fair_share then
  return {2, total, available}
end
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[3])
return {1, total, available - 1}
"""


class NoCapacity(PodiumError):
    """No slot for the session; ``outcome`` says why (the metric's label)."""

    status_code = 503
    code = "no_capacity"

    def __init__(self, outcome: str, message: str, retry_after_s: int) -> None:
        super().__init__(message, headers={"Retry-After": str(retry_after_s)})
        self.outcome = outcome


@dataclass(frozen=True)
class Snapshot:
    """What one admission attempt saw: slots of ready workers, and free ones not promised."""

    total_slots: int
    available: int


@dataclass
class Reservation:
    """A slot promised to ``room``; release it if the session is not created after all.
    ``redis`` None: admitted without Redis (degraded), nothing to release."""

    room: str
    redis: Redis | None

    @property
    def outcome(self) -> str:
        return "admitted" if self.redis is not None else "admitted_degraded"

    async def release(self) -> None:
        if self.redis is None:
            return
        try:
            await self.redis.zrem(RESERVATIONS_KEY, self.room)
        except RedisError:  # it expires on its own
            logger.warning("could not release an admission reservation", extra={"room": self.room})


class Admission:
    def __init__(
        self,
        pool: asyncpg.Pool,
        redis: Redis,
        *,
        wait_s: float,
        hold_s: float,
        fair_reserve_slots: int,
        stale_fleet_s: float,
    ) -> None:
        self._pool = pool
        self._redis = redis
        self.wait_s = wait_s
        self._hold_s = hold_s
        self._fair_reserve = fair_reserve_slots
        self._stale_fleet_s = stale_fleet_s
        self._script = redis.register_script(_ADMIT)
        self._last_total = 0  # the fleet's slots at the last successful read
        self._last_seen = -math.inf  # monotonic time of that read

    async def snapshot(self) -> Snapshot:
        """Capacity now, reserving nothing (for the fleet view and tests)."""
        _, total, available = await self._run(room="", tenant_live=0, tenants=1)
        return Snapshot(total, available)

    async def reserve(
        self, conn: asyncpg.Connection, tenant_id: uuid.UUID, room: str
    ) -> Reservation | NoCapacity:
        """One attempt to reserve a slot for ``room``: the reservation, or why not (the caller
        may wait and try again). Called under the tenant's lock, so its count is exact."""
        tenant_live, tenants = await repository.tenant_share(conn, tenant_id)
        try:
            verdict, total, _ = await self._run(room=room, tenant_live=tenant_live, tenants=tenants)
        except RedisError:
            return await self._reserve_degraded(conn, room)
        if verdict == 1:
            return Reservation(room, self._redis)
        return self._refusal(verdict, total, tenant_live)

    async def release(self, room: str) -> None:
        """The session ended: a slot still promised to it is free again."""
        await Reservation(room, self._redis).release()

    def observe(self, outcome: str, waited_s: float) -> None:
        ADMISSIONS.labels(outcome).inc()
        ADMISSION_WAIT.observe(waited_s)

    @contextlib.asynccontextmanager
    async def queued(self) -> AsyncIterator[None]:
        """Count the caller as waiting for a slot (the fleet view adds it to demand)."""
        ticket = uuid.uuid4().hex
        queued = await self._enqueue(ticket)
        try:
            yield
        finally:
            if queued:
                await self._dequeue(ticket)

    async def _run(self, *, room: str, tenant_live: int, tenants: int) -> tuple[int, int, int]:
        now = time.time()
        verdict, total, available = await self._script(
            keys=[INDEX_KEY, RESERVATIONS_KEY],
            args=[
                now,
                WORKER_PREFIX,
                room,
                now + self._hold_s,
                self._fair_reserve,
                # the tenants sharing the fleet: those with open sessions, the requester, and
                # one still to come (whom the reserve is kept for)
                tenants + (0 if tenant_live else 1) + 1,
                tenant_live,
            ],
        )
        self._last_total = int(total)
        self._last_seen = time.monotonic()
        return int(verdict), int(total), int(available)

    def _refusal(self, verdict: int, total: int, tenant_live: int) -> NoCapacity:
        retry = max(1, math.ceil(self.wait_s)) + 1
        if verdict == 2:
            return NoCapacity(
                "fair_share",
                f"The last free presenters are kept for other tenants: you have {tenant_live} "
                f"sessions open on a fleet of {total} slots. Retry after {retry} s, or end a "
                "session you no longer need.",
                retry,
            )
        return NoCapacity(
            "no_capacity",
            f"No presenter is free right now (the fleet has {total} session slots, all taken); "
            f"the fleet grows with demand. Retry after {retry} s.",
            retry,
        )

    async def _reserve_degraded(
        self, conn: asyncpg.Connection, room: str
    ) -> Reservation | NoCapacity:
        """Redis is unreachable: admit against the last fleet size seen, if recent enough."""
        age = time.monotonic() - self._last_seen
        if age > self._stale_fleet_s or self._last_total <= 0:
            logger.error("admission refused: fleet state unavailable", extra={"room": room})
            return NoCapacity(
                "fleet_unknown",
                "The fleet's state is unavailable right now, so no presenter can be promised. "
                "Retry after 5 s.",
                5,
            )
        open_sessions = sum((await repository.count_open_sessions(conn)).values())
        if open_sessions >= self._last_total:
            return NoCapacity(
                "no_capacity",
                f"No presenter is free right now ({open_sessions} sessions open on "
                f"{self._last_total} slots). Retry after 5 s.",
                5,
            )
        logger.warning(
            "admitted without Redis, against the last fleet size seen",
            extra={"room": room, "fleet_slots": self._last_total, "age_s": round(age, 1)},
        )
        return Reservation(room, None)

    async def _enqueue(self, ticket: str) -> bool:
        expiry = time.time() + self.wait_s + 5
        try:
            await self._redis.zadd(QUEUE_KEY, {ticket: expiry})
        except RedisError:
            return False
        return True

    async def _dequeue(self, ticket: str) -> None:
        with contextlib.suppress(RedisError):  # else it expires on its own
            await self._redis.zrem(QUEUE_KEY, ticket)


async def queued_admissions(redis: Redis) -> int:
    """Session creations waiting for a slot right now, on every replica."""
    now = time.time()
    await redis.zremrangebyscore(QUEUE_KEY, "-inf", now)
    return int(await redis.zcount(QUEUE_KEY, now, "+inf"))
