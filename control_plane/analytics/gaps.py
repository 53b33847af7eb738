"""Content gaps: the questions the presenter declined, grouped by meaning.

Greedy clustering on the deck embedder's unit vectors: each question, oldest first, joins the
group whose first question is nearest if their cosine is at least ``SIMILAR``, else starts
one. 0.55 was measured with the local MiniLM on 12 paraphrase pairs and the 264 cross pairs
between them ("Do you integrate with Salesforce?" / "Is there a Salesforce integration?" 0.87;
"Do you have an on-premise version?" / "Is there a mobile app?" 0.44): at 0.55 no unrelated
pair joins and 6 of 12 paraphrases do; at 0.50, 7 of 12 and one unrelated pair. A missed
paraphrase shows as two gaps; a wrong merge would hide one, so the threshold errs high.
"""

from __future__ import annotations

import hashlib
import logging
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np

from control_plane.analytics.schemas import ContentGap, Question
from control_plane.decks.embeddings import Embedder, EmbeddingError

logger = logging.getLogger(__name__)

SIMILAR = 0.55
# Declined questions grouped per answer (the newest, when more): embedding is the cost of a
# read (the local model takes ~4 ms a question on an idle core, several times that on a busy
# one), so each distinct wording is embedded once per replica and kept in a bounded cache.
MAX_QUESTIONS = 300
MAX_EXAMPLES = 5
CACHE_SIZE = 20_000  # vectors of 384 float32: ~31 MB at most


class VectorCache:
    """Least recently used vectors by (model, digest of the words): the words are not kept."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._rows: OrderedDict[bytes, np.ndarray] = OrderedDict()

    @staticmethod
    def key(model: str, text: str) -> bytes:
        return hashlib.sha256(f"{model}\n{text}".encode()).digest()

    async def embed(self, embedder: Embedder, texts: Sequence[str]) -> np.ndarray:
        keys = [self.key(embedder.model, t) for t in texts]
        missing = list(dict.fromkeys(k for k in keys if k not in self._rows))
        if missing:
            first = {k: t for k, t in zip(keys, texts, strict=True)}
            fresh = await embedder.embed([first[k] for k in missing])
            for k, row in zip(missing, fresh, strict=True):
                self._rows[k] = row
        for k in keys:
            self._rows.move_to_end(k)
        rows = np.stack([self._rows[k] for k in keys])
        while len(self._rows) > self._size:
            self._rows.popitem(last=False)
        return rows


# One per process: the analytics routes are stateless otherwise, and a replica's cache only
# saves work (a miss costs an embedding, never a wrong answer).
_CACHE = VectorCache(CACHE_SIZE)


async def content_gaps(embedder: Embedder, declined: Sequence[Question]) -> list[ContentGap]:
    asked = [q for q in declined if q.text][-MAX_QUESTIONS:]
    if not asked:
        return []
    try:
        vectors = await _CACHE.embed(embedder, [q.text for q in asked])
    except EmbeddingError:
        # The grouping is a convenience: same words still group when the provider is away.
        logger.warning("content gap embedding failed; grouping by exact words")
        return _grouped(asked, _exact_groups(asked), None)
    groups: list[list[int]] = []
    for i in range(len(asked)):
        if groups:
            heads = vectors[[g[0] for g in groups]]
            scores = heads @ vectors[i]
            best = int(np.argmax(scores))
            if float(scores[best]) >= SIMILAR:
                groups[best].append(i)
                continue
        groups.append([i])
    return _grouped(asked, groups, vectors)


def _exact_groups(asked: Sequence[Question]) -> list[list[int]]:
    by_words: dict[str, list[int]] = {}
    for i, q in enumerate(asked):
        by_words.setdefault(" ".join(q.text.lower().split()), []).append(i)
    return list(by_words.values())


def _grouped(
    asked: Sequence[Question], groups: list[list[int]], vectors: np.ndarray | None
) -> list[ContentGap]:
    gaps = []
    for members in groups:
        central = members[0]
        if vectors is not None and len(members) > 2:
            centre = vectors[members].mean(axis=0)
            central = members[int(np.argmax(vectors[members] @ centre))]
        examples: list[str] = []
        for i in members:
            if asked[i].text not in examples and len(examples) < MAX_EXAMPLES:
                examples.append(asked[i].text)
        gaps.append(
            ContentGap(
                question=asked[central].text,
                count=len(members),
                examples=examples,
                sessions=list(dict.fromkeys(asked[i].session_id for i in members)),
                slides=sorted({s for i in members if (s := asked[i].slide_index) is not None}),
            )
        )
    # Most asked first; ties: first asked first (groups are in order of their first question).
    return sorted(gaps, key=lambda g: -g.count)
