"""A session's recording in segments: the worker's job uploads each while the session runs
(/internal/v1), the integrator lists them in order and downloads each (/v1)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import tempfile
from pathlib import Path
from typing import Annotated, BinaryIO
from uuid import UUID

import asyncpg
from fastapi import APIRouter, Query, Request, status
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, Response

from control_plane import pagination
from control_plane.deps import Pool, Signer, Storage, TenantId, WorkerSessionId, requires
from control_plane.errors import Conflict, NotFound, PodiumError
from control_plane.recordings import redaction, repository
from control_plane.recordings.schemas import RecordingPage, RecordingSegment
from control_plane.sessions import repository as sessions
from control_plane.storage import UrlSigner

internal_router = APIRouter(
    prefix="/internal/v1/sessions", tags=["internal"], include_in_schema=False
)
router = APIRouter(
    prefix="/v1/sessions", tags=["session records"], dependencies=[requires("records:read")]
)

MAX_PAGE = 500
OGG = "audio/ogg"
SegmentNumber = Annotated[int, PathParam(ge=0, le=2**31 - 1)]
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE, description=f"Items per page, at most {MAX_PAGE}.")]


class NotOgg(PodiumError):
    status_code = 422
    code = "not_ogg"


class NotRecorded(Conflict):
    code = "recording_not_requested"


@internal_router.put("/{session_id}/recording/segments/{n}", status_code=status.HTTP_204_NO_CONTENT)
async def put_segment(
    session_id: UUID,
    n: SegmentNumber,
    scope: WorkerSessionId,
    pool: Pool,
    storage: Storage,
    request: Request,
    job_id: Annotated[str, Query(min_length=1, max_length=200)],
    started_at: Annotated[float, Query(ge=0, description="Wall time (Unix) it began.")],
    duration_s: Annotated[float, Query(ge=0, le=86_400)],
) -> None:
    """Segment ``n`` of a job's recording (a complete Ogg/Opus file), placed after every
    segment the session already has; the same (job, n) again changes nothing."""
    if scope != session_id:
        raise NotFound(f"Session {session_id} was not found.")
    row = await sessions.get_by_id(pool, session_id)
    if row is None:
        raise NotFound(f"Session {session_id} was not found.")
    if not row["record"]:
        raise NotRecorded("This session was not created with recording on.")
    if await repository.find_segment(pool, session_id, job_id, n) is not None:
        return
    job = hashlib.sha256(job_id.encode()).hexdigest()[:16]  # job ids are not asset-key safe
    key = f"recordings/{session_id}/{job}-{n:05d}.ogg"
    source, size = await _spool(request)
    try:
        await storage.put_file(key, source)
    finally:
        await asyncio.to_thread(source.unlink, True)
    await repository.add_segment(
        pool,
        session_id,
        job_id=job_id,
        n=n,
        started_at=started_at,
        duration_s=duration_s,
        size=size,
        asset_key=key,
    )
    # Spans already known (the turn log may arrive first) are silenced before anyone reads it.
    await redaction.apply_pending(pool, storage, session_id)


async def _spool(request: Request) -> tuple[Path, int]:
    """The body, written to a temporary file as it arrives: memory stays at one chunk whatever
    the segment's size (BodyLimitMiddleware caps it)."""
    fd, name = tempfile.mkstemp(prefix="podium-segment-", suffix=".ogg")
    path = Path(name)
    size = 0
    try:
        with os.fdopen(fd, "wb") as out:
            async for chunk in request.stream():
                if size == 0 and chunk and not chunk.startswith(b"OggS"[: len(chunk)]):
                    raise NotOgg("A recording segment must be an Ogg file.")
                size += len(chunk)
                await asyncio.to_thread(_write, out, chunk)
        if size < 4:
            raise NotOgg("A recording segment must be an Ogg file.")
    except BaseException:
        await asyncio.to_thread(path.unlink, True)
        raise
    return path, size


def _write(out: BinaryIO, chunk: bytes) -> None:
    out.write(chunk)


@router.get("/{session_id}/recording")
async def recording(
    tenant_id: TenantId,
    pool: Pool,
    signer: Signer,
    storage: Storage,
    session_id: UUID,
    cursor: pagination.Cursor = None,
    limit: Limit = 100,
) -> RecordingPage:
    """The session's recording (for sessions created with ``"record": true``): its segments in
    order, each a complete Ogg/Opus file (the user left, the presenter right) behind a signed
    link. Segments arrive while the session runs, one per segment length. Under a redacting
    data policy the user's channel is silent where they spoke personal data."""
    row = await _session(pool, tenant_id, session_id)
    await redaction.apply_pending(pool, storage, session_id)
    (after,) = pagination.decode(cursor, int) if cursor else (-1,)
    found = await repository.list_segments(pool, session_id, after=after, limit=limit + 1)
    page = found[:limit]
    items = [_public(signer, s) for s in page]
    if not found and after < 0 and row["recording_key"]:
        # Stored whole, before segments: one segment spanning the session.
        items = [
            RecordingSegment(
                seq=0,
                started_at=0.0,
                duration_s=0.0,
                bytes=row["recording_bytes"] or 0,
                url=signer.url(row["recording_key"]),
            )
        ]
    return RecordingPage(
        session_id=session_id,
        items=items,
        next_cursor=pagination.encode(page[-1]["seq"]) if len(found) > limit else None,
    )


@router.get(
    "/{session_id}/recording/segments/{seq}",
    response_class=Response,
    responses={200: {"content": {OGG: {}}}},
)
async def segment(
    tenant_id: TenantId, pool: Pool, storage: Storage, session_id: UUID, seq: SegmentNumber
) -> Response:
    """One segment of the session's recording, as audio/ogg."""
    await _session(pool, tenant_id, session_id)
    await redaction.apply_pending(pool, storage, session_id)
    found = await repository.get_segment(pool, session_id, seq)
    if found is None:
        raise NotFound(f"Session {session_id} has no recording segment {seq}.")
    path = storage.local_path(found["asset_key"])
    if path is not None:
        return FileResponse(path, media_type=OGG)
    return Response(await storage.get_bytes(found["asset_key"]), media_type=OGG)


async def _session(pool: asyncpg.Pool, tenant_id: UUID, session_id: UUID) -> asyncpg.Record:
    row = await sessions.get_for_tenant(pool, tenant_id, session_id)
    if row is None:
        raise NotFound(f"Session {session_id} was not found.")
    return row


def _public(signer: UrlSigner, row: asyncpg.Record) -> RecordingSegment:
    return RecordingSegment(
        seq=row["seq"],
        started_at=round(row["started_at_s"], 3),
        duration_s=round(row["duration_s"], 3),
        bytes=row["bytes"],
        url=signer.url(row["asset_key"]),
    )
