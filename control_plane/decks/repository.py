"""SQL for decks, slides and chunks. Tenant-facing reads filter by tenant."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeAlias
from uuid import UUID

import asyncpg
import numpy as np

from control_plane.decks.chunking import Chunk

Conn: TypeAlias = asyncpg.Connection | asyncpg.Pool

_DECK_COLUMNS = (
    "id, tenant_id, filename, kind, size_bytes, sha256, title, status, slides_total, "
    "slides_done, failure_code, failure_message, previews_available, embedding_model, "
    "embedding_dim, attempts, created_at, updated_at, ready_at, language"
)


async def insert_deck(
    conn: Conn,
    *,
    deck_id: UUID,
    tenant_id: UUID,
    filename: str,
    kind: str,
    size_bytes: int,
    sha256: str,
    title: str | None,
    slides_total: int,
) -> asyncpg.Record:
    row: asyncpg.Record = await conn.fetchrow(
        f"""
        INSERT INTO decks (id, tenant_id, filename, kind, size_bytes, sha256, title, slides_total)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
        RETURNING {_DECK_COLUMNS}
        """,
        deck_id,
        tenant_id,
        filename,
        kind,
        size_bytes,
        sha256,
        title,
        slides_total,
    )
    return row


async def get_for_tenant(conn: Conn, tenant_id: UUID, deck_id: UUID) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(
        f"SELECT {_DECK_COLUMNS} FROM decks WHERE id = $1 AND tenant_id = $2", deck_id, tenant_id
    )
    return row


async def get_by_id(conn: Conn, deck_id: UUID) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(
        f"SELECT {_DECK_COLUMNS} FROM decks WHERE id = $1", deck_id
    )
    return row


async def list_for_tenant(
    conn: Conn, tenant_id: UUID, *, limit: int, before: tuple[object, UUID] | None
) -> list[asyncpg.Record]:
    if before is None:
        rows = await conn.fetch(
            f"""SELECT {_DECK_COLUMNS} FROM decks WHERE tenant_id = $1
            ORDER BY created_at DESC, id DESC LIMIT $2""",
            tenant_id,
            limit,
        )
    else:
        rows = await conn.fetch(
            f"""SELECT {_DECK_COLUMNS} FROM decks WHERE tenant_id = $1
            AND (created_at, id) < ($2, $3)
            ORDER BY created_at DESC, id DESC LIMIT $4""",
            tenant_id,
            before[0],
            before[1],
            limit,
        )
    return list(rows)


async def delete_for_tenant(conn: Conn, tenant_id: UUID, deck_id: UUID) -> bool:
    done: str = await conn.execute(
        "DELETE FROM decks WHERE id = $1 AND tenant_id = $2", deck_id, tenant_id
    )
    return done.endswith(" 1")


async def claim_next(conn: Conn, lease_s: float, max_attempts: int) -> asyncpg.Record | None:
    """Take the oldest deck waiting for ingestion, or one whose lease ran out (its ingester
    died); several control-plane replicas may call this at once."""
    row: asyncpg.Record | None = await conn.fetchrow(
        f"""
        UPDATE decks SET status = 'processing', attempts = attempts + 1,
            lease_until = now() + make_interval(secs => $1), updated_at = now()
        WHERE id = (
            SELECT id FROM decks
            WHERE (status = 'pending' OR (status = 'processing' AND lease_until < now()))
              AND attempts < $2
            ORDER BY created_at
            FOR UPDATE SKIP LOCKED
            LIMIT 1
        )
        RETURNING {_DECK_COLUMNS}
        """,
        float(lease_s),
        max_attempts,
    )
    return row


async def fail_exhausted(conn: Conn, max_attempts: int) -> int:
    """Decks whose every attempt died mid-way are failed rather than retried forever."""
    done: str = await conn.execute(
        """
        UPDATE decks SET status = 'failed', failure_code = 'ingestion_failed',
            failure_message = 'Ingestion failed repeatedly; upload the deck again.',
            lease_until = NULL, updated_at = now()
        WHERE attempts >= $1
          AND (status = 'pending' OR (status = 'processing' AND lease_until < now()))
        """,
        max_attempts,
    )
    return int(done.split()[-1])


async def set_progress(conn: Conn, deck_id: UUID, done: int) -> None:
    await conn.execute(
        """UPDATE decks SET slides_done = $2, updated_at = now()
        WHERE id = $1 AND status = 'processing'""",
        deck_id,
        done,
    )


async def renew_lease(conn: Conn, deck_id: UUID, lease_s: float) -> None:
    await conn.execute(
        """UPDATE decks SET lease_until = now() + make_interval(secs => $2)
        WHERE id = $1 AND status = 'processing'""",
        deck_id,
        lease_s,
    )


async def mark_failed(conn: Conn, deck_id: UUID, code: str, message: str) -> None:
    await conn.execute(
        """UPDATE decks SET status = 'failed', failure_code = $2, failure_message = $3,
        lease_until = NULL, updated_at = now() WHERE id = $1""",
        deck_id,
        code,
        message,
    )


async def mark_retry(conn: Conn, deck_id: UUID) -> None:
    await conn.execute(
        """UPDATE decks SET status = 'pending', lease_until = NULL, updated_at = now()
        WHERE id = $1 AND status = 'processing'""",
        deck_id,
    )


async def insert_slides(
    conn: asyncpg.Connection,
    deck_id: UUID,
    slides: Sequence[tuple[int, str | None, str, str | None]],
) -> None:
    """Slide text and notes, known from the upload's validation before ingestion starts."""
    await conn.copy_records_to_table(
        "slides",
        records=[(deck_id, *s) for s in slides],
        columns=["deck_id", "index", "title", "body", "notes"],
    )


