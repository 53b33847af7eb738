"""/internal/v1: routes for worker jobs, authorised by a credential scoped to one session."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, BackgroundTasks, Query, Response, status

from control_plane.conversation import repository as conversation
from control_plane.decks.search import Purpose
from control_plane.deps import (
    Decks,
    JobReporter,
    LiveKit,
    Pool,
    RedisClient,
    Settings,
    Storage,
    WorkerClaims,
    WorkerSessionId,
)
from control_plane.errors import Conflict, NotFound, PodiumError, SessionEnded, UpstreamUnavailable
from control_plane.limits.guards import PresenterSearchLimit, PresenterSlideChangeLimit
from control_plane.privacy import policy, redact
from control_plane.recordings import redaction as recording_redaction
from control_plane.sessions import repository as sessions
from control_plane.sessions.credentials import mint_for
from control_plane.sessions.liveness import JobLiveness
from control_plane.sessions.service import SessionService
from control_plane.slides.router import RequiredIdempotencyKey, Slides, mark_replay
from control_plane.slides.service import NoDeck
from control_plane.transcripts import repository as transcripts
from shared.schemas import (
    NO_NUL,
    ConversationBatch,
    DeckSearchHit,
    DeckSearchResult,
    Escalation,
    EscalationRequest,
    JobAlive,
    SessionContext,
    SessionCredential,
    SlideChange,
    SlideContent,
    SlideState,
    TurnBatch,
)

router = APIRouter(prefix="/internal/v1/sessions", tags=["internal"], include_in_schema=False)


class Superseded(Conflict):
    code = "superseded"


class SlideNotInDeck(PodiumError):
    status_code = 422
    code = "slide_out_of_range"


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
    _rate: PresenterSlideChangeLimit,
    idempotency_key: RequiredIdempotencyKey,
) -> SlideState:
    """The presenter's navigation and pause/resume tools; recorded as the 'agent'."""
    _check_scope(scope, session_id)
    state, replayed = await slides.change(
        session_id, body, actor="agent", idempotency_key=idempotency_key
    )
    mark_replay(response, replayed)
    return state


async def _session_deck(
    session_id: UUID, pool: Pool, livekit: LiveKit, settings: Settings
) -> tuple[UUID, UUID]:
    """The session's tenant and deck; ``409 no_deck`` when it was created without one."""
    row = await sessions.get_by_id(pool, session_id)
    if row is None:
        raise NotFound(f"Session {session_id} was not found.")
    if row["deck_id"] is None:
        raise NoDeck("This session has no deck.")
    return row["tenant_id"], row["deck_id"]


@router.get("/{session_id}/search")
async def search(
    session_id: UUID,
    scope: WorkerSessionId,
    pool: Pool,
    livekit: LiveKit,
    settings: Settings,
    decks: Decks,
    _rate: PresenterSearchLimit,
    q: Annotated[
        str,
        Query(min_length=1, max_length=500, pattern=NO_NUL, description="A question or keywords."),
    ],
    k: Annotated[int, Query(ge=1, le=20)] = 3,
    purpose: Annotated[
        Purpose,
        Query(description="'answer' a question, or find a slide to 'navigate' to by topic."),
    ] = "answer",
) -> DeckSearchResult:
    """The presenter's deck search: slides that answer the user's question, best first, and
    whether the best one does."""
    _check_scope(scope, session_id)
    tenant_id, deck_id = await _session_deck(session_id, pool, livekit, settings)
    found = await decks.search(tenant_id, deck_id, q.strip() or q, k, purpose=purpose)
    return DeckSearchResult(
        covered=found.covered,
        confidence=found.confidence,
        hits=[
            DeckSearchHit(
                slide_index=h.slide_index, title=h.title, score=h.score, snippet=h.snippet
            )
            for h in found.hits
        ],
    )


@router.get("/{session_id}/slides/{index}")
async def slide_content(
    session_id: UUID,
    index: int,
    scope: WorkerSessionId,
    pool: Pool,
    livekit: LiveKit,
    settings: Settings,
    decks: Decks,
) -> SlideContent:
    """One slide's title, text and notes, for narration."""
    _check_scope(scope, session_id)
    tenant_id, deck_id = await _session_deck(session_id, pool, livekit, settings)
    slides = (await decks.slides(tenant_id, deck_id)).slides
    slide = next((s for s in slides if s.index == index), None)
    if slide is None:
        raise SlideNotInDeck(f"The deck has slides 1 to {len(slides)}; there is no slide {index}.")
    return SlideContent(index=slide.index, title=slide.title, text=slide.text, notes=slide.notes)


