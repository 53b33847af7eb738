"""Migrations apply once and are recorded; re-running is a no-op."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid

import asyncpg
import httpx
import pytest

from control_plane import db, migrate
from control_plane.conversation import repository as conversation
from control_plane.migrate import apply_migrations, load_migrations
from control_plane.transcripts import repository as transcripts
from shared.devstack.services import ManagedProcess, free_port
from shared.devstack.stack import ROOT, EphemeralStack, http_ok
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


async def test_the_runtime_role_needs_no_ddl_when_migrations_run_as_the_owner(
    stack: EphemeralStack, control_plane: EphemeralStack
) -> None:
    """Production runs the API as a role that may read and write rows but not change the
    schema; `podium migrate` applies migrations with PODIUM_MIGRATIONS_DATABASE_URL."""
    database = f"roles_{uuid.uuid4().hex[:10]}"
    owner_url = stack.postgres.create_database(database)
    role = f"app_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(owner_url)
    try:
        await admin.execute(f"CREATE ROLE {role} LOGIN")
        await admin.execute(f"GRANT CONNECT ON DATABASE {database} TO {role}")
        await admin.execute(f"GRANT USAGE ON SCHEMA public TO {role}")
        for kind, rights in (
            ("TABLES", "SELECT, INSERT, UPDATE, DELETE"),
            ("SEQUENCES", "USAGE, SELECT"),
        ):
            await admin.execute(
                f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT {rights} ON {kind} TO {role}"
            )
        await admin.execute(f"REVOKE CREATE ON SCHEMA public FROM {role}, PUBLIC")
    finally:
        await admin.close()
    app_url = owner_url.replace("postgresql://postgres@", f"postgresql://{role}@")
    env = {**control_plane.api_env, "PODIUM_DATABASE_URL": app_url}

    def podium(*args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "control_plane", *args],
            env={**env, **extra},
            capture_output=True,
            text=True,
        )

    refused = podium("migrate")  # the runtime role cannot create the schema
    assert refused.returncode != 0
    assert "permission denied" in refused.stderr.lower()
    applied = podium("migrate", PODIUM_MIGRATIONS_DATABASE_URL=owner_url)
    assert applied.returncode == 0, applied.stderr
    assert applied.stdout.startswith(f"applied {len(load_migrations())} migration(s)")
    # With nothing pending, the runtime role's own start-up check only reads.
    conn = await db.connect(app_url)
    try:
        assert await apply_migrations(conn) == []
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("CREATE TABLE not_allowed (id int)")
    finally:
        await conn.close()
    created = podium("admin", "create-tenant", "runtime-role", "--json")
    assert created.returncode == 0, created.stderr
    key = json.loads(created.stdout)["api_key"]
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = ManagedProcess(
        "control-plane-runtime-role",
        [sys.executable, "-m", "control_plane", "serve"],
        control_plane.logs / "control-plane-runtime-role.log",
        env={**env, "PODIUM_PORT": str(port), "PODIUM_PUBLIC_URL": url},
        cwd=ROOT,
    )
    proc.start()
    try:
        proc.wait_until(lambda: http_ok(f"{url}/readyz"), 60)
        async with httpx.AsyncClient(base_url=url, timeout=10) as api:
            headers = {"Authorization": f"Bearer {key}"}
            session = await api.post("/v1/sessions", headers=headers, json={})
            assert session.status_code == 201, session.text
            sid = session.json()["session_id"]
            moved = await api.get(f"/v1/sessions/{sid}", headers=headers)
            assert moved.status_code == 200, moved.text
            ended = await api.post(f"/v1/sessions/{sid}/end", headers=headers)
            assert ended.status_code == 200, ended.text
    finally:
        proc.stop()
