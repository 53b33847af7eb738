"""Deck search: which slide answers a listener's question, and whether any slide does.

One round trip to Postgres brings the candidates (the nearest chunks by embedding, with pgvector,
and every chunk sharing a word with the question, with full text search); a per-deck profile
(titles, title embeddings, chunk counts, what kinds of facts each slide states) is read once per
process and kept. Each slide then gets a handful of features, each measured the same way on any
deck, and two small fitted models decide:

- the **ranking** is a linear score over the features (``ranking.json``: weights fitted by a
  pairwise logistic loss on labelled real decks, reported leave-one-deck-out by
  ``scripts/bench_grounding.py``). Scores are calibrated per query against the deck's own
  distribution (a z-score over its slides) and a slide's size is a feature, so a text-heavy slide
  that is a little similar to everything does not win by size.
- the **coverage** is a logistic model over the best slide's features and question-level evidence
  (how much of the question's rare vocabulary the deck contains at all, whether a slide states the
  kind of fact asked for: a price, a number, a date). Below its threshold the presenter says the
  deck does not cover the question.

Navigation by topic ("the wrap-up", "the team slide") ranks with its own weights, in which the
title counts for more, after expanding common section names.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any, Literal
from uuid import UUID

import asyncpg
import numpy as np

from control_plane.decks import repository
from control_plane.decks.embeddings import SIMILARITY_SCALE, Embedder
from control_plane.decks.queries import WORD, asks_for, names_in, spoken_query, topic_query

CANDIDATES = 100  # nearest chunks by embedding; a slide has a chunk per line and notes sentence
PROFILE_CACHE = 256  # decks whose profile a process keeps
QUERY_CACHE = 2048  # question embeddings a process keeps (1.5 kB each)

Purpose = Literal["answer", "navigate"]
Mode = Literal["hybrid", "dense", "lexical"]

FEATURES = (
    "dense",  # best chunk's cosine similarity
    "dense_z",  # the same, as a z-score over the deck's slides for this question
    "dense_second",  # the slide's second-best chunk (its best when it has one chunk)
    "dense_soft",  # a soft maximum over its chunks: other matching chunks add a little
    "lexical",  # idf-weighted share of the question's words found anywhere on the slide
    "lexical_chunk",  # the same, in the slide's best single chunk
    "title_lexical",  # ... in the slide's title
    "title_dense",  # cosine similarity of the question and the title alone
    "size",  # log of the slide's chunk count: text-heavy slides must not win by size
    "hub",  # how similar the slide is to the rest of the deck: a slide near everything wins
    # questions it does not answer (CSLS's correction of hubness, with the deck's own chunks
    # standing in for questions)
    "answer_type",  # +1 the slide states the kind of fact asked for, -1 it states none, 0 n/a
)


@dataclass
class SlideScore:
    slide_index: int
    title: str | None
    score: float = 0.0
    best_dense: float = -1.0
    snippet: str = ""
    matched: str = "slide"
    features: dict[str, float] = field(default_factory=dict, repr=False)
    snippet_score: float = -math.inf


@dataclass
class SearchOutcome:
    """Slides best first, and whether the best one answers the question."""

    slides: list[SlideScore]
    covered: bool
    confidence: float


# --- the deck profile --------------------------------------------------------------------------

_NUMBER = re.compile(r"\d|\b(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve"
                     r"|(?:thir|four|fif|six|seven|eigh|nine)teen|(?:twen|thir|for|fif|six|seven"
                     r"|eigh|nine)ty|hundred|thousand|million|billion|dozen|half|twice|double)\b",
                     re.I)  # fmt: skip
_PRICE = re.compile(r"[$€£¥₹]|\b(?:usd|eur|gbp|dollars?|euros?|pounds|price[ds]?|pricing|cost[s]?"
                    r"|free|fee[s]?|per (?:seat|user|month|year|license|licence)|/mo\b|subscription"
                    r"|plan[s]?|tier[s]?)\b", re.I)  # fmt: skip
_DATE = re.compile(r"\b(?:19|20)\d\d\b|\bq[1-4]\b|\b(?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept"
                   r"|oct|nov|dec)[a-z]*\b|\b(?:today|tomorrow|week|month|quarter|year|deadline"
                   r"|launch(?:ed|es)?|timeline|roadmap|h[12])\b", re.I)  # fmt: skip
_CONTACT = re.compile(r"@|https?://|www\.|\.com\b|\.org\b|\.io\b|\bphone\b|\btel\b|\+\d|\bemail\b"
                      r"|\bcontact\b|\breach\b", re.I)  # fmt: skip


@dataclass(frozen=True)
class SlideProfile:
    index: int
    title: str | None
    title_lexemes: frozenset[str]
    chunks: int
    states: frozenset[str]  # the kinds of fact the slide states: number, price, date, contact


@dataclass
class DeckProfile:
    slides: dict[int, SlideProfile]
    words: frozenset[str]  # every word the deck uses, lower-cased
    order: list[int]
    ts_config: str = "english"  # the text search configuration of the deck's language
    # Read on the first topic search only (answers do not use them): one unit row per slide
    # (zeros for an untitled slide) in ``order``, and each slide's hubness.
    titles: np.ndarray | None = None
    hubs: dict[int, float] = field(default_factory=dict)


def _states(text: str) -> frozenset[str]:
    kinds = {"number": _NUMBER, "price": _PRICE, "date": _DATE, "contact": _CONTACT}
    return frozenset(kind for kind, pattern in kinds.items() if pattern.search(text))


HUB_SAMPLE = 800  # chunks that stand in for questions when measuring each slide's hubness


def _hubness(rows: list[tuple[int, np.ndarray]]) -> dict[int, float]:
    """Per slide, the mean over the deck's other chunks of their best similarity to one of its
    chunks: high for a slide that resembles everything (a long grid of short lines)."""
    if not rows:
        return {}
    rows = sorted(rows, key=lambda r: r[0])
    slides = np.array([r[0] for r in rows])
    vectors = np.stack([np.asarray(r[1], dtype=np.float32) for r in rows])
    probe = np.linspace(0, len(rows) - 1, min(len(rows), HUB_SAMPLE)).astype(int)
    sims = vectors[probe] @ vectors.T  # probes x chunks
    starts = np.flatnonzero(np.r_[True, slides[1:] != slides[:-1]])
    best = np.maximum.reduceat(sims, starts, axis=1)  # probes x slides
    own = slides[probe][:, None] == slides[starts][None, :]
    hub = {}
    for column, start in enumerate(starts):
        others = best[~own[:, column], column]
        hub[int(slides[start])] = float(others.mean()) if others.size else 0.0
    return hub


_profiles: OrderedDict[tuple[UUID, str], DeckProfile] = OrderedDict()


async def deck_profile(pool: asyncpg.Pool, embedder: Embedder, deck_id: UUID) -> DeckProfile:
    """The deck's per-slide facts, read and embedded once per process (a ready deck's slides and
    chunks never change; a re-uploaded deck is a new deck)."""
    key = (deck_id, embedder.model)
    if (hit := _profiles.get(key)) is not None:
        _profiles.move_to_end(key)
        return hit
    ts_config = await repository.deck_text_config(pool, deck_id)
    rows = await repository.slide_profiles(pool, deck_id, ts_config)
    profile = DeckProfile(
        ts_config=ts_config,
        slides={
            r["index"]: SlideProfile(
                index=r["index"],
                title=r["title"],
                title_lexemes=frozenset(r["title_lexemes"] or ()),
                chunks=max(1, int(r["chunks"])),
                states=_states(" ".join(filter(None, (r["title"], r["body"], r["notes"])))),
            )
            for r in rows
        },
        order=[r["index"] for r in rows],
        words=frozenset(
            w
            for r in rows
            for part in (r["title"], r["body"], r["notes"])
            if part
            for w in WORD.findall(part.lower())
        ),
    )
    _profiles[key] = profile
    while len(_profiles) > PROFILE_CACHE:
        _profiles.popitem(last=False)
    return profile


async def _navigation_profile(
    pool: asyncpg.Pool, embedder: Embedder, deck_id: UUID, profile: DeckProfile
) -> np.ndarray:
    if profile.titles is None:
        titles = [profile.slides[i].title or "" for i in profile.order]
        vectors = np.zeros((len(titles), embedder.dimension), dtype=np.float32)
        titled = [i for i, t in enumerate(titles) if t.strip()]
        if titled:
            vectors[titled] = await embedder.embed([titles[i] for i in titled])
        hubs = _hubness(await repository.chunk_vectors(pool, deck_id, HUB_SAMPLE))
        a, b = SIMILARITY_SCALE.get(embedder.model, (1.0, 0.0))
        profile.hubs = {index: a * hub + b for index, hub in hubs.items()}
        profile.titles = vectors
    return profile.titles


_query_vectors: OrderedDict[tuple[str, str, str], np.ndarray] = OrderedDict()


async def query_vector(embedder: Embedder, text: str, scope: str = "") -> np.ndarray:
    """The question's embedding, computed once per process for each (scope, model, text): the
    same question comes back (a presenter's retried tool call, listeners asking what others
    asked, an evaluation run again), and the embedding is most of a search's time. The vector
    is the one the model gave, so a search answers exactly as it would without the cache.
    ``scope`` (the tenant) keeps one tenant from learning by timing what another asked."""
    key = (scope, embedder.model, text)
    if (hit := _query_vectors.get(key)) is not None:
        _query_vectors.move_to_end(key)
        return hit
    vector: np.ndarray = (await embedder.embed([text]))[0]
    vector.setflags(write=False)  # shared by every search that asks the same
    _query_vectors[key] = vector
    while len(_query_vectors) > QUERY_CACHE:
        _query_vectors.popitem(last=False)
    return vector


# --- features and models -------------------------------------------------------------------------


@dataclass(frozen=True)
class Params:
    rank: dict[str, float]
    navigate: dict[str, float]
    cover_bias: float
    cover: dict[str, float]
    threshold: float
    navigate_threshold: float

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Params:
        return cls(
            rank=data["rank"],
            navigate=data["navigate"],
            cover_bias=data["cover_bias"],
            cover=data["cover"],
            threshold=data["threshold"],
            navigate_threshold=data["navigate_threshold"],
        )


@cache
def default_params() -> Params:
    text = resources.files("control_plane.decks").joinpath("ranking.json").read_text()
    return Params.from_json(json.loads(text))


COVER_FEATURES = (
    "score",  # the best slide's ranking score
    "margin",  # how far it leads the second slide
    "dense",
    "dense_z",
    "lexical",
    "answer_type",
    "deck_vocabulary",  # idf-weighted share of the question's words the deck contains anywhere
    "unknown_terms",  # rare question words found on no slide (a product, a certification...)
    "unknown_names",  # names and numbers the question uses that the deck never does
    "known_names",  # ... that the deck uses too
)


@dataclass
class Candidates:
    """Everything the models read for one question: per-slide features before weighting."""

    slides: dict[int, SlideScore]
    deck_vocabulary: float
    unknown_terms: float
    asks: str | None
    unknown_names: int = 0
    known_names: int = 0


def _z_scores(values: dict[int, float], total: int, floor: float) -> dict[int, float]:
    """z-scores over all ``total`` slides, those not in ``values`` counting as ``floor``."""
    if not values:
        return {}
    xs = np.array(list(values.values()), dtype=np.float64)
    rest = max(0, total - len(xs))
    n = len(xs) + rest
    mean = (xs.sum() + rest * floor) / n
    var = ((xs - mean) ** 2).sum() + rest * (floor - mean) ** 2
    std = math.sqrt(var / n)
    return {k: (v - mean) / max(std, 0.02) for k, v in values.items()}


async def candidates(
    pool: asyncpg.Pool,
    embedder: Embedder,
    deck_id: UUID,
    query: str,
    *,
    purpose: Purpose = "answer",
    scope: str = "",
) -> Candidates:
    text = topic_query(query) if purpose == "navigate" else spoken_query(query)

    # The question is embedded (in a thread) while the deck's profile (a deck's first search)
    # and the search by words are read: the embedding is most of a search's time.
    async def by_words() -> tuple[DeckProfile, list[asyncpg.Record]]:
        profile = await deck_profile(pool, embedder, deck_id)
        rows = await repository.lexical_hits(pool, deck_id, text, CANDIDATES, profile.ts_config)
        return profile, rows

    async def by_meaning() -> tuple[np.ndarray, list[asyncpg.Record]]:
        vector = await query_vector(embedder, text, scope)
        return vector, await repository.dense_hits(pool, deck_id, vector, CANDIDATES)

    (profile, lexical), (vector, dense_rows) = await asyncio.gather(by_words(), by_meaning())
    rows = [*dense_rows, *lexical]  # the dense rows first: a lexical chunk's score reads them
    navigate = purpose == "navigate"
    titles = await _navigation_profile(pool, embedder, deck_id, profile) if navigate else None
    scale, shift = SIMILARITY_SCALE.get(embedder.model, (1.0, 0.0))
    # An answer ranks the slides the search found; a topic may be a title and nothing else.
    indexes = (
        set(profile.slides)
        if navigate
        else {
            r["slide_index"]
            for r in rows
            if r["source"] in ("dense", "lexical") and r["slide_index"] in profile.slides
        }
    )
    slides = {
        index: SlideScore(index, profile.slides[index].title, features=dict.fromkeys(FEATURES, 0.0))
        for index in indexes
    }
    dense: dict[int, list[float]] = {i: [] for i in slides}
    idf: dict[str, float] = {}
    df: dict[str, int] = {}
    found: dict[int, set[str]] = {}
    for row in rows:
        source = row["source"]
        if source == "term":
            idf[row["lexeme"]], df[row["lexeme"]] = float(row["score"]), int(row["df"])
        elif source == "slide":
            found[row["slide_index"]] = set(row["lexemes"])
    total_idf = sum(idf.values()) or 1.0
    for row in rows:
        s = slides.get(row["slide_index"]) if row["slide_index"] is not None else None
        if s is None or row["source"] not in ("dense", "lexical"):
            continue
        score = float(row["score"])
        if row["source"] == "dense":
            score = scale * score + shift
            dense[s.slide_index].append(score)
            chunk_score = score
        else:
            s.features["lexical_chunk"] = max(s.features["lexical_chunk"], score)
            chunk_score = 0.3 * score + (max(dense[s.slide_index]) if dense[s.slide_index] else 0)
        if chunk_score > s.snippet_score:
            s.snippet_score = chunk_score
            s.snippet, s.matched = _snippet(row["content"]), row["kind"]
    floor = min((x for xs in dense.values() for x in xs), default=0.0) - 0.02
    best = {i: max(xs) if xs else floor for i, xs in dense.items()}
    z = _z_scores(best, len(profile.slides), floor)
    title_scores = scale * (titles @ vector) + shift if titles is not None else None
    asks = asks_for(query) if purpose == "answer" else None
    for position, index in enumerate(profile.order):
        if index not in slides:
            continue
        s, p = slides[index], profile.slides[index]
        ordered = sorted(dense[index], reverse=True)
        f = s.features
        f["dense"] = best[index]
        f["dense_z"] = z[index]
        f["dense_second"] = ordered[1] if len(ordered) > 1 else (ordered[0] if ordered else floor)
        f["dense_soft"] = _soft_max(ordered) if ordered else floor
        f["lexical"] = sum(idf.get(lex, 0.0) for lex in found.get(index, ())) / total_idf
        f["title_lexical"] = sum(idf.get(lex, 0.0) for lex in p.title_lexemes & idf.keys())
        f["title_lexical"] /= total_idf
        if title_scores is not None and p.title:
            f["title_dense"] = float(title_scores[position])
        f["size"] = math.log(p.chunks)
        f["hub"] = profile.hubs.get(index, 0.0)
        f["answer_type"] = 0.0 if asks is None else (1.0 if asks in p.states else -1.0)
        s.best_dense = best[index]
        if not s.snippet:
            s.snippet = _snippet(p.title or f"Slide {index}")
    present = sum(w for lex, w in idf.items() if df.get(lex, 0) > 0)
    rare_missing = sum(w for lex, w in idf.items() if df.get(lex, 0) == 0 and len(lex) > 2)
    names = names_in(query)
    known = {n for n in names if n in profile.words}
    return Candidates(
        slides=slides,
        deck_vocabulary=present / total_idf if idf else 0.0,
        unknown_terms=rare_missing / total_idf if idf else 0.0,
        asks=asks,
        unknown_names=min(3, len(names - known)),
        known_names=min(3, len(known)),
    )


def rank(found: Candidates, weights: dict[str, float]) -> list[SlideScore]:
    for s in found.slides.values():
        s.score = sum(weights.get(name, 0.0) * value for name, value in s.features.items())
    return sorted(found.slides.values(), key=lambda s: (s.score, s.best_dense), reverse=True)


def cover_features(found: Candidates, ranked: list[SlideScore]) -> dict[str, float]:
    top = ranked[0]
    second = ranked[1].score if len(ranked) > 1 else top.score - 1.0
    return {
        "score": top.score,
        "margin": top.score - second,
        "dense": top.features["dense"],
        "dense_z": top.features["dense_z"],
        "lexical": top.features["lexical"],
        "answer_type": top.features["answer_type"],
        "deck_vocabulary": found.deck_vocabulary,
        "unknown_terms": found.unknown_terms,
        "unknown_names": float(found.unknown_names),
        "known_names": float(found.known_names),
    }


def coverage(features: dict[str, float], bias: float, weights: dict[str, float]) -> float:
    """The probability that the best slide answers the question."""
    logit = bias + sum(weights.get(name, 0.0) * value for name, value in features.items())
    return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, logit))))


async def search_deck(
    pool: asyncpg.Pool,
    embedder: Embedder,
    deck_id: UUID,
    query: str,
    k: int,
    *,
    mode: Mode = "hybrid",
    purpose: Purpose = "answer",
    params: Params | None = None,
    scope: str = "",
) -> SearchOutcome:
    """Slides ranked for ``query``, and whether the best one answers it; ``mode`` isolates one
    signal (benchmarks compare them); ``scope`` as for :func:`query_vector`."""
    params = params or default_params()
    found = await candidates(pool, embedder, deck_id, query, purpose=purpose, scope=scope)
    return decide(found, params, k, mode=mode, purpose=purpose)


def decide(
    found: Candidates,
    params: Params,
    k: int,
    *,
    mode: Mode = "hybrid",
    purpose: Purpose = "answer",
) -> SearchOutcome:
    weights = params.navigate if purpose == "navigate" else params.rank
    if mode == "dense":
        weights = {"dense": 1.0}
    elif mode == "lexical":
        weights = {"lexical": 1.0, "lexical_chunk": 0.1}
    ranked = rank(found, weights)
    if not ranked:
        return SearchOutcome([], covered=False, confidence=0.0)
    if purpose == "navigate":
        # A topic request lands on the best slide unless nothing in the deck resembles it and
        # it names something the deck never mentions ("the slide about blockchain").
        top = ranked[0].features
        confidence = max(top["title_dense"], top["dense"])
        lands = confidence >= params.navigate_threshold or not found.unknown_names
        return SearchOutcome(ranked[:k], lands, confidence)
    confidence = coverage(cover_features(found, ranked), params.cover_bias, params.cover)
    return SearchOutcome(ranked[:k], confidence >= params.threshold, confidence)


SOFTMAX_TEMPERATURE = 0.1  # in cosine units: a second chunk 0.1 below the best adds ~0.03


def _soft_max(scores: list[float]) -> float:
    """T * log(sum(exp(score / T))), computed from the best score so it cannot overflow."""
    best = max(scores)
    total = sum(math.exp((x - best) / SOFTMAX_TEMPERATURE) for x in scores)
    return best + SOFTMAX_TEMPERATURE * math.log(total)


def _snippet(text: str, limit: int = 220) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rsplit(" ", 1)[0] + "…"
