"""Migrations apply once and are recorded; re-running is a no-op."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid

import asyncpg

from control_plane import db
from control_plane.migrate import apply_migrations, load_migrations
from shared.devstack.stack import EphemeralStack


def test_migrate_cli_reports_up_to_date(control_plane: EphemeralStack) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "control_plane", "migrate"],
        env=control_plane.api_env,
        check=True,
        capture_output=True,
        text=True,
    )
    assert out.stdout.strip() == "up to date"


async def test_schema_has_pgvector_and_recorded_versions(
    stack: EphemeralStack, control_plane: EphemeralStack
) -> None:
    conn = await asyncpg.connect(stack.postgres.url())
    try:
        versions = [r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")]
        assert versions == [m.version for m in load_migrations()]
        assert versions[:10] == list(range(1, 11))
        ext = await conn.fetchval("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
        assert ext == "0.8.6"
        # API keys are stored as digests only.
        assert (
            await conn.fetchval(
                "SELECT count(*) FROM information_schema.columns "
                "WHERE table_name = 'api_keys' AND data_type = 'text' AND column_name LIKE '%key%'"
            )
            == 0
        )
    finally:
        await conn.close()


async def test_replicas_starting_together_on_a_fresh_database_all_succeed(
    stack: EphemeralStack,
) -> None:
    """Three control planes migrating one empty database at once (a first deploy with three
    replicas): one applies everything, the others wait for it and find nothing to do."""
    for attempt in range(3):  # the race is a matter of timing: give it several chances
        url = stack.postgres.create_database(f"fresh_{uuid.uuid4().hex[:12]}")
        conns = [await db.connect(url) for _ in range(3)]
        try:
            applied = await asyncio.gather(*(apply_migrations(c) for c in conns))
            everything = [m.version for m in load_migrations()]
            assert sorted(applied, key=len) == [[], [], everything], f"attempt {attempt}"
            recorded = await conns[0].fetch("SELECT version FROM schema_migrations ORDER BY 1")
            assert [r["version"] for r in recorded] == everything
        finally:
            for conn in conns:
                await conn.close()
