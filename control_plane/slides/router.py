"""Slide state routes: integrators (API key), participants (their own LiveKit token).

The worker's routes, authorised by its session credential, live in ``control_plane.internal``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated
from uuid import UUID

import jwt
from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.responses import JSONResponse
from livekit.api import TokenVerifier

from control_plane.deps import Bearer, Settings, TenantId, requires
from control_plane.errors import Unauthorized
from control_plane.limits.guards import ApiSlideChangeLimit, SlideGate
from control_plane.slides.schemas import TransitionList
from control_plane.slides.service import RoleNotAllowed, SlideService, SlideStateError
from shared.schemas import SlideChange, SlideState

router = APIRouter(tags=["slides"])
# The integrator routes need a key with the sessions scope; participants bring their token.
_SESSIONS = requires("sessions")

REPLAY_HEADER = "Idempotent-Replayed"


async def _slides(request: Request) -> SlideService:
    slides: SlideService = request.app.state.slides
    return slides


Slides = Annotated[SlideService, Depends(_slides)]
_KEY_HEADER = Header(
    alias="Idempotency-Key",
    min_length=1,
    max_length=200,
    pattern=r"^[\x21-\x7e]+$",
    description="Send the same key when retrying a change: it applies at most once.",
)
IdempotencyKey = Annotated[str | None, _KEY_HEADER]
# The presenter's tools may be cancelled by a barge-in and retried: it must always send one.
RequiredIdempotencyKey = Annotated[str, _KEY_HEADER]


@dataclass(frozen=True)
class Participant:
    session_id: UUID
    room: str
    identity: str
    role: str


async def _participant(settings: Settings, credentials: Bearer) -> Participant:
    """The caller, from the LiveKit token Podium minted for them (``podium.*`` attributes)."""
    if credentials is None:
        raise Unauthorized("Missing token. Send 'Authorization: Bearer <your LiveKit token>'.")
    verifier = TokenVerifier(
        settings.livekit_api_key, settings.livekit_api_secret.get_secret_value()
    )
    try:
        claims = verifier.verify(credentials.credentials)
    except (jwt.PyJWTError, ValueError, TypeError) as exc:
        raise Unauthorized("The LiveKit token is invalid or expired.") from exc
    attributes = claims.attributes or {}
    room = claims.video.room if claims.video and claims.video.room_join else None
    try:
        session_id = UUID(attributes["podium.session_id"])
    except (KeyError, ValueError) as exc:
        raise Unauthorized("The LiveKit token was not issued for a Podium session.") from exc
    if not room or not claims.identity:
        raise Unauthorized("The LiveKit token does not let its holder join a room.")
    return Participant(session_id, room, claims.identity, attributes.get("podium.role", ""))


CurrentParticipant = Annotated[Participant, Depends(_participant)]


async def _participant_slide_changes(participant: CurrentParticipant, gate: SlideGate) -> None:
    await gate(participant.session_id)


ParticipantSlideChangeLimit = Annotated[None, Depends(_participant_slide_changes)]


def mark_replay(response: Response, replayed: bool) -> None:
    if replayed:
        response.headers[REPLAY_HEADER] = "true"


@router.get("/v1/sessions/{session_id}/slide", dependencies=[_SESSIONS])
async def get_slide(tenant_id: TenantId, slides: Slides, session_id: UUID) -> SlideState:
    """The session's current slide."""
    return await slides.get(session_id, tenant_id=tenant_id)


@router.post("/v1/sessions/{session_id}/slide", dependencies=[_SESSIONS])
async def change_slide(
    tenant_id: TenantId,
    slides: Slides,
    session_id: UUID,
    body: SlideChange,
    response: Response,
    _rate: ApiSlideChangeLimit,
    idempotency_key: IdempotencyKey = None,
) -> SlideState:
    """Change the slide (or pause/resume the presentation); every participant sees it."""
    state, replayed = await slides.change(
        session_id, body, actor="api", idempotency_key=idempotency_key, tenant_id=tenant_id
    )
    mark_replay(response, replayed)
    return state


@router.get("/v1/sessions/{session_id}/transitions", dependencies=[_SESSIONS])
async def list_transitions(
    tenant_id: TenantId,
    slides: Slides,
    session_id: UUID,
    after_version: Annotated[int, Query(ge=0, le=2**63 - 1)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> TransitionList:
    """Every slide change of the session, oldest first, with who made it and why."""
    return await slides.transitions(tenant_id, session_id, after_version=after_version, limit=limit)


@router.get("/v1/participant/slide")
async def participant_get_slide(participant: CurrentParticipant, slides: Slides) -> SlideState:
    """The current slide with a freshly signed image URL (any role may read it)."""
    return await slides.get(participant.session_id, room=participant.room)


@router.post("/v1/participant/slide")
async def participant_change_slide(
    participant: CurrentParticipant,
    slides: Slides,
    body: SlideChange,
    response: Response,
    _rate: ParticipantSlideChangeLimit,
    idempotency_key: IdempotencyKey = None,
) -> SlideState:
    """A participant clicked next/previous (or picked a slide) in the web client; the host
    may also lock and unlock navigation (actions 'lock' and 'unlock')."""
    if participant.role not in ("host", "participant"):
        raise RoleNotAllowed(
            f"The '{participant.role or 'unknown'}' role may not change slides; "
            "only the 'host' and 'participant' roles may."
        )
    if body.action in ("lock", "unlock") and participant.role != "host":
        raise RoleNotAllowed(
            f"The '{participant.role}' role may not {body.action} navigation; only the 'host' may."
        )
    state, replayed = await slides.change(
        participant.session_id,
        body,
        actor=f"participant:{participant.identity}",
        idempotency_key=idempotency_key,
        room=participant.room,
        bound_by_lock=participant.role != "host",
    )
    mark_replay(response, replayed)
    return state


async def slide_state_error(_: Request, exc: Exception) -> JSONResponse:
    """A refused change answers with the current state, so the caller can decide again."""
    assert isinstance(exc, SlideStateError)
    return JSONResponse(
        {"error": exc.code, "message": exc.message, "state": exc.state.model_dump(mode="json")},
        status_code=exc.status_code,
    )
