"""Deck lifecycle for integrators: upload (validated during the request), read, search, delete."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from uuid import UUID, uuid4

import asyncpg

from control_plane.decks import pipeline, repository
from control_plane.decks.embeddings import Embedder, EmbeddingError
from control_plane.decks.evaluation import evaluate_question
from control_plane.decks.extract import DeckRejected, ExtractedDeck, Limits
from control_plane.decks.ingest import IngestionRunner, original_key
from control_plane.decks.sandbox import Bounds, SandboxFailed, run_bounded
from control_plane.decks.schemas import (
    DeckFailure,
    DeckList,
    DeckProgress,
    DeckPublic,
    SearchHit,
    SearchResults,
    SlideList,
    SlidePublic,
)
from control_plane.decks.search import Purpose, SearchOutcome, search_deck
from control_plane.errors import Conflict, NotFound, PodiumError, UpstreamUnavailable
from control_plane.storage import AssetStorage, UrlSigner
from shared.evaluation import EvalReport, EvalRequest, summarise

logger = logging.getLogger(__name__)


class DeckUnprocessable(PodiumError):
    """The upload is not a deck we can read; ``code`` names the reason."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.status_code = 413 if code in ("too_large", "archive_too_large") else 422


_QUEUE_WAIT_S = 20.0


class UploadsBusy(UpstreamUnavailable):
    code = "busy"


class UploadTooSlow(PodiumError):
    status_code = 408
    code = "upload_timeout"


# Receives the uploaded deck: its file name and bytes.
FileReader = Callable[[], Awaitable[tuple[str, bytes]]]


class DeckNotReady(Conflict):
    code = "deck_not_ready"


def to_public(row: asyncpg.Record) -> DeckPublic:
    failure = (
        DeckFailure(code=row["failure_code"], message=row["failure_message"])
        if row["failure_code"]
        else None
    )
    return DeckPublic(
        deck_id=row["id"],
        filename=row["filename"],
        kind=row["kind"],
        title=row["title"],
        status=row["status"],
        progress=DeckProgress(slides_done=row["slides_done"], slides_total=row["slides_total"]),
        failure=failure,
        previews_available=row["previews_available"],
        size_bytes=row["size_bytes"],
        sha256=row["sha256"],
        embedding_model=row["embedding_model"],
        language=row["language"],
        created_at=row["created_at"],
        ready_at=row["ready_at"],
    )


def _encode_cursor(created_at: datetime, deck_id: UUID) -> str:
    return base64.urlsafe_b64encode(f"{created_at.isoformat()}|{deck_id}".encode()).decode()


def _decode_cursor(cursor: str) -> tuple[datetime, UUID]:
    try:
        stamp, raw_id = base64.urlsafe_b64decode(cursor.encode()).decode().split("|")
        return datetime.fromisoformat(stamp).astimezone(UTC), UUID(raw_id)
    except (ValueError, OverflowError) as exc:
        raise PodiumError("The cursor is not one this API returned.") from exc


