"""Slide state: one path for every change, whoever asks (API, participant, agent).

A change is validated and applied by a single SQL statement, recorded with its actor, cached in
Redis, published on the session's Redis channel and pushed to the LiveKit room's metadata.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from types import TracebackType
from uuid import UUID, uuid4

import asyncpg
from redis.asyncio import Redis
from redis.exceptions import RedisError

from control_plane.errors import Conflict, Forbidden, NotFound, PodiumError, SessionEnded
from control_plane.livekit_gateway import LiveKitGateway
from control_plane.slides import repository
from control_plane.slides.cache import SlideCache, SlideRecord
from control_plane.slides.publisher import SlidePublisher, metadata_version
from control_plane.slides.schemas import Actor, TransitionList, TransitionPublic
from control_plane.storage import UrlSigner
from shared.schemas import NAVIGATION_ACTIONS, SlideChange, SlideState

logger = logging.getLogger(__name__)

# Past any deck we accept, and inside Postgres' integer: such an index is out of range anyway.
_MAX_INDEX = 1_000_000
_RECONCILE_LIMIT = 10_000
_ROOMS_PER_CALL = 100


class SlideStateError(PodiumError):
    """A refused change the caller should read together with the current state."""

    def __init__(self, message: str, state: SlideState) -> None:
        super().__init__(message)
        self.state = state


class VersionConflict(SlideStateError):
    status_code = 409
    code = "version_conflict"


class NoNextSlide(SlideStateError):
    status_code = 409
    code = "no_next_slide"


class NoPreviousSlide(SlideStateError):
    status_code = 409
    code = "no_previous_slide"


class SlideOutOfRange(SlideStateError):
    status_code = 422
    code = "slide_out_of_range"


class NavigationLocked(SlideStateError):
    status_code = 409
    code = "navigation_locked"


class NoDeck(Conflict):
    code = "no_deck"


class IdempotencyKeyReused(Conflict):
    code = "idempotency_key_reused"


class SlideBusy(Conflict):
    code = "slide_busy"


class RoleNotAllowed(Forbidden):
    code = "role_not_allowed"


class SlideService:
    """App-scoped: owns the Redis cache and the publisher's tasks (``async with`` starts and
    stops them)."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        redis: Redis,
        gateway: LiveKitGateway,
        signer: UrlSigner,
        *,
        push_attempts: int = 6,
    ) -> None:
        self._pool = pool
        self._gateway = gateway
        self._signer = signer
        self._cache = SlideCache(redis)
        self._publisher = SlidePublisher(
            gateway, self._cache, signer, self._load, attempts=push_attempts
        )
        self._reconcile: asyncio.Task[None] | None = None

    async def __aenter__(self) -> SlideService:
        self._reconcile = asyncio.create_task(self._push_missed(), name="slide-reconcile")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._reconcile is not None:
            self._reconcile.cancel()
            await asyncio.gather(self._reconcile, return_exceptions=True)
        await self._publisher.stop()

    # --- reads ---------------------------------------------------------------------------

    async def get(
        self, session_id: UUID, *, tenant_id: UUID | None = None, room: str | None = None
    ) -> SlideState:
        record = await self._load(session_id)
        if record is None or not _visible(record, tenant_id, room):
            # Unknown (or another tenant's) session, or one without a deck: say which.
            record = SlideRecord.from_row(
                await self._session_with_state(session_id, tenant_id, room)
            )
        return record.state(self._signer)

    async def transitions(
        self, tenant_id: UUID, session_id: UUID, *, after_version: int, limit: int
    ) -> TransitionList:
        row = await repository.current(self._pool, session_id)
        if row is None or row["tenant_id"] != tenant_id:
            raise NotFound(f"Session {session_id} was not found.")
        rows = await repository.list_transitions(
            self._pool, session_id, after_version=after_version, limit=limit + 1
        )
        items = [TransitionPublic.model_validate(dict(r)) for r in rows[:limit]]
        return TransitionList(
            items=items, next_after_version=items[-1].version if len(rows) > limit else None
        )

    # --- the one write path --------------------------------------------------------------

    async def change(
        self,
        session_id: UUID,
        change: SlideChange,
        *,
        actor: Actor,
        idempotency_key: str | None,
        tenant_id: UUID | None = None,
        room: str | None = None,
        bound_by_lock: bool = False,
    ) -> tuple[SlideState, bool]:
        """Apply ``change``; returns the resulting state and whether it replays an earlier
        request with the same idempotency key (nothing changed then). An actor
        ``bound_by_lock`` (a participant who is not the host) cannot move a locked state."""
        key = idempotency_key or f"auto-{uuid4().hex}"
        for _ in range(3):
            row = None
            if change.index is None or 1 <= change.index <= _MAX_INDEX:
                try:
                    row = await repository.apply(
                        self._pool,
                        session_id=session_id,
                        tenant_id=tenant_id,
                        room=room,
                        action=change.action,
                        index=change.index,
                        expected_version=change.expected_version,
                        actor=actor,
                        reason=change.reason,
                        idempotency_key=key,
                        bound_by_lock=bound_by_lock and change.action in NAVIGATION_ACTIONS,
                    )
                except asyncpg.UniqueViolationError as exc:
                    if exc.constraint_name != "slide_transitions_key_uq":
                        raise
            if row is not None:
                record = SlideRecord.from_row(row)
                await self._fan_out(record)
                return record.state(self._signer), False
            replayed = await self._replay(session_id, change, actor, key, tenant_id, room)
            if replayed is not None:
                return replayed, True
            await self._raise_refusal(session_id, tenant_id, room, change, bound_by_lock)
            # The state moved between the failed change and the check: try again.
        raise SlideBusy(f"Slide state of session {session_id} is changing too fast; retry.")

    async def _fan_out(self, record: SlideRecord) -> None:
        state = record.state(self._signer)
        try:
            await self._cache.store(record, state.model_dump_json())
            redis_pending = False
        except RedisError:
            # Applied in Postgres all the same; the publisher retries the Redis write.
            logger.warning("slide state not written to redis", extra={"version": record.version})
            redis_pending = True
        self._publisher.submit(record, redis_pending=redis_pending)

    async def _replay(
        self,
        session_id: UUID,
        change: SlideChange,
        actor: str,
        key: str,
        tenant_id: UUID | None,
        room: str | None,
    ) -> SlideState | None:
        row = await repository.by_idempotency_key(self._pool, session_id, key)
        if row is None or row["deck_id"] is None:
            return None
        record = SlideRecord.from_row(row)
        if not _visible(record, tenant_id, room):
            return None
        same = (
            row["action"] == change.action
            and row["changed_by"] == actor
            and (change.action != "goto" or row["index"] == change.index)
        )
        if not same:
            raise IdempotencyKeyReused(
                f"Idempotency key {key!r} was already used for a different change "
                f"({row['action']} by {row['changed_by']}); use a new key for a new change."
            )
        return record.state(self._signer)

    async def _raise_refusal(
        self,
        session_id: UUID,
        tenant_id: UUID | None,
        room: str | None,
        change: SlideChange,
        bound_by_lock: bool,
    ) -> None:
        """Raise why ``change`` cannot apply to the current state; return if it now could."""
        row = await self._session_with_state(session_id, tenant_id, room, live=True)
        record = SlideRecord.from_row(row)
        state = record.state(self._signer)
        if bound_by_lock and record.locked and change.action in NAVIGATION_ACTIONS:
            raise NavigationLocked(
                "The host has locked navigation: only the host and the presenter can change "
                "the slides until the host unlocks it.",
                state,
            )
        if change.index is not None and not 1 <= change.index <= record.count:
            raise SlideOutOfRange(
                f"Slide {change.index} is out of range: this deck has slides 1 to {record.count}.",
                state,
            )
        if change.expected_version is not None and change.expected_version != record.version:
            raise VersionConflict(
                f"The slide state is at version {record.version}, not "
                f"{change.expected_version}; read the state and decide again.",
                state,
            )
        if change.action == "next" and record.index >= record.count:
            raise NoNextSlide(f"Already on the last slide ({record.count}).", state)
        if change.action == "previous" and record.index <= 1:
            raise NoPreviousSlide("Already on the first slide.", state)

    async def _session_with_state(
        self, session_id: UUID, tenant_id: UUID | None, room: str | None, *, live: bool = False
    ) -> asyncpg.Record:
        """The session's row with its slide state, from Postgres; 404, or 409 ``no_deck`` (or
        ``session_ended`` when ``live`` is asked for)."""
        row = await repository.current(self._pool, session_id)
        if (
            row is None
            or (tenant_id is not None and row["tenant_id"] != tenant_id)
            or (room is not None and row["room"] != room)
        ):
            raise NotFound(f"Session {session_id} was not found.")
        if live and row["status"] == "ended":
            raise SessionEnded(f"Session {session_id} has ended; its slides can no longer change.")
        if row["deck_id"] is None:
            raise NoDeck(f"Session {session_id} has no deck, so it has no slides to show.")
        return row

    async def _load(self, session_id: UUID) -> SlideRecord | None:
        """Redis first; Postgres when Redis lost it (or is down), refilling Redis."""
        try:
            cached = await self._cache.get(session_id)
        except RedisError:
            logger.warning("slide cache unavailable", extra={"session_id": str(session_id)})
            cached = None
        if cached is not None:
            return cached
        row = await repository.current(self._pool, session_id)
        if row is None or row["deck_id"] is None:
            return None
        record = SlideRecord.from_row(row)
        # Only if newer, so a concurrent change wins; Postgres already answered if Redis fails.
        with contextlib.suppress(RedisError):
            await self._cache.store(record)
        return record

    # --- after a restart -----------------------------------------------------------------

    async def _push_missed(self) -> None:
        """A change applied just before this process died may never have reached its room:
        compare every live room's metadata with Postgres and push what is behind."""
        try:
            rows = await repository.live_states(self._pool, _RECONCILE_LIMIT)
            records = [SlideRecord.from_row(r) for r in rows]
            behind = 0
            for start in range(0, len(records), _ROOMS_PER_CALL):
                batch = records[start : start + _ROOMS_PER_CALL]
                shown = await self._gateway.rooms_metadata([r.room for r in batch])
                for record in batch:
                    if record.room in shown and metadata_version(shown[record.room]) < (
                        record.version
                    ):
                        self._publisher.submit(record)
                        behind += 1
            logger.info("slide rooms reconciled", extra={"checked": len(records), "pushed": behind})
        except (PodiumError, asyncpg.PostgresError, OSError):
            logger.warning("slide reconcile failed", exc_info=True)


def _visible(record: SlideRecord, tenant_id: UUID | None, room: str | None) -> bool:
    return (tenant_id is None or record.tenant_id == tenant_id) and (
        room is None or record.room == room
    )
