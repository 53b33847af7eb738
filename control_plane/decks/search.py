"""Hybrid deck search: dense (pgvector) and lexical (Postgres full text) chunk hits, scored per
slide.

A slide's dense score is a soft maximum over its chunks' cosine similarities: its best chunk
leads, and other chunks that also match add a little, since a slide with several lines on the
question's topic is more likely to be the one meant. The lexical score (the idf-weighted share
of the question's words a chunk contains) is added with a small weight: paraphrased questions
share few words with the slide, so it settles near ties rather than leading. Both are scores,
not ranks: fusing ranks let a lexical hit on one stray word outrank a clearly better dense
match, which measured worse than dense alone (scripts/bench_grounding.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal
from uuid import UUID

import asyncpg

from control_plane.decks import repository
from control_plane.decks.embeddings import Embedder

CANDIDATES = 60  # chunks per signal; a slide has a chunk per line and notes sentence
LEXICAL_WEIGHT = 0.15
SOFTMAX_TEMPERATURE = 0.1  # in cosine units: a second chunk 0.1 below the best adds ~0.03


@dataclass
class SlideScore:
    slide_index: int
    title: str | None
    score: float = 0.0
    best_dense: float = -1.0
    snippet: str = ""
    matched: str = "slide"
    dense: list[float] = field(default_factory=list, repr=False)
    lexical: float = 0.0
    snippet_score: float = -math.inf


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
    use_dense, use_lexical = mode != "lexical", mode != "dense"
    lexical_weight = LEXICAL_WEIGHT if use_dense else 1.0
    # A chunk found by both signals is one snippet candidate with both scores.
    lexical_by_chunk = {
        (r["slide_index"], r["content"]): float(r["score"])
        for r in rows
        if r["source"] == "lexical" and use_lexical
    }
    slides: dict[int, SlideScore] = {}
    for row in rows:
        dense = row["source"] == "dense"
        if not (use_dense if dense else use_lexical):
            continue
        s = slides.setdefault(row["slide_index"], SlideScore(row["slide_index"], row["title"]))
        score = float(row["score"])
        lexical = lexical_by_chunk.get((row["slide_index"], row["content"]), 0.0)
        if dense:
            s.dense.append(score)
            s.best_dense = max(s.best_dense, score)
            chunk_score = score + lexical_weight * lexical
        else:
            s.lexical = max(s.lexical, score)
            chunk_score = lexical_weight * score
        if chunk_score > s.snippet_score:
            s.snippet_score = chunk_score
            s.snippet, s.matched = _snippet(row["content"]), row["kind"]
    for s in slides.values():
        s.score = _soft_max(s.dense) + lexical_weight * s.lexical
    ranked = sorted(slides.values(), key=lambda s: (s.score, s.best_dense), reverse=True)
    return ranked[:k]


def _soft_max(scores: list[float]) -> float:
    """T * log(sum(exp(score / T))), computed from the best score so it cannot overflow."""
    if not scores:
        return 0.0
    best = max(scores)
    total = sum(math.exp((x - best) / SOFTMAX_TEMPERATURE) for x in scores)
    return best + SOFTMAX_TEMPERATURE * math.log(total)
