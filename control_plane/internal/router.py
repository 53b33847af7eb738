"""/internal/v1: routes for worker jobs, authorised by a credential scoped to one session."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter, Response, status

from control_plane.deps import LiveKit, Pool, Settings, WorkerSessionId
from control_plane.errors import NotFound
from control_plane.sessions.service import SessionService
from control_plane.slides.router import RequiredIdempotencyKey, Slides, mark_replay
from shared.schemas import SessionContext, SlideChange, SlideState

router = APIRouter(prefix="/internal/v1/sessions", tags=["internal"], include_in_schema=False)


def _check_scope(credential_session: UUID, session_id: UUID) -> None:
    if credential_session != session_id:
        # Same answer as an unknown id: a credential reveals nothing about other sessions.
        raise NotFound(f"Session {session_id} was not found.")


@router.get("/{session_id}/context")
async def session_context(
    session_id: UUID, scope: WorkerSessionId, pool: Pool, livekit: LiveKit, settings: Settings
) -> SessionContext:
    _check_scope(scope, session_id)
    return await SessionService(pool, livekit, settings).context_for_worker(session_id)


@router.post("/{session_id}/agent-joined", status_code=status.HTTP_204_NO_CONTENT)
async def agent_joined(
    session_id: UUID, scope: WorkerSessionId, pool: Pool, livekit: LiveKit, settings: Settings
) -> None:
    _check_scope(scope, session_id)
    await SessionService(pool, livekit, settings).mark_agent_joined(session_id)


@router.get("/{session_id}/slide")
async def slide(session_id: UUID, scope: WorkerSessionId, slides: Slides) -> SlideState:
    _check_scope(scope, session_id)
    return await slides.get(session_id)


@router.post("/{session_id}/slide")
async def change_slide(
    session_id: UUID,
    scope: WorkerSessionId,
    slides: Slides,
    body: SlideChange,
    response: Response,
    idempotency_key: RequiredIdempotencyKey,
) -> SlideState:
    """The presenter's navigation and pause/resume tools; recorded as the 'agent'."""
    _check_scope(scope, session_id)
    state, replayed = await slides.change(
        session_id, body, actor="agent", idempotency_key=idempotency_key
    )
    mark_replay(response, replayed)
    return state