async def complete_ingestion(
    conn: asyncpg.Connection,
    deck_id: UUID,
    images: dict[int, tuple[str, str]],
    chunks: Sequence[Chunk],
    vectors: np.ndarray,
    *,
    model: str,
    dimension: int,
    language: str = "en",
    ts_config: str = "english",
) -> None:
    """Attach previews, write the chunks and mark the deck ready, in the caller's transaction.
    Safe to repeat: a retried ingestion replaces what an interrupted one wrote. ``ts_config``
    is the Postgres text search configuration of the deck's ``language``."""
    await conn.executemany(
        "UPDATE slides SET image_key = $3, thumb_key = $4 WHERE deck_id = $1 AND index = $2",
        [(deck_id, index, full, thumb) for index, (full, thumb) in images.items()],
    )
    await conn.execute("DELETE FROM chunks WHERE deck_id = $1", deck_id)
    await conn.copy_records_to_table(
        "chunks",
        records=[
            (deck_id, c.slide_index, c.kind, c.content, vectors[i]) for i, c in enumerate(chunks)
        ],
        columns=["deck_id", "slide_index", "kind", "content", "embedding"],
    )
    if ts_config != "english":  # asyncpg's binary COPY has no regconfig codec: set it after
        await conn.execute(
            "UPDATE chunks SET ts_config = $2::regconfig WHERE deck_id = $1", deck_id, ts_config
        )
    await conn.execute(
        """UPDATE decks SET status = 'ready', slides_done = slides_total,
        previews_available = $2, embedding_model = $3, embedding_dim = $4, lease_until = NULL,
        failure_code = NULL, failure_message = NULL, ready_at = now(), updated_at = now(),
        language = $5
        WHERE id = $1""",
        deck_id,
        bool(images),
        model,
        dimension,
        language,
    )


async def list_slides(conn: Conn, deck_id: UUID) -> list[asyncpg.Record]:
    return list(
        await conn.fetch(
            """SELECT index, title, body, notes, image_key, thumb_key FROM slides
            WHERE deck_id = $1 ORDER BY index""",
            deck_id,
        )
    )


async def outline(conn: Conn, deck_id: UUID) -> list[asyncpg.Record]:
    return list(
        await conn.fetch(
            "SELECT index, title FROM slides WHERE deck_id = $1 ORDER BY index", deck_id
        )
    )


async def deck_text_config(conn: Conn, deck_id: UUID) -> str:
    """The text search configuration the deck's chunks were indexed with ("english" if none)."""
    config = await conn.fetchval(
        "SELECT ts_config::text FROM chunks WHERE deck_id = $1 LIMIT 1", deck_id
    )
    return str(config or "english")


async def slide_profiles(
    conn: Conn, deck_id: UUID, ts_config: str = "english"
) -> list[asyncpg.Record]:
    """Per slide: title (and its lexemes, stemmed as chunks are), text, notes, chunk count."""
    return list(
        await conn.fetch(
            """
            SELECT s.index, s.title, s.body, s.notes,
                   tsvector_to_array(to_tsvector($2::regconfig, coalesce(s.title, '')))
                       AS title_lexemes,
                   (SELECT count(*) FROM chunks c
                    WHERE c.deck_id = s.deck_id AND c.slide_index = s.index) AS chunks
            FROM slides s WHERE s.deck_id = $1 ORDER BY s.index
            """,
            deck_id,
            ts_config,
        )
    )