@router.post("/{session_id}/messages", status_code=status.HTTP_204_NO_CONTENT)
async def add_messages(
    session_id: UUID,
    scope: WorkerSessionId,
    pool: Pool,
    settings: Settings,
    body: ConversationBatch,
) -> None:
    """Finished messages of the conversation, kept so another worker can pick the session up;
    a message sent twice (same ``item_id``) is stored once. Redacted first, by the tenant's
    policy."""
    _check_scope(scope, session_id)
    mode = await policy.session_redaction_mode(pool, session_id, settings)
    messages = await redact.messages(body.messages, mode)
    async with pool.acquire() as conn:
        await conversation.add_messages(conn, session_id, messages)


@router.post("/{session_id}/turns", status_code=status.HTTP_204_NO_CONTENT)
async def add_turns(
    session_id: UUID,
    scope: WorkerSessionId,
    pool: Pool,
    settings: Settings,
    storage: Storage,
    body: TurnBatch,
    background: BackgroundTasks,
) -> None:
    """The turn log: a turn sent twice (same ``turn_id``) is stored once. Redacted first, by
    the tenant's policy; where the user spoke personal data, the recording's user channel is
    silenced (after the answer: it may take a second)."""
    _check_scope(scope, session_id)
    mode = await policy.session_redaction_mode(pool, session_id, settings)
    turns, spans = await redact.turns(body.turns, mode)
    async with pool.acquire() as conn:
        await transcripts.add_turns(conn, session_id, turns)
    if spans:
        await recording_redaction.add_spans(pool, session_id, spans)
        background.add_task(recording_redaction.apply_pending, pool, storage, session_id)


@router.post("/{session_id}/records-complete", status_code=status.HTTP_204_NO_CONTENT)
async def records_complete(session_id: UUID, scope: WorkerSessionId, pool: Pool) -> None:
    """The job sent its last messages and turns (it is leaving): the transcript is complete."""
    _check_scope(scope, session_id)
    async with pool.acquire() as conn:
        await transcripts.records_complete(conn, session_id)


@router.post("/{session_id}/escalations", status_code=status.HTTP_201_CREATED)
async def escalate(
    session_id: UUID,
    scope: WorkerSessionId,
    pool: Pool,
    settings: Settings,
    body: EscalationRequest,
    response: Response,
    idempotency_key: RequiredIdempotencyKey,
) -> Escalation:
    """The presenter's escalate_to_human: recorded with the transcript so far (redacted like
    the transcript, by the tenant's policy)."""
    _check_scope(scope, session_id)
    mode = await policy.session_redaction_mode(pool, session_id, settings)
    request = await redact.escalation(body, mode)
    async with pool.acquire() as conn:
        escalation, replayed = await conversation.record_escalation(
            conn, session_id, request, idempotency_key=idempotency_key
        )
    mark_replay(response, replayed)
    return escalation


@router.post("/{session_id}/alive", status_code=status.HTTP_204_NO_CONTENT)
async def job_alive(
    session_id: UUID,
    reporter: JobReporter,
    pool: Pool,
    redis: RedisClient,
    settings: Settings,
    body: JobAlive,
) -> None:
    """A presenting job reports every few seconds; one that stops is taken as lost and the
    session is sent to another worker. ``409 superseded``: another job presents it now."""
    _check_scope(reporter.claims.session_id, session_id)
    liveness = JobLiveness(redis, silence_s=settings.job_silence_seconds)
    if not reporter.bound:
        # Postgres is away, so the credential's dispatch is unchecked: the job that already
        # presents the session keeps it (else every presenter would be taken for lost and
        # replaced once Postgres is back); any other job waits for Postgres.
        if await liveness.keep(session_id, body.job_id):
            return
        raise UpstreamUnavailable(
            "A dependency (Postgres) did not answer; retry shortly.", headers={"Retry-After": "2"}
        )
    if not await liveness.beat(session_id, body.job_id):
        raise Superseded("Another job presents this session now; leave the room.")
    # A presenting job means the session started, even if its agent-joined report was lost.
    await sessions.mark_started(pool, session_id)


@router.post("/{session_id}/credential")
async def renew_credential(
    session_id: UUID, claims: WorkerClaims, pool: Pool, settings: Settings
) -> SessionCredential:
    """A fresh credential bound to the same dispatch, while the session lives; the job renews
    its short-lived one before it expires."""
    _check_scope(claims.session_id, session_id)
    row = await sessions.credential_state(pool, session_id, grace_s=0)
    if row is None or row["status"] == "ended":
        raise SessionEnded(f"Session {session_id} has ended; its credential is not renewed.")
    return SessionCredential(
        credential=mint_for(settings, session_id, claims.dispatch),
        expires_in=settings.worker_credential_ttl_seconds,
    )
