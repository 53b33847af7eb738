"""The audit trail against the real control plane and Postgres: a scripted sequence of calls is
listed by GET /v1/audit exactly once each (route template, key id, target, status, outcome,
client address), reads that are not records are not; another tenant sees none of it; pages walk
every entry once; bad filters are refused naming the problem; rows cannot be changed or deleted;
a read whose entry cannot be written is withheld; `podium admin audit` prints the trail."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from control_plane import db
from control_plane.migrate import apply_migrations
from shared.devstack.stack import ROOT, EphemeralStack, TenantKey
from tests.factories import make_pdf

LOCAL = "127.0.0.1"
SID = "/v1/sessions/{session_id}"


def bearer(api_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"}


@dataclass(frozen=True)
class Expected:
    method: str
    route: str
    target_id: str | None
    status: int
    key_id: str
    client_ip: str = LOCAL

    @property
    def outcome(self) -> str:
        return "ok" if self.status < 400 else "denied" if self.status < 500 else "error"


def _seen(entry: dict[str, Any]) -> Expected:
    return Expected(
        entry["method"],
        entry["route"],
        entry["target_id"],
        entry["status"],
        entry["key_id"],
        entry["client_ip"],
    )


async def walk(
    api: httpx.AsyncClient, key: str, limit: int, **filters: str
) -> list[list[dict[str, Any]]]:
    """Every page of the caller's audit, newest first."""
    pages: list[list[dict[str, Any]]] = []
    cursor: str | None = None
    while True:
        params = {"limit": str(limit), **filters} | ({"cursor": cursor} if cursor else {})
        resp = await api.get("/v1/audit", headers=bearer(key), params=params)
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert len(body["items"]) <= limit
        pages.append(body["items"])
        if (cursor := body["next_cursor"]) is None:
            return pages


async def _ready_deck(api: httpx.AsyncClient, key: str) -> str:
    pdf = make_pdf([[f"Slide {i}", f"Body {i}"] for i in range(1, 4)])
    resp = await api.post("/v1/decks", headers=bearer(key), files={"file": ("a.pdf", pdf)})
    assert resp.status_code == 202, resp.text
    deck_id = str(resp.json()["deck_id"])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        deck = (await api.get(f"/v1/decks/{deck_id}", headers=bearer(key))).json()
        if deck["status"] in ("ready", "failed"):
            assert deck["status"] == "ready", deck
            return deck_id
        await asyncio.sleep(0.2)
    raise AssertionError("deck not ready in 60 s")


@dataclass
class Scripted:
    tenant: TenantKey
    other: TenantKey
    admin_key_id: str
    narrow_key: str
    narrow_key_id: str
    session_id: str
    other_session_id: str
    expected: list[Expected]
    started: datetime


