"""Deck benchmarks on the real stack: ingestion throughput and search latency / recall.

1. Ingestion: a generated PDF deck (text + shapes on every page) uploaded through the API; time
   from POST /v1/decks to `ready`, in slides/s (target >= 40, previews and embeddings included).
2. Search at 10k chunks: one deck of 10k real-embedded chunks. Latency of GET /v1/decks/{id}/search
   end to end, and of its parts (query embedding, dense SQL with HNSW, exact SQL); recall@5 of
   HNSW against exact search. Targets: p95 <= 15 ms, recall@5 >= 0.95.

    .venv/bin/python scripts/bench_decks.py [--chunks 10000] [--pages 100] [--plot docs/benchmarks/decks.png]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg
import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from control_plane.db import create_pool  # noqa: E402
from control_plane.decks.embeddings import LocalMiniLM  # noqa: E402
from shared.devstack.stack import EphemeralStack, TenantKey  # noqa: E402
from tests.factories import make_pdf  # noqa: E402

TOPICS = ["pricing", "security", "roadmap", "onboarding", "integrations", "support", "analytics",
          "compliance", "performance", "migration", "billing", "mobile", "reporting", "alerts"]  # fmt: skip
VERBS = ["reduces", "improves", "explains", "covers", "automates", "tracks", "simplifies"]
NOUNS = ["costs", "latency", "risk", "churn", "revenue", "setup time", "errors", "headcount"]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def sentence(rng: random.Random) -> str:
    topic, verb, noun = rng.choice(TOPICS), rng.choice(VERBS), rng.choice(NOUNS)
    return f"Our {topic} module {verb} {noun} by {rng.randint(5, 60)} percent for {rng.choice(TOPICS)} teams."


async def bench_ingestion(
    api: httpx.AsyncClient, tenant: TenantKey, pages: int
) -> dict[str, float]:
    rng = random.Random(1)
    pdf = make_pdf(
        [[f"Slide {i}: {rng.choice(TOPICS)}", sentence(rng), sentence(rng)] for i in range(pages)]
    )
    t0 = time.perf_counter()
    resp = await api.post("/v1/decks", headers=tenant.headers, files={"file": ("bench.pdf", pdf)})
    resp.raise_for_status()
    accepted = time.perf_counter() - t0
    deck_id = resp.json()["deck_id"]
    while True:
        deck = (await api.get(f"/v1/decks/{deck_id}", headers=tenant.headers)).json()
        if deck["status"] in ("ready", "failed"):
            break
        await asyncio.sleep(0.05)
    total = time.perf_counter() - t0
    assert deck["status"] == "ready", deck
    return {"pages": pages, "accepted_s": accepted, "total_s": total, "slides_per_s": pages / total}


async def seed_chunks(pool: asyncpg.Pool, tenant_id: str, n: int) -> tuple[uuid.UUID, list[str]]:
    rng = random.Random(2)
    texts = [sentence(rng) + " " + sentence(rng) for _ in range(n)]
    embedder = LocalMiniLM(threads=2)
    t0 = time.perf_counter()
    vectors = await embedder.embed(texts)
    print(f"  embedded {n} chunks in {time.perf_counter() - t0:.1f} s", flush=True)
    deck_id = uuid.uuid4()
    slides = n // 4
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            """INSERT INTO decks (id, tenant_id, filename, kind, size_bytes, sha256, title, status,
            slides_total, slides_done, embedding_model, embedding_dim)
            VALUES ($1, $2, 'seeded.pdf', 'pdf', 0, '', 'Seeded', 'ready', $3, $3, $4, 384)""",
            deck_id, uuid.UUID(tenant_id), slides, embedder.model,
        )  # fmt: skip
        await conn.copy_records_to_table(
            "slides",
            records=[(deck_id, i, f"Slide {i}", "", None) for i in range(1, slides + 1)],
            columns=["deck_id", "index", "title", "body", "notes"],
        )
        await conn.copy_records_to_table(
            "chunks",
            records=[(deck_id, 1 + i // 4, "slide", texts[i], vectors[i]) for i in range(n)],
            columns=["deck_id", "slide_index", "kind", "content", "embedding"],
        )
        await conn.execute("ANALYZE chunks")
    return deck_id, texts


async def bench_search(
    api: httpx.AsyncClient, pool: asyncpg.Pool, tenant: TenantKey, deck_id: uuid.UUID, queries: int
) -> dict[str, list[float] | float]:
    rng = random.Random(3)
    embedder = LocalMiniLM()
    qs = [f"how does {rng.choice(TOPICS)} help with {rng.choice(NOUNS)}?" for _ in range(queries)]
    http_ms, embed_ms, hnsw_ms, exact_ms, recalls = [], [], [], [], []
    for q in qs:  # warm-up not recorded
        await api.get(f"/v1/decks/{deck_id}/search", params={"q": q}, headers=tenant.headers)
        break
    for q in qs:
        t0 = time.perf_counter()
        r = await api.get(f"/v1/decks/{deck_id}/search", params={"q": q}, headers=tenant.headers)
        http_ms.append((time.perf_counter() - t0) * 1000)
        r.raise_for_status()
        t0 = time.perf_counter()
        vec = (await embedder.embed([q]))[0]
        embed_ms.append((time.perf_counter() - t0) * 1000)
        async with pool.acquire() as conn:
            t0 = time.perf_counter()
            approx = await conn.fetch(
                "SELECT id FROM chunks WHERE deck_id = $1 ORDER BY embedding <=> $2 LIMIT 5",
                deck_id,
                vec,
            )
            hnsw_ms.append((time.perf_counter() - t0) * 1000)
            async with conn.transaction():
                await conn.execute("SET LOCAL enable_indexscan = off")
                t0 = time.perf_counter()
                exact = await conn.fetch(
                    "SELECT id FROM chunks WHERE deck_id = $1 ORDER BY embedding <=> $2 LIMIT 5",
                    deck_id,
                    vec,
                )
                exact_ms.append((time.perf_counter() - t0) * 1000)
        recalls.append(len({r["id"] for r in approx} & {r["id"] for r in exact}) / 5)
    return {"http": http_ms, "embed": embed_ms, "hnsw_sql": hnsw_ms, "exact_sql": exact_ms,
            "recall5": statistics.mean(recalls)}  # fmt: skip


def plot(search: dict[str, list[float] | float], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    parts = {k: v for k, v in search.items() if isinstance(v, list)}
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.boxplot(list(parts.values()), tick_labels=list(parts.keys()), showfliers=False)
    ax.axhline(15, color="tab:red", linestyle="--", linewidth=1, label="p95 target 15 ms")
    ax.set_ylabel("ms")
    ax.set_title(f"Deck search at 10k chunks (recall@5 HNSW vs exact = {search['recall5']:.3f})")
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


async def run(args: argparse.Namespace, stack: EphemeralStack) -> None:
    tenant = stack.create_tenant("bench")
    pool = await create_pool(stack.postgres.url(), min_size=1, max_size=2)
    try:
        async with httpx.AsyncClient(base_url=stack.api_url, timeout=120) as api:
            ingest = await bench_ingestion(api, tenant, args.pages)
            print(f"\ningestion: {ingest['pages']} pages accepted in {ingest['accepted_s'] * 1000:.0f} ms, "
                  f"ready in {ingest['total_s']:.2f} s = {ingest['slides_per_s']:.1f} slides/s (target >= 40)")  # fmt: skip
            deck_id, _ = await seed_chunks(pool, tenant.tenant_id, args.chunks)
            search = await bench_search(api, pool, tenant, deck_id, args.queries)
    finally:
        await pool.close()
    print(f"\nsearch over {args.chunks} chunks, {args.queries} queries")
    print(f"{'part':<10} {'p50 ms':>8} {'p95 ms':>8}")
    for name, values in search.items():
        if isinstance(values, list):
            print(f"{name:<10} {pct(values, 0.5):>8.2f} {pct(values, 0.95):>8.2f}")
    print(f"recall@5 HNSW vs exact: {search['recall5']:.3f} (target >= 0.95)")
    hnsw, exact = search["hnsw_sql"], search["exact_sql"]
    assert isinstance(hnsw, list) and isinstance(exact, list)
    print(f"exact/HNSW p50 ratio: {pct(exact, 0.5) / pct(hnsw, 0.5):.1f}x")
    plot(search, args.plot)
    print(f"plot: {args.plot}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=10_000)
    parser.add_argument("--pages", type=int, default=100)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--plot", type=Path, default=ROOT / "docs/benchmarks/decks.png")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, EphemeralStack(Path(tmp)) as stack:
        stack.start_control_plane()
        asyncio.run(run(args, stack))


if __name__ == "__main__":
    main()
