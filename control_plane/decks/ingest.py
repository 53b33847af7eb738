"""Ingestion off the request path: render previews, chunk, embed, store — durably.

The deck row is the queue. A runner claims the oldest pending deck with a lease and renews it as
it makes progress; if the process dies, the lease runs out and any replica picks the deck up
again (up to ``MAX_ATTEMPTS``). Uploads wake the local runner at once; a periodic sweep catches
everything else.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from uuid import UUID

import asyncpg

from control_plane.decks import pipeline, repository
from control_plane.decks.chunking import Chunk, chunk_slide
from control_plane.decks.converter import PptxConverter
from control_plane.decks.embeddings import Embedder, EmbeddingError
from control_plane.decks.extract import DeckRejected, ExtractedSlide, Limits
from control_plane.decks.sandbox import Bounds, SandboxFailed, run_bounded
from control_plane.storage import AssetStorage
from shared.languages import TEXT_SEARCH_CONFIG, detect_language

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 3
SWEEP_S = 5.0


def original_key(deck_id: UUID) -> str:
    return f"decks/{deck_id}/original"


def image_keys(deck_id: UUID, index: int) -> tuple[str, str]:
    return (
        f"decks/{deck_id}/slide-{index:03d}.jpg",
        f"decks/{deck_id}/slide-{index:03d}-thumb.jpg",
    )


class IngestionRunner:
    def __init__(
        self,
        pool: asyncpg.Pool,
        storage: AssetStorage,
        embedder: Embedder,
        limits: Limits,
        bounds: Bounds,
        *,
        lease_s: float = 30.0,
        multilingual: Embedder | None = None,
        converter: PptxConverter | None = None,
        render_processes: int = 1,
    ) -> None:
        self._pool = pool
        self._render_processes = max(1, render_processes)
        # PPTX to PDF in a long-lived LibreOffice; None: a cold one per deck, in the sandbox.
        self._converter = converter
        self._lease_s = lease_s
        self._storage = storage
        self._embedder = embedder
        # Decks not in English: the multilingual model (None: ``embedder`` is multilingual).
        self._multilingual = multilingual
        self._limits = limits
        self._bounds = bounds
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="deck_ingestion")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def wake(self) -> None:
        self._wake.set()

    async def _run(self) -> None:
        while True:
            try:
                await repository.fail_exhausted(self._pool, MAX_ATTEMPTS)
                while (
                    deck := await repository.claim_next(self._pool, self._lease_s, MAX_ATTEMPTS)
                ) is not None:
                    await self._ingest(deck["id"], deck["kind"], deck["slides_total"])
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                logger.warning("ingestion sweep failed; retrying", exc_info=True)
            except Exception:
                # A bug must not stop ingestion for the life of the process.
                logger.exception("ingestion sweep crashed; retrying")
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), SWEEP_S)

    async def _ingest(self, deck_id: UUID, kind: str, total: int) -> None:
        started = time.perf_counter()
        log = {"deck_id": str(deck_id)}
        logger.info("ingestion started", extra=log)
        heartbeat = asyncio.create_task(self._keep_lease(deck_id), name="deck_lease")
        try:
            await self._ingest_steps(deck_id, kind, total)
        except DeckRejected as exc:
            await repository.mark_failed(self._pool, deck_id, exc.code, exc.message)
            logger.info("deck rejected during ingestion", extra={**log, "code": exc.code})
        except SandboxFailed as exc:
            code, message = _sandbox_failure(exc)
            await repository.mark_failed(self._pool, deck_id, code, message)
            logger.warning("deck parsing failed", extra={**log, "reason": exc.reason})
        except EmbeddingError as exc:
            await repository.mark_retry(self._pool, deck_id)
            logger.warning(
                "embedding failed; deck will be retried", extra={**log, "error": str(exc)}
            )
        except asyncpg.ForeignKeyViolationError:
            # The deck was deleted while it was ingesting: drop what this run stored.
            await self._storage.delete_prefix(f"decks/{deck_id}")
            logger.info("deck deleted during ingestion", extra=log)
        except FileNotFoundError:
            await repository.mark_failed(
                self._pool, deck_id, "original_missing",
                "The uploaded file is no longer stored; upload the deck again.",
            )  # fmt: skip
            logger.warning("deck original missing", extra=log)
        except Exception:
            # Unexpected: retried by the next sweep, up to MAX_ATTEMPTS, then marked failed.
            await repository.mark_retry(self._pool, deck_id)
            logger.exception("ingestion failed unexpectedly; deck will be retried", extra=log)
        except asyncio.CancelledError:
            # Shutting down: hand the deck back so the next runner starts it at once.
            with contextlib.suppress(Exception):
                await asyncio.shield(repository.mark_retry(self._pool, deck_id))
            raise
        else:
            logger.info(
                "ingestion finished",
                extra={**log, "seconds": round(time.perf_counter() - started, 2), "slides": total},
            )
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat

    async def _keep_lease(self, deck_id: UUID) -> None:
        """Renew the lease while this process works; if it dies, another replica takes over
        within one lease."""
        while True:
            await asyncio.sleep(self._lease_s / 3)
            with contextlib.suppress(OSError, asyncpg.PostgresError):
                await repository.renew_lease(self._pool, deck_id, self._lease_s)

    async def _ingest_steps(self, deck_id: UUID, kind: str, total: int) -> None:
        data = await self._storage.get_bytes(original_key(deck_id))
        slides = [
            ExtractedSlide(index=r["index"], title=r["title"], text=r["body"], notes=r["notes"])
            for r in await repository.list_slides(self._pool, deck_id)
        ]
        chunks: list[Chunk] = [c for s in slides for c in chunk_slide(s)]
        language = detect_language(
            " ".join(part for s in slides for part in (s.title, s.text, s.notes) if part)
        )
        embedder = self._embedder
        if language != "en" and self._multilingual is not None:
            embedder = self._multilingual
        progress = _ProgressWriter(self._pool, deck_id, total)
        # Rendering runs in a child process and embedding in a thread: overlap them.
        try:
            async with asyncio.TaskGroup() as group:
                embedding = group.create_task(embedder.embed([c.content for c in chunks]))
                rendering = group.create_task(self._render(deck_id, data, kind, total, progress))
        except BaseExceptionGroup as group_error:
            raise group_error.exceptions[0] from None
        vectors, images = embedding.result(), rendering.result()
        await progress.flush()
        async with self._pool.acquire() as conn, conn.transaction():
            await repository.complete_ingestion(
                conn, deck_id, images, chunks, vectors,
                model=embedder.model, dimension=embedder.dimension,
                language=language, ts_config=TEXT_SEARCH_CONFIG[language],
            )  # fmt: skip

    async def _render(
        self,
        deck_id: UUID,
        data: bytes,
        kind: str,
        slide_count: int,
        progress: _ProgressWriter,
    ) -> dict[int, tuple[str, str]]:
        """Store each slide's preview pair; an empty mapping when previews are unavailable."""
        if kind == "pptx" and self._converter is not None:
            package = await run_bounded(pipeline.sanitised_pptx, data, bounds=self._bounds)
            pdf = await self._converter.convert(package) if package is not None else None
            if pdf is None:
                return {}
            data, kind = pdf, "pdf"
        with tempfile.TemporaryDirectory(prefix="podium-render-") as out_dir:
            pages = await self._render_pages(data, kind, out_dir, progress)
            if pages is None:
                return {}
            if len(pages) != slide_count:
                logger.warning(
                    "preview count differs from slide count; previews dropped",
                    extra={"deck_id": str(deck_id), "pages": len(pages), "slides": slide_count},
                )
                return {}
            keys: dict[int, tuple[str, str]] = {}
            for index, (full, thumb) in enumerate(pages, start=1):
                keys[index] = image_keys(deck_id, index)
                await self._storage.put_file(keys[index][0], Path(full))
                await self._storage.put_file(keys[index][1], Path(thumb))
            return keys

    async def _render_pages(
        self, data: bytes, kind: str, out_dir: str, progress: _ProgressWriter
    ) -> list[tuple[str, str]] | None:
        """A PDF's pages drawn by ``render_processes`` children at once, each taking every n-th
        page (drawing and encoding is most of a deck's ingestion); a PPTX without the
        long-lived office by one, which converts it first."""
        parts = self._render_processes if kind == "pdf" else 1
        done = [0] * parts

        def counted(part: int) -> Callable[[int, int], None]:
            def on_page(count: int, total: int) -> None:
                done[part] = count
                progress.rendered(sum(done), total)

            return on_page

        results = await asyncio.gather(
            *(
                run_bounded(
                    pipeline.render,
                    data,
                    kind,
                    out_dir,
                    self._limits,
                    (part, parts),
                    bounds=self._bounds,
                    on_progress=counted(part),
                )
                for part in range(parts)
            ),
            return_exceptions=True,  # every child done before out_dir goes
        )
        shares: list[list[tuple[str, str]]] = []
        for result in results:
            if isinstance(result, BaseException):
                raise result
            if result is None:
                return None
            shares.append(result)
        # page i is share i % n's (i // n)-th
        return [shares[i % parts][i // parts] for i in range(sum(map(len, shares)))]


def _sandbox_failure(exc: SandboxFailed) -> tuple[str, str]:
    if exc.reason == "timeout":
        return "processing_timeout", "The deck took too long to process; simplify or split it."
    if exc.reason == "memory":
        return "processing_memory", "The deck needs too much memory to process; simplify it."
    return "unreadable", "The deck could not be processed; check that it opens and upload it again."


class _ProgressWriter:
    """Progress is written at most every 0.5 s."""

    def __init__(self, pool: asyncpg.Pool, deck_id: UUID, total: int) -> None:
        self._pool = pool
        self._deck_id = deck_id
        self._total = total
        self._done = 0
        self._written_at = 0.0
        self._pending: asyncio.Task[None] | None = None

    def rendered(self, done: int, total: int) -> None:
        self._done = min(done, self._total)
        now = time.monotonic()
        if now - self._written_at >= 0.5 and (self._pending is None or self._pending.done()):
            self._written_at = now
            self._pending = asyncio.create_task(
                repository.set_progress(self._pool, self._deck_id, self._done)
            )

    async def flush(self) -> None:
        if self._pending is not None:
            with contextlib.suppress(Exception):
                await self._pending
