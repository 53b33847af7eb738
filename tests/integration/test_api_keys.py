"""API keys against the real control plane, Postgres and Redis: a tenant creates, lists, revokes
and rotates its keys through /v1/keys, the operator through `podium admin keys`; every tenant
route needs its scope; a key revoked anywhere is refused within seconds; and authentication
records a key's last use without writing on every request."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from control_plane import db
from control_plane.keys.schemas import ALL_SCOPES
from control_plane.keys.service import CACHE_SECONDS, authenticate
from shared.devstack.stack import ROOT, EphemeralStack, TenantKey

KEY_FIELDS = {
    "key_id",
    "prefix",
    "name",
    "scopes",
    "created_at",
    "last_used_at",
    "revoked_at",
    "created_by",
}
RECORDS = ("transcript", "turns", "events", "export", "recording", "escalations", "analytics")


def bearer(api_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"}


async def create_key(
    api: httpx.AsyncClient, by: str, scopes: Sequence[str], name: str = "a key"
) -> dict[str, Any]:
    resp = await api.post("/v1/keys", headers=bearer(by), json={"name": name, "scopes": scopes})
    assert resp.status_code == 201, resp.text
    body: dict[str, Any] = resp.json()
    return body


async def list_keys(api: httpx.AsyncClient, by: str) -> dict[str, dict[str, Any]]:
    resp = await api.get("/v1/keys", headers=bearer(by))
    assert resp.status_code == 200, resp.text
    return {k["key_id"]: k for k in resp.json()}


async def works(api: httpx.AsyncClient, api_key: str) -> bool:
    """Whether the key is accepted (on a route every test key here may call)."""
    resp = await api.get("/v1/keys", headers=bearer(api_key))
    assert resp.status_code in (200, 401), resp.text
    return resp.status_code == 200


async def refused_within(api: httpx.AsyncClient, api_key: str, limit_s: float) -> float:
    """Seconds until the control plane refuses the key; fails past ``limit_s``."""
    started = time.monotonic()
    while await works(api, api_key):
        assert time.monotonic() - started < limit_s, f"still accepted after {limit_s} s"
        await asyncio.sleep(0.1)
    return time.monotonic() - started


def cli(stack: EphemeralStack, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "control_plane", "admin", "keys", *args],
        env=stack.api_env,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )


async def test_a_tenant_creates_lists_uses_and_revokes_its_keys(
    api: httpx.AsyncClient, control_plane: EphemeralStack, tenant: TenantKey
) -> None:
    created = await create_key(api, tenant.api_key, ["decks", "sessions"], name=" ci deploys ")
    secret = created["api_key"]
    assert secret.startswith(created["prefix"]) and secret.startswith("pdm_")
    assert created["name"] == "ci deploys" and created["scopes"] == ["sessions", "decks"]
    assert created["revoked_at"] is None and created["last_used_at"] is None

    resp = await api.get("/v1/keys", headers=tenant.headers)
    assert resp.status_code == 200
    assert secret not in resp.text and tenant.api_key not in resp.text
    keys = {k["key_id"]: k for k in resp.json()}
    assert all(set(k) == KEY_FIELDS for k in keys.values())
    (first,) = [k for k in keys.values() if k["key_id"] != created["key_id"]]
    # The key create-tenant made: every scope, made by the operator, used by this listing.
    assert first["name"] == "default" and first["scopes"] == list(ALL_SCOPES)
    assert first["created_by"] is None and first["last_used_at"] is not None
    assert keys[created["key_id"]]["created_by"] == first["key_id"]
    assert keys[created["key_id"]]["last_used_at"] is None

    assert (await api.get("/v1/decks", headers=bearer(secret))).status_code == 200
    assert (await list_keys(api, tenant.api_key))[created["key_id"]]["last_used_at"] is not None

    # Another tenant neither sees nor revokes it.
    other = control_plane.create_tenant("other keys")
    assert created["key_id"] not in await list_keys(api, other.api_key)
    resp = await api.delete(f"/v1/keys/{created['key_id']}", headers=other.headers)
    assert resp.status_code == 404, resp.text

    resp = await api.delete(f"/v1/keys/{created['key_id']}", headers=tenant.headers)
    assert resp.status_code == 204, resp.text
    # The replica that revoked the key refuses it at once.
    resp = await api.get("/v1/decks", headers=bearer(secret))
    assert resp.status_code == 401 and resp.json()["error"] == "unauthorized"
    assert (await list_keys(api, tenant.api_key))[created["key_id"]]["revoked_at"] is not None
    again = await api.delete(f"/v1/keys/{created['key_id']}", headers=tenant.headers)
    assert again.status_code == 204
    unknown = await api.delete(f"/v1/keys/{uuid.uuid4()}", headers=tenant.headers)
    assert unknown.status_code == 404 and unknown.json()["error"] == "not_found"


def _scope_of(path: str) -> str | None:
    """The scope each tenant route must need (the README's table, written out)."""
    parts = path.split("/")  # "", "v1", family, ...
    family = parts[2]
    if family in ("sessions", "decks") and len(parts) > 4 and parts[4] in RECORDS:
        return "records:read"
    if family == "sessions":
        return "sessions"
    return {
        "decks": "decks",
        "webhooks": "webhooks",
        "tenant": "admin",
        "keys": "admin",
        "audit": "admin",
        "erasures": "admin",
        "usage": "admin",
    }.get(family)


def _fill(path: str) -> str:
    for name in ("session_id", "deck_id", "key_id", "endpoint_id", "delivery_id", "erasure_id"):
        path = path.replace(f"{{{name}}}", str(uuid.uuid4()))
    return path.replace("{number}", "1")


async def test_every_tenant_route_needs_its_scope(
    api: httpx.AsyncClient, tenant: TenantKey
) -> None:
    schema = (await api.get("/openapi.json")).json()
    routes = [
        (method.upper(), path)
        for path, methods in schema["paths"].items()
        if path.startswith("/v1/") and not path.startswith(("/v1/participant/", "/v1/fleet"))
        for method in methods
    ]
    assert len(routes) > 25, routes
    unmapped = [path for _, path in routes if _scope_of(path) is None]
    assert not unmapped, f"tenant routes with no scope decided: {unmapped}"

    lacking: dict[str, str] = {}
    only: dict[str, str] = {}
    for each in ALL_SCOPES:
        others = [s for s in ALL_SCOPES if s != each]
        lacking[each] = (await create_key(api, tenant.api_key, others))["api_key"]
        only[each] = (await create_key(api, tenant.api_key, [each]))["api_key"]

    wrong = []
    for method, path in routes:
        scope = _scope_of(path)
        assert scope is not None
        url = _fill(path)
        # A JSON array is no route's body: a key that may call the route gets a 4xx from the
        # route itself (not found, invalid body), and nothing is created.
        body: list[object] | None = [] if method in ("POST", "PUT") else None
        refused = await api.request(method, url, headers=bearer(lacking[scope]), json=body)
        allowed = await api.request(method, url, headers=bearer(only[scope]), json=body)
        if not (
            refused.status_code == 403
            and refused.json()["error"] == "forbidden"
            and f"'{scope}' scope" in refused.json()["message"]
            and allowed.status_code not in (401, 403)
        ):
            wrong.append((method, path, scope, refused.status_code, allowed.status_code))
    assert not wrong, wrong


async def test_a_key_grants_no_more_than_it_has(api: httpx.AsyncClient, tenant: TenantKey) -> None:
    decks_only = (await create_key(api, tenant.api_key, ["decks"]))["api_key"]
    resp = await api.get("/v1/keys", headers=bearer(decks_only))
    assert resp.status_code == 403
    assert resp.json()["message"].startswith("This API key lacks the 'admin' scope")

    admin_only = (await create_key(api, tenant.api_key, ["admin"]))["api_key"]
    resp = await api.post(
        "/v1/keys", headers=bearer(admin_only), json={"name": "x", "scopes": ["admin", "decks"]}
    )
    assert resp.status_code == 403, resp.text
    assert "lacks decks" in resp.json()["message"]
    assert (await create_key(api, admin_only, ["admin"]))["created_by"] is not None
    # Rotating makes a key with the old one's scopes: the same rule holds.
    decks_key_id = next(
        k["key_id"] for k in (await list_keys(api, admin_only)).values() if k["scopes"] == ["decks"]
    )
    resp = await api.post(f"/v1/keys/{decks_key_id}/rotate", headers=bearer(admin_only))
    assert resp.status_code == 403, resp.text

    for body, field in [
        ({"name": "x", "scopes": []}, "scopes"),
        ({"name": "x", "scopes": ["everything"]}, "scopes.0"),
        ({"name": "   ", "scopes": ["decks"]}, "name"),
        ({"name": "x", "scopes": ["decks"], "secret": "mine"}, "secret"),
    ]:
        resp = await api.post("/v1/keys", headers=tenant.headers, json=body)
        assert resp.status_code == 422, resp.text
        assert any(d["field"] == f"body.{field}" for d in resp.json()["details"]), resp.text


async def test_the_last_admin_key_cannot_be_revoked_through_the_api(
    api: httpx.AsyncClient, tenant: TenantKey
) -> None:
    first_id = next(iter(await list_keys(api, tenant.api_key)))
    resp = await api.delete(f"/v1/keys/{first_id}", headers=tenant.headers)
    assert resp.status_code == 409 and resp.json()["error"] == "last_admin_key", resp.text
    assert await works(api, tenant.api_key)

    second = await create_key(api, tenant.api_key, ["admin"])
    resp = await api.delete(f"/v1/keys/{first_id}", headers=bearer(second["api_key"]))
    assert resp.status_code == 204
    assert not await works(api, tenant.api_key)
    resp = await api.delete(f"/v1/keys/{second['key_id']}", headers=bearer(second["api_key"]))
    assert resp.status_code == 409 and resp.json()["error"] == "last_admin_key"

    # A key on its way out (a rotation's grace period) does not count as one left.
    resp = await api.post(
        f"/v1/keys/{second['key_id']}/rotate",
        headers=bearer(second["api_key"]),
        json={"grace_seconds": 3600},
    )
    assert resp.status_code == 201, resp.text
    third = resp.json()["new_key"]
    resp = await api.delete(f"/v1/keys/{third['key_id']}", headers=bearer(second["api_key"]))
    assert resp.status_code == 409 and resp.json()["error"] == "last_admin_key"


async def test_rotation_keeps_name_and_scopes_and_ends_the_old_key_after_its_grace(
    api: httpx.AsyncClient, tenant: TenantKey
) -> None:
    old = await create_key(api, tenant.api_key, ["admin", "decks"], name="ci")
    resp = await api.post(
        f"/v1/keys/{old['key_id']}/rotate", headers=tenant.headers, json={"grace_seconds": 2}
    )
    assert resp.status_code == 201, resp.text
    new, ended = resp.json()["new_key"], resp.json()["old_key"]
    assert (new["name"], new["scopes"]) == ("ci", ["decks", "admin"])
    assert new["api_key"] != old["api_key"] and new["key_id"] != old["key_id"]
    assert ended["key_id"] == old["key_id"] and "api_key" not in ended
    due = datetime.fromisoformat(ended["revoked_at"]) - datetime.fromisoformat(new["created_at"])
    assert timedelta(seconds=1.5) < due <= timedelta(seconds=2.5), due

    assert await works(api, old["api_key"]) and await works(api, new["api_key"])
    await refused_within(api, old["api_key"], 2 + CACHE_SECONDS + 1)
    assert await works(api, new["api_key"])
    resp = await api.post(f"/v1/keys/{old['key_id']}/rotate", headers=tenant.headers)
    assert resp.status_code == 409 and resp.json()["error"] == "key_revoked", resp.text

    # No grace: the old key is refused at once.
    resp = await api.post(f"/v1/keys/{new['key_id']}/rotate", headers=bearer(new["api_key"]))
    assert resp.status_code == 201, resp.text
    assert not await works(api, new["api_key"])
    assert await works(api, resp.json()["new_key"]["api_key"])


async def test_a_key_revoked_by_the_operator_is_refused_within_seconds(
    api: httpx.AsyncClient, control_plane: EphemeralStack, tenant: TenantKey
) -> None:
    """`podium admin keys` changes Postgres only, as another replica would: the serving
    replica has the key cached and must still stop accepting it within CACHE_SECONDS."""
    out = cli(control_plane, "create", tenant.tenant_id, "--name", "ops", "--scope", "admin",
              "--json")  # fmt: skip
    assert out.returncode == 0, out.stderr
    made = json.loads(out.stdout)
    assert made["scopes"] == ["admin"] and made["created_by"] is None
    assert await works(api, made["api_key"])  # now cached by the control plane

    listed = cli(control_plane, "list", tenant.tenant_id, "--json")
    assert {k["name"] for k in json.loads(listed.stdout)} == {"default", "ops"}
    assert made["api_key"] not in listed.stdout

    out = cli(control_plane, "revoke", tenant.tenant_id, made["key_id"])
    assert out.returncode == 0, out.stderr
    took = await refused_within(api, made["api_key"], CACHE_SECONDS + 1.5)
    print(f"refused {took:.1f} s after the revocation")

    # The operator may revoke the last admin key (a leaked one), and is told so.
    default_id = next(k["key_id"] for k in json.loads(listed.stdout) if k["name"] == "default")
    out = cli(control_plane, "revoke", tenant.tenant_id, default_id)
    assert out.returncode == 0 and "no admin key left" in out.stderr, out.stderr
    out = cli(control_plane, "create", tenant.tenant_id, "--name", "admin", "--json")
    restored = json.loads(out.stdout)
    assert restored["scopes"] == list(ALL_SCOPES) and await works(api, restored["api_key"])

    out = cli(control_plane, "rotate", tenant.tenant_id, restored["key_id"], "--json")
    rotated = json.loads(out.stdout)
    assert await works(api, rotated["new_key"]["api_key"])

    for args, message in [
        (("revoke", str(uuid.uuid4()), default_id), "no tenant"),
        (("revoke", tenant.tenant_id, str(uuid.uuid4())), "was not found"),
        (("create", tenant.tenant_id, "--name", "x", "--scope", "root"), "scopes must be"),
    ]:
        out = cli(control_plane, *args)
        assert out.returncode == 2 and message in out.stderr, (args, out.stderr)


async def test_a_keys_last_use_is_written_at_most_once_a_minute(
    control_plane: EphemeralStack, tenant: TenantKey
) -> None:
    pool = await db.create_pool(control_plane.postgres.url(), min_size=1, max_size=1)

    async def row(key_id: uuid.UUID) -> tuple[str, datetime]:
        found = await pool.fetchrow(
            "SELECT xmin::text AS version, last_used_at FROM api_keys WHERE id = $1", key_id
        )
        assert found is not None
        return found["version"], found["last_used_at"]

    try:
        caller = await authenticate(pool, tenant.api_key)  # no cache: every call looks it up
        assert caller is not None
        version, used = await row(caller.key_id)
        assert used is not None
        for _ in range(5):
            assert await authenticate(pool, tenant.api_key) == caller
        assert await row(caller.key_id) == (version, used), "a lookup rewrote the key's row"

        await pool.execute(
            "UPDATE api_keys SET last_used_at = now() - interval '61 seconds' WHERE id = $1",
            caller.key_id,
        )
        before = time.time()
        await authenticate(pool, tenant.api_key)
        _, used = await row(caller.key_id)
        assert used.timestamp() >= before - 1
    finally:
        await pool.close()


@pytest.mark.parametrize("key", ["pdm_", "pdm_" + "a" * 43, "pdm_" + "x" * 300, "sk_not_ours"])
async def test_malformed_keys_are_refused(api: httpx.AsyncClient, key: str) -> None:
    resp = await api.get("/v1/decks", headers={"Authorization": f"Bearer {key}"})
    assert resp.status_code == 401, resp.text