class DeckService:
    def __init__(
        self,
        pool: asyncpg.Pool,
        storage: AssetStorage,
        embedder: Embedder,
        runner: IngestionRunner,
        signer: UrlSigner,
        limits: Limits,
        bounds: Bounds,
        *,
        max_parallel_parses: int = 2,
        read_timeout_s: float = 120.0,
        multilingual: Embedder | None = None,
    ) -> None:
        self._pool = pool
        self._storage = storage
        self._embedder = embedder
        # A deck is searched with the model that indexed it: English decks with ``embedder``,
        # others with the multilingual one when ``embedder`` is not multilingual itself.
        self._embedders = {e.model: e for e in (embedder, multilingual) if e is not None}
        self._runner = runner
        self._signer = signer
        self.limits = limits
        self._bounds = bounds
        # Each parse may take parse_memory_mb for parse_timeout_seconds in its own child:
        # cap how many run at once so a burst of uploads cannot exhaust the host.
        self._parsing = asyncio.Semaphore(max_parallel_parses)
        self._parses: set[asyncio.Future[ExtractedDeck]] = set()
        self._read_timeout_s = read_timeout_s

    @property
    def embedder(self) -> Embedder:
        """The deck embedder (analytics groups declined questions with it)."""
        return self._embedder

    def _parse_done(self, parse: asyncio.Future[ExtractedDeck]) -> None:
        self._parses.discard(parse)
        self._parsing.release()
        if not parse.cancelled():
            parse.exception()  # retrieved here so an abandoned parse logs nothing

    async def upload(self, tenant_id: UUID, read_file: FileReader) -> DeckPublic:
        """Check and accept a deck. ``read_file`` is called once a parse slot is ours: uploads
        waiting for a slot leave their bodies unread (in the client's socket, not our memory)."""
        try:
            async with asyncio.timeout(_QUEUE_WAIT_S):
                await self._parsing.acquire()
        except TimeoutError as exc:
            raise UploadsBusy(
                "Too many decks are being checked right now; retry in a few seconds.",
                headers={"Retry-After": "5"},
            ) from exc
        try:
            filename, data = await self._receive(read_file)
        except BaseException:
            self._parsing.release()
            raise
        # The slot is freed when the parse ends, not when the request does: a client that
        # disconnects must not free a slot its parse still occupies (parses are time-bounded).
        parse = asyncio.ensure_future(
            run_bounded(pipeline.inspect, data, self.limits, bounds=self._bounds)
        )
        self._parses.add(parse)
        parse.add_done_callback(self._parse_done)
        try:
            deck = await asyncio.shield(parse)
        except DeckRejected as exc:
            raise DeckUnprocessable(exc.code, exc.message) from exc
        except SandboxFailed as exc:
            raise DeckUnprocessable(
                "unreadable", "The file could not be read as a deck; check that it opens."
            ) from exc
        deck_id = uuid4()
        await self._storage.put_bytes(original_key(deck_id), data)
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                row = await repository.insert_deck(
                    conn,
                    deck_id=deck_id,
                    tenant_id=tenant_id,
                    filename=filename[:255] or "deck",
                    kind=deck.kind,
                    size_bytes=len(data),
                    sha256=hashlib.sha256(data).hexdigest(),
                    title=deck.title,
                    slides_total=len(deck.slides),
                )
                await repository.insert_slides(
                    conn, deck_id, [(s.index, s.title, s.text, s.notes) for s in deck.slides]
                )
        except BaseException:
            # Nothing stored must outlive a deck that was never recorded.
            await self._storage.delete_prefix(f"decks/{deck_id}")
            raise
        self._runner.wake()
        logger.info("deck accepted", extra={"deck_id": str(deck_id), "slides": len(deck.slides)})
        return to_public(row)

    async def _receive(self, read_file: FileReader) -> tuple[str, bytes]:
        # The slot is held while the body arrives: a slow sender may not keep it for long.
        try:
            async with asyncio.timeout(self._read_timeout_s):
                return await read_file()
        except TimeoutError as exc:
            raise UploadTooSlow(
                f"The file did not arrive within {self._read_timeout_s:g} s; "
                "upload it again over a faster connection."
            ) from exc

    async def get(self, tenant_id: UUID, deck_id: UUID) -> DeckPublic:
        return to_public(await self._load(tenant_id, deck_id))

    async def list(self, tenant_id: UUID, limit: int, cursor: str | None) -> DeckList:
        before = _decode_cursor(cursor) if cursor else None
        rows = await repository.list_for_tenant(
            self._pool, tenant_id, limit=limit + 1, before=before
        )
        items = [to_public(r) for r in rows[:limit]]
        next_cursor = (
            _encode_cursor(rows[limit - 1]["created_at"], rows[limit - 1]["id"])
            if len(rows) > limit
            else None
        )
        return DeckList(items=items, next_cursor=next_cursor)

    async def slides(self, tenant_id: UUID, deck_id: UUID) -> SlideList:
        await self._ready(tenant_id, deck_id)
        rows = await repository.list_slides(self._pool, deck_id)
        return SlideList(
            deck_id=deck_id,
            slides=[
                SlidePublic(
                    index=r["index"],
                    title=r["title"],
                    text=r["body"],
                    notes=r["notes"],
                    image_url=self._signer.url(r["image_key"]) if r["image_key"] else None,
                    thumbnail_url=self._signer.url(r["thumb_key"]) if r["thumb_key"] else None,
                )
                for r in rows
            ],
        )

    async def evaluate(self, tenant_id: UUID, deck_id: UUID, request: EvalRequest) -> EvalReport:
        """Run each question through the presenter's decision logic (see evaluation.py)."""
        deck = await self._searchable(tenant_id, deck_id)

        async def search(query: str, purpose: Purpose, k: int) -> SearchOutcome:
            return await self._search(
                tenant_id, deck_id, query, k, purpose, deck["embedding_model"]
            )

        results = [
            await evaluate_question(q, deck["slides_total"], search, deck["language"])
            for q in request.questions
        ]
        return EvalReport(deck_id=str(deck_id), results=results, summary=summarise(results))

    async def _search(
        self, tenant_id: UUID, deck_id: UUID, query: str, k: int, purpose: Purpose, model: str
    ) -> SearchOutcome:
        embedder = self._embedders[model]
        try:
            return await search_deck(
                self._pool, embedder, deck_id, query, k, purpose=purpose, scope=str(tenant_id)
            )
        except EmbeddingError as exc:
            raise UpstreamUnavailable(str(exc)) from exc

    async def _searchable(self, tenant_id: UUID, deck_id: UUID) -> asyncpg.Record:
        deck = await self._ready(tenant_id, deck_id)
        if deck["embedding_model"] not in self._embedders:
            raise Conflict(
                f"The deck was indexed with {deck['embedding_model']}, but this server embeds "
                f"with {self._embedder.model}; upload the deck again to search it."
            )
        return deck

    async def search(
        self,
        tenant_id: UUID,
        deck_id: UUID,
        query: str,
        k: int,
        *,
        purpose: Purpose = "answer",
    ) -> SearchResults:
        deck = await self._searchable(tenant_id, deck_id)
        found = await self._search(tenant_id, deck_id, query, k, purpose, deck["embedding_model"])
        return SearchResults(
            deck_id=deck_id,
            query=query,
            purpose=purpose,
            covered=found.covered,
            confidence=round(found.confidence, 4),
            hits=[
                SearchHit(
                    slide_index=s.slide_index,
                    title=s.title,
                    score=round(s.score, 6),
                    snippet=s.snippet,
                    matched="notes" if s.matched == "notes" else "slide",
                )
                for s in found.slides
            ],
        )

    async def delete(self, tenant_id: UUID, deck_id: UUID) -> None:
        if not await repository.delete_for_tenant(self._pool, tenant_id, deck_id):
            raise NotFound(f"Deck {deck_id} was not found.")
        await self._storage.delete_prefix(f"decks/{deck_id}")

    async def require_ready(self, tenant_id: UUID, deck_id: UUID) -> asyncpg.Record:
        return await self._ready(tenant_id, deck_id)

    async def _load(self, tenant_id: UUID, deck_id: UUID) -> asyncpg.Record:
        row = await repository.get_for_tenant(self._pool, tenant_id, deck_id)
        if row is None:
            raise NotFound(f"Deck {deck_id} was not found.")
        return row

    async def _ready(self, tenant_id: UUID, deck_id: UUID) -> asyncpg.Record:
        row = await self._load(tenant_id, deck_id)
        if row["status"] != "ready":
            raise DeckNotReady(
                f"Deck {deck_id} is {row['status']}"
                + (f" ({row['failure_message']})" if row["failure_message"] else "")
                + "; only ready decks can be used."
            )
        return row
