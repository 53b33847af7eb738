"""Hybrid deck search: dense (pgvector) and lexical (Postgres full text) chunk hits, fused per
slide by reciprocal rank fusion, dense first when ranks tie."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal
from uuid import UUID

import asyncpg

from control_plane.decks import repository
from control_plane.decks.embeddings import Embedder

RRF_K = 60
CANDIDATES = 40
LEXICAL_WEIGHT = 0.5  # lexical hits confirm; dense similarity leads (paraphrased questions)


@dataclass
class SlideScore:
    slide_index: int
    title: str | None
    score: float = 0.0
    best_dense: float = -1.0
    snippet: str = ""
    matched: str = "slide"


def _snippet(text: str, limit: int = 220) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rsplit(" ", 1)[0] + "…"


Mode = Literal["hybrid", "dense", "lexical"]


async def search_deck(
    pool: asyncpg.Pool,
    embedder: Embedder,
    deck_id: UUID,
    query: str,
    k: int,
    *,
    mode: Mode = "hybrid",
) -> list[SlideScore]:
    """Slides ranked for ``query``; ``mode`` isolates one signal (benchmarks compare them)."""
    vector = (await embedder.embed([query]))[0]
    rows = await repository.search_hits(pool, deck_id, vector, query, CANDIDATES)
    dense = [r for r in rows if r["source"] == "dense" and mode != "lexical"]
    lexical = [r for r in rows if r["source"] == "lexical" and mode != "dense"]
    slides: dict[int, SlideScore] = {}
    for rank, row in enumerate(_best_per_slide(dense), start=1):
        s = slides.setdefault(row["slide_index"], SlideScore(row["slide_index"], row["title"]))
        s.score += 1.0 / (RRF_K + rank)
        s.best_dense = float(row["score"])
        s.snippet, s.matched = _snippet(row["content"]), row["kind"]
    for rank, row in enumerate(_best_per_slide(lexical), start=1):
        s = slides.setdefault(row["slide_index"], SlideScore(row["slide_index"], row["title"]))
        s.score += LEXICAL_WEIGHT / (RRF_K + rank)
        if not s.snippet:
            s.snippet, s.matched = _snippet(row["content"]), row["kind"]
    ranked = sorted(slides.values(), key=lambda s: (s.score, s.best_dense), reverse=True)
    return ranked[:k]


def _best_per_slide(rows: list[asyncpg.Record]) -> list[asyncpg.Record]:
    """Rows arrive best first; keep each slide's best chunk only, so one wordy slide with many
    chunks cannot crowd the ranking."""
    seen: set[int] = set()
    best: list[asyncpg.Record] = []
    for row in rows:
        if row["slide_index"] not in seen:
            seen.add(row["slide_index"])
            best.append(row)
    return best
