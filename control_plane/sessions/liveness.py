"""Which job presents each live session, and noticing when that job went silent.

A presenting job reports every couple of seconds (``POST /internal/v1/sessions/{id}/alive``).
The first job to report owns the session; a job that reports while another owns it is told it
was superseded and leaves, so a session never has two presenters talking. Each report pushes the
session's deadline forward in a Redis sorted set; the watchdog claims sessions whose deadline
passed (one replica wins each claim) and hands them to the resumer, which dispatches the
presenter again. LiveKit's own notice of a killed participant (its ``participant_left`` webhook)
comes only after its ICE timeouts, ~20 s; this notices within ``PODIUM_JOB_SILENCE_SECONDS``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from uuid import UUID

from redis.asyncio import Redis

from control_plane.background import BackgroundLoop

logger = logging.getLogger(__name__)

_OWNER_TTL_SECONDS = 24 * 3600
_RECHECK_SECONDS = 10.0


class TryLater(Exception):
    """Raised by ``on_silent`` when the session may still need a presenter later."""


class JobLiveness:
    def __init__(self, redis: Redis, *, silence_s: float, namespace: str = "podium") -> None:
        self._redis = redis
        self._silence_s = silence_s
        self._namespace = namespace  # tests use their own, apart from the app's watchdog
        self._deadlines = f"{namespace}:session-deadlines"

    def _owner_key(self, session_id: UUID) -> str:
        return f"{self._namespace}:session-job:{session_id}"

    def redispatched_key(self, session_id: UUID) -> str:
        """Set while a re-dispatch waits for its job (see resume.py): the other signal about
        the same loss must not send yet another presenter."""
        return f"{self._namespace}:redispatched:{session_id}"

    async def beat(self, session_id: UUID, job_id: str) -> bool:
        """Record that ``job_id`` is presenting; False when another job owns the session."""
        key = self._owner_key(session_id)
        if await self._redis.set(key, job_id, nx=True, ex=_OWNER_TTL_SECONDS):
            # A job took the session over: whatever re-dispatch sent it has arrived, and a loss
            # of this job from now on is a new one.
            await self._redis.delete(self.redispatched_key(session_id))
        elif await self._redis.get(key) != job_id:
            return False
        await self._push_deadline(session_id)
        return True

    async def keep(self, session_id: UUID, job_id: str) -> bool:
        """Push the deadline on for the job that already owns the session; False (nothing done)
        for any other job. For reports whose dispatch cannot be checked right now."""
        if await self._redis.get(self._owner_key(session_id)) != job_id:
            return False
        await self._push_deadline(session_id)
        return True

    async def _push_deadline(self, session_id: UUID) -> None:
        await self._redis.zadd(self._deadlines, {str(session_id): time.time() + self._silence_s})

    async def release(self, session_id: UUID) -> None:
        """Forget the owner and the deadline: the next job to report owns the session."""
        await self._redis.delete(self._owner_key(session_id))
        await self._redis.zrem(self._deadlines, str(session_id))

    async def recheck(self, session_id: UUID, *, after_s: float) -> None:
        """Put a claimed session back, to be claimed again after ``after_s``."""
        await self._redis.zadd(self._deadlines, {str(session_id): time.time() + after_s})

    async def claim_silent(self, limit: int = 20) -> list[UUID]:
        """Sessions whose job stopped reporting; each is claimed by one replica only."""
        due = await self._redis.zrangebyscore(
            self._deadlines, "-inf", time.time(), start=0, num=limit
        )
        claimed = []
        for member in map(str, due):
            if await self._redis.zrem(self._deadlines, member):
                session_id = UUID(member)
                await self._redis.delete(self._owner_key(session_id))
                claimed.append(session_id)
        return claimed


class Watchdog(BackgroundLoop):
    """Claims silent sessions once a second and hands each to ``on_silent``.

    It waits one silence period after start-up before it claims anything: jobs that could not
    report while this control plane was down get the chance to report again first.
    """

    def __init__(
        self,
        liveness: JobLiveness,
        on_silent: Callable[[UUID], Awaitable[object]],
        *,
        grace_s: float,
        interval_s: float = 1.0,
    ) -> None:
        self._liveness = liveness
        self._on_silent = on_silent
        self._grace_s = grace_s
        self._interval_s = interval_s

    name = "session_watchdog"

    async def _run(self) -> None:
        await asyncio.sleep(self._grace_s)
        while True:
            try:
                for session_id in await self._liveness.claim_silent():
                    await self._handle(session_id)
            except Exception:  # Redis failed this round: the next one tries again
                logger.exception("session watchdog round failed")
            await asyncio.sleep(self._interval_s)

    async def _handle(self, session_id: UUID) -> None:
        """One claimed session; when it could not be settled now, it is looked at again."""
        try:
            await self._on_silent(session_id)
        except Exception as exc:
            if not isinstance(exc, TryLater):
                logger.exception(
                    "could not re-dispatch a silent session", extra={"session_id": str(session_id)}
                )
            await self._liveness.recheck(session_id, after_s=_RECHECK_SECONDS)
