"""Question embeddings are computed once per (model, text) and are the model's own vectors."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import pytest

from control_plane.decks import search
from control_plane.decks.embeddings import LocalMiniLM, Vectors


class Counting(LocalMiniLM):
    """The real local model, counting the texts it embeds."""

    def __init__(self) -> None:
        super().__init__(batch_size=8)
        self.texts: list[str] = []

    async def embed(self, texts: Sequence[str]) -> Vectors:
        self.texts.extend(texts)
        return await super().embed(texts)


async def test_a_question_asked_again_is_not_embedded_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(search, "_query_vectors", OrderedDict())
    embedder = Counting()
    first = await search.query_vector(embedder, "what does the pro plan cost?")
    again = await search.query_vector(embedder, "what does the pro plan cost?")
    other = await search.query_vector(embedder, "who is on the team?")
    assert embedder.texts == ["what does the pro plan cost?", "who is on the team?"]
    assert again is first and not first.flags.writeable
    # The cached vector is the model's: the same as embedding the question afresh.
    fresh = (await LocalMiniLM(batch_size=8).embed(["what does the pro plan cost?"]))[0]
    assert (first == fresh).all() and not (other == first).all()


async def test_tenants_do_not_share_cached_questions(monkeypatch: pytest.MonkeyPatch) -> None:
    """A hit is faster: one tenant must not learn by timing what another asked."""
    monkeypatch.setattr(search, "_query_vectors", OrderedDict())
    embedder = Counting()
    await search.query_vector(embedder, "what is the merger price?", "tenant-a")
    await search.query_vector(embedder, "what is the merger price?", "tenant-b")
    assert embedder.texts == ["what is the merger price?"] * 2


async def test_the_cache_keeps_the_most_recent_questions(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(search, "_query_vectors", OrderedDict())
    monkeypatch.setattr(search, "QUERY_CACHE", 2)
    embedder = Counting()
    for text in ("one", "two", "one", "three", "one", "two"):
        await search.query_vector(embedder, text)
    # "two" was the least recently asked when "three" came, so it is embedded again.
    assert embedder.texts == ["one", "two", "three", "two"]
