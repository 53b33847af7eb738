"""Pushes applied slide changes to every client through the LiveKit room's metadata.

The change is already durable in Postgres when it gets here; this object only delivers it. One
task per session delivers the newest state it knows, retrying with backoff when LiveKit (or the
Redis write, if the request's own attempt failed) is briefly unavailable. A retry always sends
the newest state, so an older version can never overwrite a later one from this process; after
each push, a later version applied by another replica is picked up from Redis and pushed too.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from uuid import UUID

import asyncpg
from redis.exceptions import RedisError

from control_plane.errors import UpstreamUnavailable
from control_plane.livekit_gateway import LiveKitGateway
from control_plane.slides.cache import SlideCache, SlideRecord
from control_plane.storage import UrlSigner
from shared.schemas import SlideState

logger = logging.getLogger(__name__)

Loader = Callable[[UUID], Awaitable[SlideRecord | None]]


def room_metadata(state: SlideState) -> str:
    """The room metadata every participant receives on join and on each change."""
    return json.dumps({"podium": {"slide": state.model_dump(mode="json")}}, separators=(",", ":"))


def metadata_version(metadata: str) -> int:
    """The slide version a room's metadata carries; 0 when it carries none."""
    try:
        version = json.loads(metadata)["podium"]["slide"]["version"]
    except (ValueError, KeyError, TypeError):
        return 0
    return version if isinstance(version, int) else 0


@dataclass
class _Push:
    record: SlideRecord
    redis_pending: bool
    livekit_pending: bool = True


class SlidePublisher:
    def __init__(
        self,
        gateway: LiveKitGateway,
        cache: SlideCache,
        signer: UrlSigner,
        load: Loader,
        *,
        attempts: int = 6,
        first_delay_s: float = 0.1,
        max_delay_s: float = 2.0,
        remember: int = 10_000,
    ) -> None:
        self._gateway = gateway
        self._cache = cache
        self._signer = signer
        self._load = load
        self._attempts = attempts
        self._first_delay_s = first_delay_s
        self._max_delay_s = max_delay_s
        self._remember = remember
        self._pending: dict[UUID, _Push] = {}
        self._tasks: dict[UUID, asyncio.Task[None]] = {}
        # Highest version pushed per session (bounded LRU), so a late submit of an older
        # version after its session's task finished is still recognised as stale.
        self._pushed: OrderedDict[UUID, int] = OrderedDict()
        self._closed = False

    def submit(self, record: SlideRecord, *, redis_pending: bool = False) -> None:
        """Deliver ``record`` (and, when ``redis_pending``, write it to Redis) soon."""
        sid = record.session_id
        queued = self._pending.get(sid)
        newest = max(self._pushed.get(sid, 0), queued.record.version if queued else 0)
        if record.version <= newest:
            return
        if self._closed:
            logger.warning(
                "slide push dropped at shutdown",
                extra={"session_id": str(sid), "version": record.version},
            )
            return
        # A newer state supersedes what was queued: its own Redis write replaced the older one.
        self._pending[sid] = _Push(record, redis_pending)
        if sid not in self._tasks:
            self._tasks[sid] = asyncio.create_task(self._drain(sid), name=f"slide-push-{sid}")

    async def stop(self, grace_s: float = 2.0) -> None:
        """Give queued pushes ``grace_s`` to finish, then cancel the rest."""
        self._closed = True
        tasks = list(self._tasks.values())
        if not tasks:
            return
        _, late = await asyncio.wait(tasks, timeout=grace_s)
        for task in late:
            task.cancel()
        await asyncio.gather(*late, return_exceptions=True)
        if late:
            logger.warning("slide pushes cancelled at shutdown", extra={"sessions": len(late)})

    async def _drain(self, sid: UUID) -> None:
        try:
            while (item := self._pending.get(sid)) is not None and (
                item.record.version > self._pushed.get(sid, 0)
            ):
                pushed = await self._deliver(sid)
                self._mark_pushed(sid, pushed)
                await self._catch_up(sid, pushed)
        except Exception:  # a bug must not kill pushes for other sessions, nor pass unseen
            logger.exception("slide publisher failed", extra={"session_id": str(sid)})
        finally:
            # No await since the loop's last check, so no submit is waiting on this task.
            self._pending.pop(sid, None)
            self._tasks.pop(sid, None)

    async def _deliver(self, sid: UUID) -> int:
        """Push the newest queued state; returns the version pushed (or given up on)."""
        delay = self._first_delay_s
        for attempt in range(1, self._attempts + 1):
            item = self._pending[sid]  # re-read: a retry sends the newest state, never an old one
            state = item.record.state(self._signer)
            if item.redis_pending:
                try:
                    await self._cache.store(item.record, state.model_dump_json())
                    item.redis_pending = False
                except RedisError:
                    logger.warning(
                        "slide state not written to redis",
                        extra={"session_id": str(sid), "version": state.version},
                    )
            if item.livekit_pending:
                try:
                    if not await self._gateway.set_room_metadata(
                        item.record.room, room_metadata(state)
                    ):
                        logger.info(
                            "slide push skipped: room is gone", extra={"room": item.record.room}
                        )
                    item.livekit_pending = False
                except UpstreamUnavailable:
                    logger.warning(
                        "slide push to livekit failed",
                        extra={
                            "session_id": str(sid),
                            "version": state.version,
                            "attempt": attempt,
                        },
                    )
            if not (item.redis_pending or item.livekit_pending):
                return state.version
            if attempt < self._attempts:
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._max_delay_s)
        item = self._pending[sid]
        # Clients converge on the next change that pushes successfully (or on restart).
        logger.error(
            "slide push abandoned",
            extra={"session_id": str(sid), "version": item.record.version, "attempts": attempt},
        )
        return item.record.version

    async def _catch_up(self, sid: UUID, pushed: int) -> None:
        """Another replica may have applied (and pushed) a later version while this push was in
        flight; if ours landed after it, the room shows an older slide. Push the newest again."""
        try:
            if await self._cache.version(sid) <= pushed:
                return
            record = await self._load(sid)
        except (RedisError, asyncpg.PostgresError, OSError):
            logger.warning("slide catch-up check failed", extra={"session_id": str(sid)})
            return
        if record is not None:
            self.submit(record)

    def _mark_pushed(self, sid: UUID, version: int) -> None:
        self._pushed[sid] = max(version, self._pushed.get(sid, 0))
        self._pushed.move_to_end(sid)
        while len(self._pushed) > self._remember:
            self._pushed.popitem(last=False)
