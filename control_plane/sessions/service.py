"""Session lifecycle: create (record + room + agent dispatch + token), mint tokens, end."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import secrets
import time
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import asyncpg

from control_plane.conversation import repository as conversation
from control_plane.decks import repository as deck_repository
from control_plane.decks.service import DeckService
from control_plane.errors import NotFound, PodiumError, SessionEnded, UpstreamUnavailable
from control_plane.fleet.admission import RETRY_POLL_S, Admission, NoCapacity, Reservation
from control_plane.limits.service import limits_for, refused
from control_plane.livekit_gateway import LiveKitGateway
from control_plane.sessions import lifecycle, repository
from control_plane.sessions.credentials import dispatch_metadata
from control_plane.sessions.schemas import (
    ParticipantSpec,
    ParticipantToken,
    SessionCreate,
    SessionCreated,
    SessionList,
    SessionPublic,
)
from control_plane.slides import repository as slide_repository
from control_plane.slides.cache import SlideRecord
from control_plane.slides.publisher import room_metadata
from control_plane.storage import UrlSigner
from control_plane.tenants import service as tenants
from shared.languages import phrase
from shared.schemas import OutlineEntry, SessionContext
from shared.settings import ControlPlaneSettings

logger = logging.getLogger(__name__)

# Sessions end at their own pace; a few seconds is a fair first retry for a client at its cap.
_CONCURRENCY_RETRY_S = 10


def room_name(session_id: UUID) -> str:
    return f"podium-{session_id}"


def to_public(row: asyncpg.Record) -> SessionPublic:
    return SessionPublic(
        session_id=row["id"],
        room=row["room"],
        status=row["status"],
        deck_id=row["deck_id"],
        metadata=row["metadata"],
        created_at=row["created_at"],
        started_at=row["started_at"],
        ended_at=row["ended_at"],
        end_reason=row["end_reason"],
        record=row["record"],
        recording_url=f"/v1/sessions/{row['id']}/recording" if row["record"] else None,
    )


def join_url(public_url: str, session_id: UUID, token: str) -> str:
    """The join page with the token in the fragment: kept out of server logs and Referers."""
    return f"{public_url.rstrip('/')}/join/{session_id}#token={token}"


def greeting_for(participant_name: str | None) -> str:
    who = f", {participant_name}" if participant_name else ""
    return (
        f"Hello{who}! I'm Podium, your presenter for today. "
        "Ask me anything at any time, and I'll do my best to help."
    )


class SessionService:
    def __init__(
        self,
        pool: asyncpg.Pool,
        livekit: LiveKitGateway,
        settings: ControlPlaneSettings,
        decks: DeckService | None = None,
        admission: Admission | None = None,
    ) -> None:
        self._decks = decks
        self._admission = admission
        self._pool = pool
        self._livekit = livekit
        self._settings = settings
        self._signer = UrlSigner(
            settings.asset_url_key_ring(),
            settings.public_url,
            settings.asset_url_ttl_seconds,
        )

    async def create(self, tenant_id: UUID, body: SessionCreate) -> SessionCreated:
        if body.deck_id is not None and self._decks is not None:
            await self._decks.require_ready(tenant_id, body.deck_id)
        session_id = uuid4()
        room = room_name(session_id)
        limit = (await limits_for(self._pool, tenant_id, self._settings)).concurrent_sessions
        on_join = self._settings.dispatch_mode == "on_join"
        reservation, slide = await self._admit(tenant_id, session_id, room, body, limit, on_join)
        try:
            await self._livekit.create_room(
                room=room,
                empty_timeout_s=self._settings.room_empty_timeout_seconds,
                dispatch_metadata=None
                if on_join
                else dispatch_metadata(self._settings, session_id, 1),
                metadata=(
                    room_metadata(SlideRecord.from_row(slide).state(self._signer))
                    if slide
                    else None
                ),
            )
        except UpstreamUnavailable:
            await repository.mark_ended(self._pool, session_id, "livekit_unavailable")
            if reservation is not None:
                await reservation.release()
            raise
        token = self._mint(session_id, room, body.participant)
        return SessionCreated(**token.model_dump())

    async def _admit(
        self,
        tenant_id: UUID,
        session_id: UUID,
        room: str,
        body: SessionCreate,
        limit: int,
        on_join: bool,
    ) -> tuple[Reservation | None, asyncpg.Record | None]:
        """Record the session once the tenant is under its limit and a slot is reserved for
        it, waiting (briefly, unlocked) for a slot to free up. Returns the reservation (None
        without admission) and the session's first slide."""
        admission = self._admission
        started = time.monotonic()
        waiting_registered = False
        async with contextlib.AsyncExitStack() as waiting:
            while True:
                async with self._pool.acquire() as conn, conn.transaction():
                    # Under the tenant's lock, creations of one tenant count each other exactly
                    # (on any replica), and a tenant at its limit never takes a slot.
                    await repository.lock_tenant(conn, tenant_id)
                    await _check_concurrency(conn, tenant_id, limit)
                    reserved = await admission.reserve(conn, tenant_id, room) if admission else None
                    if not isinstance(reserved, NoCapacity):
                        try:
                            slide = await self._record(
                                conn, tenant_id, session_id, room, body, on_join
                            )
                        except BaseException:
                            if reserved is not None:
                                await reserved.release()
                            raise
                        break
                assert admission is not None
                if time.monotonic() - started >= admission.wait_s:
                    admission.observe(reserved.outcome, time.monotonic() - started)
                    raise reserved
                if not waiting_registered:
                    await waiting.enter_async_context(admission.queued())
                    waiting_registered = True
                await asyncio.sleep(RETRY_POLL_S)
        if admission is not None and reserved is not None:
            admission.observe(reserved.outcome, time.monotonic() - started)
        return reserved, slide

    async def _record(
        self,
        conn: asyncpg.Connection,
        tenant_id: UUID,
        session_id: UUID,
        room: str,
        body: SessionCreate,
        on_join: bool,
    ) -> asyncpg.Record | None:
        """The session's row with its audit event, and its first slide (in the caller's
        transaction)."""
        await repository.insert_created_session(
            conn,
            session_id=session_id,
            tenant_id=tenant_id,
            room=room,
            deck_id=body.deck_id,
            participant_name=body.participant.name,
            metadata=body.metadata,
            record=body.record,
            dispatched=not on_join,
            language=body.language,
        )
        # Slide 1 from the start, also in the room's metadata: the first joiner sees it.
        return (
            await slide_repository.start(conn, session_id, body.deck_id)
            if body.deck_id is not None
            else None
        )

    async def dispatch_on_join(self, session_id: UUID) -> bool:
        """With dispatch on join: the first participant arrived, so send the presenter (once,
        whichever replica hears of it first). True when this call dispatched it."""
        row = await repository.claim_first_dispatch(self._pool, session_id)
        if row is None:
            return False  # dispatched already, ended, or not a session of ours
        try:
            await self._livekit.dispatch_agent(
                row["room"], dispatch_metadata(self._settings, session_id, 1)
            )
        except BaseException:
            await repository.unclaim_first_dispatch(self._pool, session_id)
            raise
        return True

    async def get(self, tenant_id: UUID, session_id: UUID) -> SessionPublic:
        return to_public(await self._load(tenant_id, session_id))

    async def list(
        self,
        tenant_id: UUID,
        *,
        status: str | None = None,
        deck_id: UUID | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> SessionList:
        rows = await repository.list_for_tenant(
            self._pool,
            tenant_id,
            status=status,
            deck_id=deck_id,
            created_after=created_after,
            created_before=created_before,
            before=_decode_cursor(cursor) if cursor else None,
            limit=limit,
        )
        last = rows[-1] if len(rows) == limit else None
        return SessionList(
            items=[to_public(r) for r in rows],
            next_cursor=_encode_cursor(last["created_at"], last["id"]) if last else None,
        )

    async def mint_token(
        self, tenant_id: UUID, session_id: UUID, spec: ParticipantSpec
    ) -> ParticipantToken:
        row = await self._load(tenant_id, session_id)
        if row["status"] == "ended":
            raise SessionEnded(f"Session {session_id} has ended; create a new session.")
        await repository.insert_audit_event(
            self._pool,
            tenant_id=tenant_id,
            session_id=session_id,
            actor="api",
            type="token.minted",
            data={"role": spec.role, "identity": spec.identity},
        )
        return self._mint(
            session_id, row["room"], spec, began=row["started_at"] or row["created_at"]
        )

    async def end(
        self, tenant_id: UUID, session_id: UUID, reason: str = "ended_by_api"
    ) -> SessionPublic:
        row = await self._load(tenant_id, session_id)
        if row["status"] == "ended":
            return to_public(row)
        ended = await lifecycle.finish(self._pool, self._livekit, row, reason, actor="api")
        if self._admission is not None:
            await self._admission.release(row["room"])
        if ended is None:  # a concurrent call ended it first
            return to_public(await self._load(tenant_id, session_id))
        return to_public(ended)

    async def context_for_worker(self, session_id: UUID) -> SessionContext:
        row = await repository.get_by_id(self._pool, session_id)
        if row is None:
            raise NotFound(f"Session {session_id} was not found.")
        language = await repository.language_of(self._pool, session_id)
        return SessionContext(
            session_id=row["id"],
            tenant_id=row["tenant_id"],
            room=row["room"],
            status=row["status"],
            deck_id=row["deck_id"],
            participant_name=row["participant_name"],
            greeting=(
                greeting_for(row["participant_name"])
                if language == "en"
                else phrase(language, "greeting" if row["deck_id"] else "greeting_no_deck")
            ),
            language=language,
            record=row["record"],
            avatar=await tenants.get_avatar(self._pool, row["tenant_id"]),
            created_at=row["created_at"],
            # The agent joined before and this job is another dispatch: a worker was lost.
            resumed=row["status"] == "active",
            conversation=(
                await conversation.recent_messages(self._pool, session_id)
                if row["status"] == "active"
                else []
            ),
            outline=[
                OutlineEntry(index=r["index"], title=r["title"])
                for r in (
                    await deck_repository.outline(self._pool, row["deck_id"])
                    if row["deck_id"]
                    else []
                )
            ],
        )

    async def mark_agent_joined(self, session_id: UUID) -> None:
        await repository.mark_started(self._pool, session_id)

    async def _load(self, tenant_id: UUID, session_id: UUID) -> asyncpg.Record:
        row = await repository.get_for_tenant(self._pool, tenant_id, session_id)
        if row is None:
            raise NotFound(f"Session {session_id} was not found.")
        return row

    def _mint(
        self,
        session_id: UUID,
        room: str,
        spec: ParticipantSpec,
        *,
        began: datetime | None = None,
    ) -> ParticipantToken:
        """A participant token for the session's room; ``began`` is when the session started
        (None: now, for a session being created)."""
        identity = spec.identity or f"user-{secrets.token_hex(4)}"
        # A token never outlives the session: the sweeper ends every session this long after
        # it began, and a token still valid then could only find the room gone.
        now = datetime.now(UTC)
        ends_by = (began or now) + timedelta(seconds=self._settings.session_max_duration_seconds)
        if ends_by <= now:
            raise SessionEnded(f"Session {session_id} has reached its maximum duration.")
        ttl = min(
            timedelta(seconds=spec.ttl_seconds or self._settings.token_ttl_seconds), ends_by - now
        )
        token, expires_at = self._livekit.participant_token(
            room=room,
            identity=identity,
            name=spec.name,
            role=spec.role,
            ttl=ttl,
            session_id=str(session_id),
        )
        return ParticipantToken(
            session_id=session_id,
            room=room,
            livekit_url=self._livekit.url,
            identity=identity,
            role=spec.role,
            token=token,
            expires_at=expires_at,
            join_url=join_url(self._settings.public_url, session_id, token),
        )


async def _check_concurrency(
    conn: asyncpg.Connection | asyncpg.Pool, tenant_id: UUID, limit: int
) -> None:
    live = await repository.count_open_for_tenant(conn, tenant_id)
    if live >= limit:
        raise refused(
            "concurrent_sessions",
            limit,
            _CONCURRENCY_RETRY_S,
            f"{live} open now; end one you no longer need. ",
        )


class BadCursor(PodiumError):
    status_code = 422
    code = "invalid_cursor"


def _encode_cursor(created_at: datetime, session_id: UUID) -> str:
    return base64.urlsafe_b64encode(f"{created_at.isoformat()}|{session_id}".encode()).decode()


def _decode_cursor(cursor: str) -> tuple[datetime, UUID]:
    try:
        stamp, raw_id = base64.urlsafe_b64decode(cursor.encode()).decode().split("|")
        return datetime.fromisoformat(stamp), UUID(raw_id)
    except ValueError as exc:
        raise BadCursor("The cursor is not one this API returned.") from exc
