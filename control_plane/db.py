"""The asyncpg pool, with the pgvector codec registered on every connection."""

from __future__ import annotations

import json

import asyncpg
from pgvector.asyncpg import register_vector


async def _init_connection(conn: asyncpg.Connection) -> None:
    await register_vector(conn)
    # Deck searches filter the shared HNSW index by deck: keep scanning until enough rows pass
    # the filter (pgvector >= 0.8), and consider at least as many as search asks for (60).
    await conn.execute("SET hnsw.iterative_scan = relaxed_order; SET hnsw.ef_search = 100")
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def create_pool(
    dsn: str, *, min_size: int, max_size: int, command_timeout: float = 10
) -> asyncpg.Pool:
    pool: asyncpg.Pool = await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        init=_init_connection,
        command_timeout=command_timeout,
    )
    return pool


async def connect(dsn: str) -> asyncpg.Connection:
    """A single connection for the CLI and migrations (vector may not exist yet)."""
    conn: asyncpg.Connection = await asyncpg.connect(dsn, command_timeout=60)
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
    return conn
