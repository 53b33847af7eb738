"""Migrations apply once and are recorded; re-running is a no-op."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid

import asyncpg
import pytest

from control_plane import db, migrate
from control_plane.conversation import repository as conversation
from control_plane.migrate import apply_migrations, load_migrations
from control_plane.transcripts import repository as transcripts
from shared.devstack.stack import EphemeralStack
from shared.schemas import ConversationMessage


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


async def test_transcript_lines_are_renumbered_per_session_in_their_order(
    stack: EphemeralStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Lines stored before migration 0013 (numbered by a counter shared by every tenant) read
    1, 2, … within each session afterwards, in the order the API gave them; new lines go on
    from there."""
    url = stack.postgres.create_database(f"seq_{uuid.uuid4().hex[:12]}")
    everything = load_migrations()
    conn = await db.connect(url)
    try:
        monkeypatch.setattr(
            migrate, "load_migrations", lambda: [m for m in everything if m.version < 13]
        )
        await apply_migrations(conn)
        tenant = await conn.fetchval("INSERT INTO tenants (name) VALUES ('t') RETURNING id")
        sessions = [
            await conn.fetchval(
                "INSERT INTO sessions (tenant_id, room) VALUES ($1, $2) RETURNING id", tenant, room
            )
            for room in ("a", "b")
        ]
        # Interleaved, as two live sessions' messages arrive.
        for i in range(5):
            for sid in sessions:
                await conn.execute(
                    "INSERT INTO session_messages (session_id, item_id, role, text) "
                    "VALUES ($1, $2, 'user', $3)",
                    sid,
                    f"m{i}",
                    f"{sid} {i}",
                )
        monkeypatch.setattr(migrate, "load_migrations", lambda: everything)
        assert 13 in await apply_migrations(conn)

        for sid in sessions:
            lines = await transcripts.list_messages(conn, sid, after=0, limit=100)
            assert [(r["seq"], r["text"]) for r in lines] == [
                (i + 1, f"{sid} {i}") for i in range(5)
            ]
            later = ConversationMessage(item_id="late", role="assistant", text="later")
            await conversation.add_messages(conn, sid, [later, later])
            [last] = await transcripts.list_messages(conn, sid, after=5, limit=100)
            assert (last["seq"], last["item_id"]) == (6, "late")
    finally:
        await conn.close()
