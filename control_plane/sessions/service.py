"""Session lifecycle: create (record + room + agent dispatch + token), mint tokens, end."""

from __future__ import annotations

import base64
import logging
import secrets
from datetime import datetime, timedelta
from uuid import UUID, uuid4

import asyncpg

from control_plane.conversation import repository as conversation
from control_plane.decks import repository as deck_repository
from control_plane.decks.service import DeckService
from control_plane.errors import NotFound, PodiumError, SessionEnded, UpstreamUnavailable
from control_plane.livekit_gateway import LiveKitGateway
from control_plane.sessions import lifecycle, repository
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
from shared.credentials import mint_session_credential
from shared.schemas import DispatchMetadata, OutlineEntry, SessionContext
from shared.settings import ControlPlaneSettings

logger = logging.getLogger(__name__)


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
        recording_url=f"/v1/sessions/{row['id']}/recording" if row["recording_key"] else None,
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
    ) -> None:
        self._decks = decks
        self._pool = pool
        self._livekit = livekit
        self._settings = settings
        self._signer = UrlSigner(
            settings.internal_secret.get_secret_value(),
            settings.public_url,
            settings.asset_url_ttl_seconds,
        )

    async def create(self, tenant_id: UUID, body: SessionCreate) -> SessionCreated:
        if body.deck_id is not None and self._decks is not None:
            await self._decks.require_ready(tenant_id, body.deck_id)
        session_id = uuid4()
        room = room_name(session_id)
        async with self._pool.acquire() as conn, conn.transaction():
            await repository.insert_session(
                conn,
                session_id=session_id,
                tenant_id=tenant_id,
                room=room,
                deck_id=body.deck_id,
                participant_name=body.participant.name,
                metadata=body.metadata,
                record=body.record,
            )
            # Slide 1 from the start, also in the room's metadata: the first joiner sees it.
            slide = (
                await slide_repository.start(conn, session_id, body.deck_id)
                if body.deck_id is not None
                else None
            )
            await repository.insert_audit_event(
                conn,
                tenant_id=tenant_id,
                session_id=session_id,
                actor="api",
                type="session.created",
                data={"room": room},
            )
        credential = mint_session_credential(
            self._settings.internal_secret.get_secret_value(),
            session_id,
            self._settings.worker_credential_ttl_seconds,
        )
        metadata = DispatchMetadata(session_id=session_id, credential=credential)
        try:
            await self._livekit.create_room_with_agent(
                room=room,
                empty_timeout_s=self._settings.room_empty_timeout_seconds,
                dispatch_metadata=metadata.model_dump_json(),
                metadata=(
                    room_metadata(SlideRecord.from_row(slide).state(self._signer))
                    if slide
                    else None
                ),
            )
        except UpstreamUnavailable:
            await repository.mark_ended(self._pool, session_id, "livekit_unavailable")
            raise
        token = self._mint(session_id, room, body.participant)
        return SessionCreated(**token.model_dump())

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
        return self._mint(session_id, row["room"], spec)

    async def end(
        self, tenant_id: UUID, session_id: UUID, reason: str = "ended_by_api"
    ) -> SessionPublic:
        row = await self._load(tenant_id, session_id)
        if row["status"] == "ended":
            return to_public(row)
        ended = await lifecycle.finish(self._pool, self._livekit, row, reason, actor="api")
        if ended is None:  # a concurrent call ended it first
            return to_public(await self._load(tenant_id, session_id))
        return to_public(ended)

    async def context_for_worker(self, session_id: UUID) -> SessionContext:
        row = await repository.get_by_id(self._pool, session_id)
        if row is None:
            raise NotFound(f"Session {session_id} was not found.")
        return SessionContext(
            session_id=row["id"],
            tenant_id=row["tenant_id"],
            room=row["room"],
            status=row["status"],
            deck_id=row["deck_id"],
            participant_name=row["participant_name"],
            greeting=greeting_for(row["participant_name"]),
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

    def _mint(self, session_id: UUID, room: str, spec: ParticipantSpec) -> ParticipantToken:
        identity = spec.identity or f"user-{secrets.token_hex(4)}"
        ttl = timedelta(seconds=spec.ttl_seconds or self._settings.token_ttl_seconds)
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
