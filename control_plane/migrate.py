"""Versioned, forward-only SQL migrations (``migrations/NNNN_name.sql``).

Each file runs once, in its own transaction, recorded in ``schema_migrations``. A session-level
advisory lock, taken before anything else, lets several control-plane replicas start at once
without racing (on an empty database too).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from importlib import resources

import asyncpg

logger = logging.getLogger(__name__)

_FILE_RE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_LOCK_KEY = 0x504F4449554D  # "PODIUM"


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def load_migrations() -> list[Migration]:
    found = []
    for entry in resources.files("control_plane.migrations").iterdir():
        match = _FILE_RE.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise RuntimeError("two migrations share a version number")
    return found


async def _applied(conn: asyncpg.Connection) -> set[int]:
    if await conn.fetchval("SELECT to_regclass('schema_migrations') IS NULL"):
        return set()
    return {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}


async def apply_migrations(conn: asyncpg.Connection) -> list[int]:
    """Apply pending migrations; return the versions applied now. With none pending it only
    reads, so a runtime role without DDL rights may call it (``podium migrate`` runs the DDL
    with ``PODIUM_MIGRATIONS_DATABASE_URL``)."""
    if {m.version for m in load_migrations()} <= await _applied(conn):
        return []
    applied_now: list[int] = []
    # The lock comes first: two replicas creating schema_migrations at once on an empty
    # database collide in the catalog even with IF NOT EXISTS.
    await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)
    try:
        await conn.execute(
            """
            CREATE TABLE IF NOT EXISTS schema_migrations (
                version    integer PRIMARY KEY,
                name       text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now()
            )
            """
        )
        done = await _applied(conn)
        for migration in load_migrations():
            if migration.version in done:
                continue
            async with conn.transaction():
                await conn.execute(migration.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                    migration.version,
                    migration.name,
                )
            applied_now.append(migration.version)
            logger.info("migration applied", extra={"version": migration.version})
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)
    return applied_now