@pytest.fixture(scope="module")
async def scripted(control_plane: EphemeralStack) -> AsyncIterator[Scripted]:
    """One tenant's scripted calls, each with the entry it must leave (None: it leaves none)."""
    tenant = control_plane.create_tenant("audited")
    control_plane.set_limits(tenant, webhook_endpoints=1)  # a second endpoint is a 429
    other = control_plane.create_tenant("audited other")
    key = tenant.api_key
    expected: list[Expected] = []
    started = datetime.now(UTC)
    async with httpx.AsyncClient(base_url=control_plane.api_url, timeout=20) as api:
        created = await api.post(
            "/v1/keys", headers=bearer(key), json={"name": "decks only", "scopes": ["decks"]}
        )
        assert created.status_code == 201, created.text
        narrow = created.json()
        admin_id = narrow["created_by"]

        def expect(
            method: str, route: str, target: str | None, status: int, key_id: str = admin_id
        ) -> None:
            expected.append(Expected(method, route, target, status, key_id))

        expect("POST", "/v1/keys", narrow["key_id"], 201)

        deck_id = await _ready_deck(api, key)  # its status reads leave no entry
        expect("POST", "/v1/decks", deck_id, 202)

        resp = await api.post("/v1/sessions", headers=bearer(key), json={"deck_id": deck_id})
        assert resp.status_code == 201, resp.text
        sid = resp.json()["session_id"]
        expect("POST", "/v1/sessions", sid, 201)

        # Reads that are not records leave nothing.
        assert (await api.get(f"/v1/sessions/{sid}", headers=bearer(key))).status_code == 200
        assert (await api.get(f"/v1/sessions/{sid}/slide", headers=bearer(key))).status_code == 200
        assert (await api.get("/v1/sessions", headers=bearer(key))).status_code == 200

        resp = await api.post(
            f"/v1/sessions/{sid}/slide", headers=bearer(key), json={"action": "next"}
        )
        assert resp.status_code == 200, resp.text
        expect("POST", SID + "/slide", sid, 200)

        for record in ("transcript", "turns", "events", "escalations", "recording"):
            resp = await api.get(f"/v1/sessions/{sid}/{record}", headers=bearer(key))
            assert resp.status_code in (200, 404, 409), resp.text  # not recorded: 4xx
            expect("GET", f"{SID}/{record}", sid, resp.status_code)
        resp = await api.get(f"/v1/sessions/{sid}/export", headers=bearer(key))
        assert resp.status_code == 200 and resp.text, resp.text
        expect("GET", SID + "/export", sid, 200)

        # A key without records:read is refused, and that is recorded under its id.
        resp = await api.get(f"/v1/sessions/{sid}/transcript", headers=bearer(narrow["api_key"]))
        assert resp.status_code == 403, resp.text
        expect("GET", SID + "/transcript", sid, 403, narrow["key_id"])

        unknown = str(uuid.uuid4())
        resp = await api.get(f"/v1/sessions/{unknown}/turns", headers=bearer(key))
        assert resp.status_code == 404
        expect("GET", SID + "/turns", unknown, 404)

        # A refused id is kept as sent, control characters escaped (a NUL cannot be stored).
        resp = await api.get("/v1/sessions/%00%1b%5B2J/events", headers=bearer(key))
        assert resp.status_code == 422, resp.text
        expect("GET", SID + "/events", "\\x00\\x1b[2J", 422)

        # A body that is not JSON is refused before the route's own authentication runs.
        resp = await api.post(
            "/v1/sessions",
            headers=bearer(key) | {"Content-Type": "application/json"},
            content=b"{not json",
        )
        assert resp.status_code == 422, resp.text
        expect("POST", "/v1/sessions", None, 422)

        resp = await api.post(
            "/v1/webhooks/endpoints",
            headers=bearer(key),
            json={"url": "http://127.0.0.1:9/hook", "events": ["session.ended"]},
        )
        assert resp.status_code == 201, resp.text
        endpoint_id = resp.json()["endpoint_id"]
        expect("POST", "/v1/webhooks/endpoints", endpoint_id, 201)
        resp = await api.post(
            "/v1/webhooks/endpoints", headers=bearer(key), json={"url": "http://127.0.0.1:9/b"}
        )
        assert resp.status_code == 429 and resp.json()["error"] == "limit_exceeded", resp.text
        expect("POST", "/v1/webhooks/endpoints", None, 429)
        resp = await api.delete(f"/v1/webhooks/endpoints/{endpoint_id}", headers=bearer(key))
        assert resp.status_code == 204, resp.text
        expect("DELETE", "/v1/webhooks/endpoints/{endpoint_id}", endpoint_id, 204)

        # Calls without a valid key are not filed under any tenant.
        resp = await api.post("/v1/sessions", headers=bearer("pdm_not-a-key"), json={})
        assert resp.status_code == 401

        # Behind a proxy uvicorn trusts (FORWARDED_ALLOW_IPS, 127.0.0.1 by default), the
        # address is the one the proxy forwarded.
        resp = await api.post(
            f"/v1/sessions/{sid}/end",
            headers=bearer(key) | {"X-Forwarded-For": "203.0.113.7"},
        )
        assert resp.status_code == 200, resp.text
        expected.append(Expected("POST", SID + "/end", sid, 200, admin_id, "203.0.113.7"))

        resp = await api.post("/v1/sessions", headers=bearer(other.api_key), json={})
        assert resp.status_code == 201, resp.text
        other_sid = resp.json()["session_id"]
        await api.post(f"/v1/sessions/{other_sid}/end", headers=bearer(other.api_key))

    yield Scripted(
        tenant,
        other,
        admin_id,
        narrow["api_key"],
        narrow["key_id"],
        sid,
        other_sid,
        expected,
        started,
    )