async def chunk_vectors(conn: Conn, deck_id: UUID, limit: int) -> list[tuple[int, np.ndarray]]:
    """Up to ``limit`` of the deck's chunk embeddings, spread over the deck, with their slide."""
    rows = await conn.fetch(
        """
        SELECT slide_index, embedding FROM (
            SELECT slide_index, embedding, row_number() OVER (ORDER BY id) AS n,
                   count(*) OVER () AS total
            FROM chunks WHERE deck_id = $1
        ) c WHERE n % greatest(1, ceil(total::float8 / $2)::int) = 0 ORDER BY slide_index
        """,
        deck_id,
        limit,
    )
    return [(r["slide_index"], _array(r["embedding"])) for r in rows]


def _array(vector: object) -> np.ndarray:
    to_numpy = getattr(vector, "to_numpy", None)  # pgvector's Vector, as the pool decodes it
    return np.asarray(to_numpy() if to_numpy else vector, dtype=np.float32)


async def dense_hits(
    conn: Conn, deck_id: UUID, query: np.ndarray, limit: int
) -> list[asyncpg.Record]:
    """The deck's chunks nearest to the query's embedding (``source`` 'dense', the cosine
    similarity in ``score``): half of what deck search scores, :func:`lexical_hits` the other."""
    return list(
        await conn.fetch(
            """
            SELECT 'dense' AS source, slide_index, kind, content,
                   1 - (embedding <=> $2) AS score,
                   NULL::text[] AS lexemes, NULL::text AS lexeme, NULL::bigint AS df
            FROM chunks WHERE deck_id = $1 ORDER BY embedding <=> $2 LIMIT $3
            """,
            deck_id,
            query,
            limit,
        )
    )


async def lexical_hits(
    conn: Conn, deck_id: UUID, text: str, limit: int, ts_config: str = "english"
) -> list[asyncpg.Record]:
    """What deck search scores by words, in one round trip that needs no embedding (it runs
    while the query is embedded); ``source`` says what each row is:

    - ``lexical``: chunks sharing words with the query, ``score`` the share of the query's words
      the chunk contains, each weighted by its rarity among the deck's slides (BM25's idf):
      people ask in sentences, so any word may match, but a word on most slides says little;
    - ``slide``: per slide with any of the query's lexemes, those lexemes;
    - ``term``: per query lexeme, its idf weight (``score``) and on how many slides it is (``df``).

    The deck's chunks are read through the deck's index and matched here: the text index spans
    every deck, and a common word's entries across all of them cost more than one deck's rows
    (in one plan with 8k chunks in the table: 1.25 ms a word, against ~0.2 ms for all words).
    """
    return list(
        await conn.fetch(
            r"""
            WITH terms AS (
                -- each lexeme as a one-word tsquery, quoted so that it is taken as it is
                SELECT lexeme, ('''' || replace(replace(lexeme, '\', '\\'), '''', '''''')
                                || '''')::tsquery AS query
                FROM unnest(tsvector_to_array(to_tsvector($4::regconfig, $2))) AS lexeme
            ),
            deck_chunks AS MATERIALIZED (
                SELECT id, slide_index, tsv FROM chunks WHERE deck_id = $1
            ),
            matches AS (
                SELECT c.id, c.slide_index, t.lexeme
                FROM terms t JOIN deck_chunks c ON c.tsv @@ t.query
            ),
            idf AS (
                SELECT t.lexeme, count(DISTINCT m.slide_index) AS df,
                       ln(1.0 + (d.slides_total - count(DISTINCT m.slide_index) + 0.5)
                                / (count(DISTINCT m.slide_index) + 0.5))::float8 AS weight
                FROM terms t
                JOIN decks d ON d.id = $1
                LEFT JOIN matches m ON m.lexeme = t.lexeme
                GROUP BY t.lexeme, d.slides_total
            ),
            lexical AS (
                SELECT m.id, sum(i.weight) / (SELECT sum(weight) FROM idf) AS score
                FROM matches m JOIN idf i ON i.lexeme = m.lexeme
                GROUP BY m.id ORDER BY score DESC LIMIT $3
            )
            SELECT 'lexical' AS source, c.slide_index, c.kind, c.content, h.score,
                   NULL::text[] AS lexemes, NULL::text AS lexeme, NULL::bigint AS df
                FROM lexical h JOIN chunks c ON c.id = h.id
            UNION ALL
            SELECT 'slide', slide_index, NULL, NULL, NULL, array_agg(DISTINCT lexeme), NULL, NULL
                FROM matches GROUP BY slide_index
            UNION ALL
            SELECT 'term', NULL, NULL, NULL, weight, NULL, lexeme, df FROM idf
            """,
            deck_id,
            text,
            limit,
            ts_config,
        )
    )
