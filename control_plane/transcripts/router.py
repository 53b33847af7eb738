"""/v1/sessions/{id}/transcript, /turns, /events and /export: what a session left behind."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

import asyncpg
from fastapi import APIRouter, Header, Path, Query
from fastapi.responses import StreamingResponse

from control_plane import pagination
from control_plane.deps import Pool, TenantId, requires
from control_plane.errors import NotFound
from control_plane.sessions import repository as sessions
from control_plane.transcripts import repository, vtt
from control_plane.transcripts.schemas import (
    EventPage,
    SessionEvent,
    Transcript,
    TranscriptLine,
    TurnPage,
)
from shared.schemas import StoredTurn

router = APIRouter(
    prefix="/v1/sessions", tags=["session records"], dependencies=[requires("records:read")]
)

MAX_PAGE = 500
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE, description=f"Items per page, at most {MAX_PAGE}.")]
After = Annotated[int, Query(ge=0, le=2**31 - 1, description="Cursor: the last position seen.")]
VTT_TYPE = "text/vtt"


async def _session(pool: asyncpg.Pool, tenant_id: UUID, session_id: UUID) -> asyncpg.Record:
    row = await sessions.get_for_tenant(pool, tenant_id, session_id)
    if row is None:
        raise NotFound(f"Session {session_id} was not found.")
    return row


@router.get(
    "/{session_id}/transcript",
    response_model=Transcript,
    responses={200: {"content": {VTT_TYPE: {}}}},
)
async def transcript(
    tenant_id: TenantId,
    pool: Pool,
    session_id: UUID,
    format: Annotated[
        Literal["json", "vtt"] | None,
        Query(description="'vtt' for WebVTT (also chosen by 'Accept: text/vtt'); default JSON."),
    ] = None,
    after: After = 0,
    limit: Limit = 500,
    accept: Annotated[str | None, Header()] = None,
) -> Any:
    """The conversation, oldest first: everything the presenter said (greeting, narration,
    answers) and heard. WebVTT holds the whole session in one document."""
    row = await _session(pool, tenant_id, session_id)
    if format == "vtt" or (format is None and VTT_TYPE in (accept or "")):
        zero = vtt.origin(
            row["started_at"] or row["created_at"],
            await repository.first_spoken(pool, session_id),
        )
        return StreamingResponse(
            _webvtt(pool, session_id, zero), media_type=f"{VTT_TYPE}; charset=utf-8"
        )
    lines = await repository.list_messages(pool, session_id, after=after, limit=limit + 1)
    page = lines[:limit]
    return Transcript(
        session_id=session_id,
        status=row["status"],
        items=[TranscriptLine(**dict(line)) for line in page],
        next_after=page[-1]["seq"] if len(lines) > limit else None,
    )


async def _webvtt(
    pool: asyncpg.Pool, session_id: UUID, zero: datetime | None
) -> AsyncIterator[str]:
    """The WebVTT document, a page of cues at a time."""
    yield vtt.HEADER
    if zero is None:
        return
    cues = vtt.Cues(zero)
    async for page in _messages(pool, session_id):
        yield cues.write(page)


async def _messages(pool: asyncpg.Pool, session_id: UUID) -> AsyncIterator[list[asyncpg.Record]]:
    after = 0
    while page := await repository.list_messages(pool, session_id, after=after, limit=MAX_PAGE):
        yield page
        after = page[-1]["seq"]


@router.get("/{session_id}/turns")
async def turns(
    tenant_id: TenantId, pool: Pool, session_id: UUID, after: After = 0, limit: Limit = 100
) -> TurnPage:
    """The turn log: each answer with the user's words, tool calls, slides and timings."""
    await _session(pool, tenant_id, session_id)
    items = await repository.list_turns(pool, session_id, after=after, limit=limit + 1)
    page = items[:limit]
    return TurnPage(
        session_id=session_id,
        items=page,
        next_after=page[-1].number if len(items) > limit else None,
    )


@router.get("/{session_id}/turns/{number}")
async def turn(
    tenant_id: TenantId,
    pool: Pool,
    session_id: UUID,
    number: Annotated[int, Path(ge=1, le=2**31 - 1)],
) -> StoredTurn:
    await _session(pool, tenant_id, session_id)
    found = await repository.list_turns(pool, session_id, number=number, limit=1)
    if not found:
        raise NotFound(f"Session {session_id} has no turn {number}.")
    return found[0]


@router.get("/{session_id}/events")
async def events(
    tenant_id: TenantId,
    pool: Pool,
    session_id: UUID,
    cursor: pagination.Cursor = None,
    limit: Limit = 100,
) -> EventPage:
    """Slide transitions, escalations and lifecycle events (created, agent lost, ended…)."""
    await _session(pool, tenant_id, session_id)
    after = pagination.decode(cursor, datetime, int, str) if cursor else repository.EVENTS_START
    found = await repository.list_events(pool, session_id, after=after, limit=limit + 1)
    page = found[:limit]
    return EventPage(
        session_id=session_id,
        items=[SessionEvent(**e) for e in page],
        next_cursor=pagination.encode(*page[-1]["position"]) if len(found) > limit else None,
    )


@router.get(
    "/{session_id}/export",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/x-ndjson": {}}}},
)
async def export(tenant_id: TenantId, pool: Pool, session_id: UUID) -> StreamingResponse:
    """The whole session as JSON Lines: the session, then every message, turn and event,
    each a line with a ``type``."""
    row = await _session(pool, tenant_id, session_id)

    async def lines() -> AsyncIterator[str]:
        # A page of lines per chunk, each page read after the last key of the one before:
        # memory stays at one page however long the session was.
        head = {k: row[k] for k in ("tenant_id", "room", "status", "deck_id", "metadata")}
        yield _line(
            {
                "type": "session",
                "session_id": session_id,
                **head,
                **{k: row[k] for k in ("created_at", "started_at", "ended_at", "end_reason")},
            }
        )
        async for page in _messages(pool, session_id):
            yield "".join(_line({"type": "message", **dict(line)}) for line in page)
        after = 0
        while turns := await repository.list_turns(pool, session_id, after=after, limit=200):
            yield "".join(t.model_dump_json() + "\n" for t in turns)
            after = turns[-1].number
        position = repository.EVENTS_START
        while found := await repository.list_events(
            pool, session_id, after=position, limit=MAX_PAGE
        ):
            yield "".join(
                _line(
                    {
                        "at": e["at"],
                        "type": "event",
                        "event": e["type"],
                        "actor": e["actor"],
                        "data": e["data"],
                    }
                )
                for e in found
            )
            position = found[-1]["position"]

    return StreamingResponse(
        lines(),
        media_type="application/x-ndjson",
        headers={"Content-Disposition": f'attachment; filename="session-{session_id}.jsonl"'},
    )


def _line(record: dict[str, Any]) -> str:
    return json.dumps(record, default=str) + "\n"
