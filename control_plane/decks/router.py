"""/v1/decks: upload a deck, follow its ingestion, read its slides, search it."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query, Request, Response, status
from starlette.datastructures import UploadFile

from control_plane.decks.schemas import DeckList, DeckPublic, SearchResults, SlideList
from control_plane.decks.search import Purpose
from control_plane.decks.service import DeckUnprocessable
from control_plane.deps import Decks, TenantId, requires
from control_plane.errors import PodiumError
from control_plane.limits.guards import EvaluationLimit, SearchLimit, UploadLimit
from shared.evaluation import EvalReport, EvalRequest
from shared.schemas import NO_NUL

router = APIRouter(prefix="/v1/decks", tags=["decks"], dependencies=[requires("decks")])

_UPLOAD_HELP = "multipart/form-data with the deck in a field named 'file' (PDF or .pptx)"


async def _read_upload(request: Request, max_bytes: int) -> tuple[str, bytes]:
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("multipart/form-data"):
        raise PodiumError(f"Send the deck as {_UPLOAD_HELP}.")
    form = await request.form(max_files=1, max_fields=5)
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        raise PodiumError(f"No file was attached. Send {_UPLOAD_HELP}.")
    try:
        if upload.size is not None and upload.size > max_bytes:
            raise DeckUnprocessable(
                "too_large", f"The file is over the {max_bytes // 2**20} MB limit."
            )
        data = await upload.read(max_bytes + 1)
    finally:
        await upload.close()
    if len(data) > max_bytes:
        raise DeckUnprocessable("too_large", f"The file is over the {max_bytes // 2**20} MB limit.")
    # Control characters (NUL among them) cannot be stored and mean nothing in a name.
    name = "".join(ch for ch in (upload.filename or "") if ch.isprintable()).strip()
    return name or "deck", data


@router.post("", status_code=status.HTTP_202_ACCEPTED)
async def upload_deck(
    request: Request, tenant_id: TenantId, decks: Decks, _limits: UploadLimit
) -> DeckPublic:
    """Upload a PDF or PPTX. Answers 202 at once; follow `status` and `progress` on the deck."""
    return await decks.upload(tenant_id, lambda: _read_upload(request, decks.limits.max_bytes))


@router.get("")
async def list_decks(
    tenant_id: TenantId,
    decks: Decks,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> DeckList:
    return await decks.list(tenant_id, limit, cursor)


@router.get("/{deck_id}")
async def get_deck(tenant_id: TenantId, decks: Decks, deck_id: UUID) -> DeckPublic:
    return await decks.get(tenant_id, deck_id)


@router.get("/{deck_id}/slides")
async def list_slides(tenant_id: TenantId, decks: Decks, deck_id: UUID) -> SlideList:
    """Slides with title, text, notes and signed image URLs (valid for an hour)."""
    return await decks.slides(tenant_id, deck_id)


@router.get("/{deck_id}/search")
async def search_deck(
    tenant_id: TenantId,
    decks: Decks,
    _rate: SearchLimit,
    deck_id: UUID,
    q: Annotated[
        str,
        Query(min_length=1, max_length=500, pattern=NO_NUL, description="A question or keywords."),
    ],
    k: Annotated[int, Query(ge=1, le=20)] = 5,
    purpose: Annotated[
        Purpose,
        Query(description="'answer' a question, or find a slide to 'navigate' to by topic."),
    ] = "answer",
) -> SearchResults:
    return await decks.search(tenant_id, deck_id, q.strip() or q, k, purpose=purpose)


@router.post("/{deck_id}/evaluations")
async def evaluate_deck(
    tenant_id: TenantId, decks: Decks, _rate: EvaluationLimit, deck_id: UUID, body: EvalRequest
) -> EvalReport:
    """What the presenter would do with each question (answer from a slide, navigate, decline)
    and how often that matches what you expected; up to 200 questions a request. Nothing is
    stored. ``podium eval`` sends a whole questions file in batches."""
    return await decks.evaluate(tenant_id, deck_id, body)


@router.delete("/{deck_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_deck(tenant_id: TenantId, decks: Decks, deck_id: UUID) -> Response:
    await decks.delete(tenant_id, deck_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