async def test_the_audit_lists_every_call_of_the_script_exactly_once(
    api: httpx.AsyncClient, scripted: Scripted
) -> None:
    pages = await walk(api, scripted.tenant.api_key, limit=4)
    entries = [e for page in pages for e in page]
    ids = [e["id"] for e in entries]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == len(ids)  # newest first, once
    assert [_seen(e) for e in reversed(entries)] == scripted.expected
    assert all(e["outcome"] == _seen(e).outcome and e["actor"] == "key" for e in entries)
    assert all(scripted.started - timedelta(seconds=5) < _at(e) < _now() for e in entries)
    assert len(pages) == -(-len(scripted.expected) // 4)

    # The walk's own reads are recorded (GET /v1/audit is an admin read), and only now visible.
    again = [e for page in await walk(api, scripted.tenant.api_key, limit=500) for e in page]
    reads = [e for e in again if e["route"] == "/v1/audit"]
    assert len(reads) == len(pages)
    assert {(e["method"], e["status"], e["key_id"]) for e in reads} == {
        ("GET", 200, scripted.admin_key_id)
    }
    assert [e for e in again if e["route"] != "/v1/audit"] == entries


def _at(entry: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(entry["at"])


def _now() -> datetime:
    return datetime.now(UTC) + timedelta(seconds=5)


async def test_another_tenants_audit_shows_none_of_it(
    api: httpx.AsyncClient, scripted: Scripted
) -> None:
    mine = {e["id"] for p in await walk(api, scripted.tenant.api_key, limit=500) for e in p}
    theirs = [e for p in await walk(api, scripted.other.api_key, limit=500) for e in p]
    assert theirs and not mine & {e["id"] for e in theirs}
    assert {e["target_id"] for e in theirs} == {scripted.other_session_id}
    assert scripted.other_session_id not in {e["target_id"] for e in (await _all(api, scripted))}
    # Filtering by the first tenant's key or session finds nothing of theirs either.
    for filters in (
        {"key_id": scripted.admin_key_id},
        {"key_id": scripted.narrow_key_id},
        {"target_id": scripted.session_id},
    ):
        resp = await api.get("/v1/audit", headers=bearer(scripted.other.api_key), params=filters)
        assert resp.status_code == 200 and resp.json()["items"] == [], filters


async def _all(api: httpx.AsyncClient, scripted: Scripted, **filters: str) -> list[dict[str, Any]]:
    return [e for p in await walk(api, scripted.tenant.api_key, limit=500, **filters) for e in p]


async def test_filters_narrow_the_list(api: httpx.AsyncClient, scripted: Scripted) -> None:
    transcript = await _all(api, scripted, route=SID + "/transcript")
    assert sorted(e["status"] for e in transcript) == [200, 403]
    assert [e["status"] for e in await _all(api, scripted, key_id=scripted.narrow_key_id)] == [403]
    denied = await _all(api, scripted, outcome="denied")
    assert {(e["route"], e["status"]) for e in denied} >= {
        (SID + "/transcript", 403),
        (SID + "/turns", 404),
        ("/v1/sessions", 422),
        ("/v1/webhooks/endpoints", 429),
    }
    assert all(400 <= e["status"] < 500 for e in denied)
    deletes = await _all(api, scripted, method="DELETE")
    assert [e["route"] for e in deletes] == ["/v1/webhooks/endpoints/{endpoint_id}"]
    about = await _all(api, scripted, target_id=scripted.session_id)
    assert {e["route"] for e in about} >= {"/v1/sessions", SID + "/export", SID + "/end"}

    everything = await _all(api, scripted)
    middle = sorted(everything, key=lambda e: e["id"])[len(everything) // 2]
    moment = middle["at"]
    later = await _all(api, scripted, **{"from": moment})
    earlier = await _all(api, scripted, to=moment)
    assert all(_at(e) >= _at(middle) for e in later) and middle["id"] in {e["id"] for e in later}
    assert all(_at(e) < _at(middle) for e in earlier)
    assert {e["id"] for e in later} | {e["id"] for e in earlier} >= {e["id"] for e in everything}


@pytest.mark.parametrize(
    ("params", "code", "words"),
    [
        (
            {"from": "2026-02-01T00:00:00Z", "to": "2026-01-01T00:00:00Z"},
            "invalid_filter",
            "'from'",
        ),
        ({"outcome": "maybe"}, "validation_error", "outcome"),
        ({"method": "TRACE"}, "validation_error", "method"),
        ({"from": "2026-01-01T00:00:00"}, "validation_error", "from"),  # no offset
        ({"cursor": "bm90IGEgY3Vyc29y"}, "invalid_cursor", "cursor"),
        ({"key_id": "not-a-uuid"}, "validation_error", "key_id"),
        ({"limit": "501"}, "validation_error", "limit"),
    ],
)
async def test_bad_filters_are_refused_naming_the_problem(
    api: httpx.AsyncClient, scripted: Scripted, params: dict[str, str], code: str, words: str
) -> None:
    resp = await api.get("/v1/audit", headers=scripted.tenant.headers, params=params)
    assert resp.status_code == 422, resp.text
    assert resp.json()["error"] == code and words in resp.json()["message"], resp.json()


async def test_reading_the_audit_needs_the_admin_scope(
    api: httpx.AsyncClient, scripted: Scripted
) -> None:
    resp = await api.get("/v1/audit", headers=bearer(scripted.narrow_key))
    assert resp.status_code == 403 and "'admin' scope" in resp.json()["message"]
    [entry] = await _all(api, scripted, route="/v1/audit", key_id=scripted.narrow_key_id)
    assert (entry["status"], entry["outcome"]) == (403, "denied")


async def test_audit_rows_cannot_be_changed_or_deleted(
    stack: EphemeralStack, scripted: Scripted
) -> None:
    """Not even by the table's owner, which the test stack's API connects as."""
    conn = await asyncpg.connect(stack.postgres.url())
    try:
        where = f"WHERE tenant_id = '{scripted.tenant.tenant_id}'"
        before = await conn.fetchval(f"SELECT count(*) FROM audit_log {where}")
        for statement in (
            f"UPDATE audit_log SET status = 200 {where}",
            f"DELETE FROM audit_log {where}",
            "DELETE FROM audit_log WHERE false",
            "TRUNCATE audit_log",
        ):
            with pytest.raises(asyncpg.RaiseError, match="append-only"):
                await conn.execute(statement)
        assert await conn.fetchval(f"SELECT count(*) FROM audit_log {where}") == before > 0
    finally:
        await conn.close()


async def test_the_runtime_role_holds_no_update_or_delete_right(stack: EphemeralStack) -> None:
    """docs/operations.md's runtime role: default privileges grant it UPDATE and DELETE on every
    new table; on audit_log the migration takes them back."""
    database = f"audit_{uuid.uuid4().hex[:10]}"
    owner_url = stack.postgres.create_database(database)
    role = f"app_{uuid.uuid4().hex[:8]}"
    owner = await db.connect(owner_url)
    try:
        await owner.execute(f"CREATE ROLE {role} LOGIN")
        await owner.execute(f"GRANT USAGE ON SCHEMA public TO {role}")
        for kind, rights in (
            ("TABLES", "SELECT, INSERT, UPDATE, DELETE"),
            ("SEQUENCES", "USAGE, SELECT"),
        ):
            await owner.execute(
                f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT {rights} ON {kind} TO {role}"
            )
        await apply_migrations(owner)
    finally:
        await owner.close()
    app = await asyncpg.connect(
        owner_url.replace("postgresql://postgres@", f"postgresql://{role}@")
    )
    try:
        await app.execute(
            "INSERT INTO audit_log (tenant_id, actor, method, route, status, outcome)"
            " VALUES ($1, 'key', 'POST', '/v1/sessions', 201, 'ok')",
            uuid.uuid4(),
        )
        assert await app.fetchval("SELECT count(*) FROM audit_log") == 1
        for statement in (
            "UPDATE audit_log SET status = 500",
            "DELETE FROM audit_log",
            "TRUNCATE audit_log",
            "ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only",
        ):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await app.execute(statement)
        # Sessions and the rest stay writable as before.
        await app.execute("INSERT INTO tenants (name) VALUES ('t')")
        await app.execute("UPDATE tenants SET name = 'u'")
    finally:
        await app.close()

    # The owner purges old entries as docs/operations.md says, and the trigger is back after.
    owner = await db.connect(owner_url)
    try:
        async with owner.transaction():
            await owner.execute("ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only")
            purged = await owner.execute(
                "DELETE FROM audit_log WHERE at < now() + interval '1 minute'"
            )
            await owner.execute("ALTER TABLE audit_log ENABLE TRIGGER audit_log_append_only")
        assert purged == "DELETE 1"
        with pytest.raises(asyncpg.RaiseError, match="append-only"):
            await owner.execute("DELETE FROM audit_log")
    finally:
        await owner.close()


async def test_a_read_whose_entry_cannot_be_written_is_withheld(
    api: httpx.AsyncClient, stack: EphemeralStack, control_plane: EphemeralStack
) -> None:
    """Records never leave unrecorded (503); a change already made is answered as it is."""
    tenant = control_plane.create_tenant("audit broken")
    resp = await api.post("/v1/sessions", headers=tenant.headers, json={})
    assert resp.status_code == 201, resp.text
    sid = resp.json()["session_id"]
    failures = await _failures(api)
    conn = await asyncpg.connect(stack.postgres.url())
    try:
        # Only this tenant's entries now fail to insert.
        await conn.execute(
            f"ALTER TABLE audit_log ADD CONSTRAINT refuse_one_tenant "
            f"CHECK (tenant_id <> '{tenant.tenant_id}') NOT VALID"
        )
        try:
            resp = await api.get(f"/v1/sessions/{sid}/transcript", headers=tenant.headers)
            assert resp.status_code == 503, resp.text
            assert resp.json()["error"] == "upstream_unavailable"
            assert "audit" in resp.json()["message"] and "items" not in resp.json()
            resp = await api.post(f"/v1/sessions/{sid}/end", headers=tenant.headers)
            assert resp.status_code == 200 and resp.json()["status"] == "ended", resp.text
            # Not a record read: answered whatever the trail does.
            assert (await api.get(f"/v1/sessions/{sid}", headers=tenant.headers)).status_code == 200
        finally:
            await conn.execute("ALTER TABLE audit_log DROP CONSTRAINT refuse_one_tenant")
    finally:
        await conn.close()
    after = await _failures(api)
    assert after["read"] == failures["read"] + 1
    assert after["mutation"] == failures["mutation"] + 1
    resp = await api.get(f"/v1/sessions/{sid}/transcript", headers=tenant.headers)
    assert resp.status_code == 200, resp.text


async def _failures(api: httpx.AsyncClient) -> dict[str, float]:
    text = (await api.get("/metrics")).text
    found = {"read": 0.0, "mutation": 0.0}
    for line in text.splitlines():
        if line.startswith("podium_audit_write_failures_total{"):
            kind = line.split('kind="')[1].split('"')[0]
            found[kind] = float(line.rsplit(" ", 1)[1])
    return found


def _cli(stack: EphemeralStack, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "control_plane", "admin", "audit", *args],
        env=stack.api_env,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )


async def test_the_operator_reads_the_trail_with_the_cli(
    api: httpx.AsyncClient, control_plane: EphemeralStack, scripted: Scripted
) -> None:
    tenant = scripted.tenant.tenant_id
    newest = await _all(api, scripted)
    out = _cli(control_plane, tenant, "--json", "--limit", "3")
    assert out.returncode == 0, out.stderr
    listed = json.loads(out.stdout)
    assert len(listed) == 3 and listed[0]["id"] >= newest[0]["id"]

    out = _cli(control_plane, tenant, "--route", SID + "/export")
    assert out.returncode == 0, out.stderr
    [line] = out.stdout.splitlines()
    assert f"GET    {SID}/export" in line and scripted.session_id in line
    assert "200 ok" in line and f"key {scripted.admin_key_id}" in line and "from 127.0.0.1" in line

    everything = _cli(control_plane, tenant, "--limit", "1000", "--json")
    routes = [e["route"] for e in json.loads(everything.stdout)]
    assert routes.count(SID + "/transcript") == 2

    out = _cli(control_plane, tenant, "--from", "2026-02-01", "--to", "2026-01-01")
    assert out.returncode == 2 and "'from'" in out.stderr, out.stderr
    out = _cli(control_plane, str(uuid.uuid4()))
    assert out.returncode == 2 and "no tenant" in out.stderr
    out = _cli(control_plane, tenant, "--outcome", "maybe")
    assert out.returncode == 2 and "ok, denied, error" in out.stderr
