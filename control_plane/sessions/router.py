"""/v1/sessions: what integrators call to start, inspect and end presentations."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Response, status

from control_plane.deps import (
    AdmissionControl,
    Decks,
    LiveKit,
    Pool,
    Settings,
    Storage,
    TenantId,
    requires,
)
from control_plane.limits.guards import SessionCreationLimit
from control_plane.privacy import service as privacy
from control_plane.sessions.schemas import (
    ParticipantToken,
    SessionCreate,
    SessionCreated,
    SessionList,
    SessionPublic,
    TokenCreate,
)
from control_plane.sessions.service import SessionService
from shared.schemas import SessionStatus

router = APIRouter(prefix="/v1/sessions", tags=["sessions"], dependencies=[requires("sessions")])


async def _service(
    pool: Pool, livekit: LiveKit, settings: Settings, decks: Decks, admission: AdmissionControl
) -> SessionService:
    return SessionService(pool, livekit, settings, decks, admission)


Service = Annotated[SessionService, Depends(_service)]


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_session(
    tenant_id: TenantId,
    service: Service,
    _rate: SessionCreationLimit,
    body: SessionCreate | None = None,
) -> SessionCreated:
    """Create a session: its room, the presenter's dispatch, and a participant token.

    `503 no_capacity` (with `Retry-After`) when no presenter can be had for it; `429` when the
    tenant is at its concurrent-sessions limit."""
    return await service.create(tenant_id, body or SessionCreate())


@router.get("")
async def list_sessions(
    tenant_id: TenantId,
    service: Service,
    status: Annotated[SessionStatus | None, Query(description="created, active or ended")] = None,
    deck_id: UUID | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> SessionList:
    """Your sessions, newest first, filtered by status, deck and creation time."""
    return await service.list(
        tenant_id,
        status=status,
        deck_id=deck_id,
        created_after=created_after,
        created_before=created_before,
        cursor=cursor,
        limit=limit,
    )


@router.get("/{session_id}")
async def get_session(tenant_id: TenantId, service: Service, session_id: UUID) -> SessionPublic:
    return await service.get(tenant_id, session_id)


@router.post("/{session_id}/tokens", status_code=status.HTTP_201_CREATED)
async def create_token(
    tenant_id: TenantId, service: Service, session_id: UUID, body: TokenCreate
) -> ParticipantToken:
    """Mint a token for another participant; a 'viewer' cannot publish."""
    return await service.mint_token(tenant_id, session_id, body)


@router.post("/{session_id}/end")
async def end_session(tenant_id: TenantId, service: Service, session_id: UUID) -> SessionPublic:
    """Close the room (the agent leaves with everyone else) and mark the session ended."""
    return await service.end(tenant_id, session_id)


@router.delete("/{session_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_session(
    tenant_id: TenantId, service: Service, pool: Pool, storage: Storage, session_id: UUID
) -> Response:
    """Delete the session and everything it left: transcript, turns, escalations, slide
    changes, events, recording (its files too) and the webhook deliveries about it; a
    `session.deleted` webhook says so. A live session is ended first (its room closed, as
    `POST /v1/sessions/{id}/end` does). Not undone; a second call is a `404`."""
    await service.end(tenant_id, session_id)
    await privacy.delete_session(pool, storage, tenant_id, session_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
