"""A tenant's avatar style: stored through /v1/tenant/avatar and handed to its sessions' worker
jobs in the session context — against real Postgres, Redis and livekit-server."""

from __future__ import annotations

from typing import Any

import asyncpg
import httpx
import pytest

from shared.devstack.stack import EphemeralStack, TenantKey
from shared.schemas import AvatarStyle

DEFAULTS = AvatarStyle().model_dump(mode="json")
CHOSEN = {
    "enabled": True,
    "skin": "#8D5524",
    "hair": "#D6C4A8",
    "hair_style": "short",
    "eyes": "#2A6041",
    "jacket": "#6B1E2B",
    "shirt": "#FFFFFF",
    "background": "#101820",
    "accent": "#FF6F00",
    "glasses": True,
}


async def _avatar(api: httpx.AsyncClient, tenant: TenantKey) -> dict[str, Any]:
    resp = await api.get("/v1/tenant/avatar", headers=tenant.headers)
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


async def test_an_unset_style_reads_as_the_defaults(
    api: httpx.AsyncClient, tenant: TenantKey
) -> None:
    assert await _avatar(api, tenant) == DEFAULTS


async def test_a_stored_style_round_trips_and_omitted_fields_take_defaults(
    api: httpx.AsyncClient, tenant: TenantKey
) -> None:
    resp = await api.put("/v1/tenant/avatar", headers=tenant.headers, json=CHOSEN)
    assert resp.status_code == 200, resp.text
    assert resp.json() == CHOSEN
    assert await _avatar(api, tenant) == CHOSEN

    # PUT replaces the whole style: what is left out goes back to its default.
    resp = await api.put("/v1/tenant/avatar", headers=tenant.headers, json={"enabled": False})
    assert resp.status_code == 200, resp.text
    assert await _avatar(api, tenant) == {**DEFAULTS, "enabled": False}


@pytest.mark.parametrize(
    ("change", "field", "problem"),
    [
        ({"skin": "red"}, "skin", "pattern"),
        ({"accent": "#12345"}, "accent", "pattern"),
        ({"hair_style": "mohawk"}, "hair_style", "'short', 'bob', 'long' or 'none'"),
        ({"colour": "#000000"}, "colour", "Extra inputs are not permitted"),
        ({"glasses": "sometimes"}, "glasses", "valid boolean"),
        ({"jacket": 1973541}, "jacket", "valid string"),
    ],
)
async def test_an_invalid_style_is_a_422_naming_the_field_and_stores_nothing(
    api: httpx.AsyncClient,
    tenant: TenantKey,
    change: dict[str, Any],
    field: str,
    problem: str,
) -> None:
    await api.put("/v1/tenant/avatar", headers=tenant.headers, json=CHOSEN)

    resp = await api.put("/v1/tenant/avatar", headers=tenant.headers, json={**CHOSEN, **change})
    assert resp.status_code == 422, resp.text
    body = resp.json()
    assert body["error"] == "validation_error"
    assert f"{field}: " in body["message"] and problem in body["message"]
    assert [d["field"] for d in body["details"]] == [f"body.{field}"]
    assert await _avatar(api, tenant) == CHOSEN


async def test_a_body_that_is_not_a_style_object_is_a_422(
    api: httpx.AsyncClient, tenant: TenantKey
) -> None:
    for body in ([CHOSEN], "bob", None):
        resp = await api.put("/v1/tenant/avatar", headers=tenant.headers, json=body)
        assert resp.status_code == 422, resp.text
    assert await _avatar(api, tenant) == DEFAULTS


async def test_the_routes_need_the_tenants_api_key(api: httpx.AsyncClient) -> None:
    assert (await api.get("/v1/tenant/avatar")).status_code == 401
    resp = await api.put(
        "/v1/tenant/avatar", headers={"Authorization": "Bearer pdm_nope"}, json=CHOSEN
    )
    assert resp.status_code == 401


async def test_each_tenant_has_its_own_style(
    api: httpx.AsyncClient, control_plane: EphemeralStack
) -> None:
    first, second = control_plane.create_tenant("first"), control_plane.create_tenant("second")
    await api.put("/v1/tenant/avatar", headers=first.headers, json=CHOSEN)
    other = {**CHOSEN, "hair_style": "long", "glasses": False}
    await api.put("/v1/tenant/avatar", headers=second.headers, json=other)

    assert await _avatar(api, first) == CHOSEN
    assert await _avatar(api, second) == other


async def test_a_stored_style_the_schema_no_longer_accepts_reads_as_the_defaults(
    api: httpx.AsyncClient, tenant: TenantKey, stack: EphemeralStack
) -> None:
    conn = await asyncpg.connect(stack.postgres.url())
    try:
        await conn.execute(
            """UPDATE tenants SET avatar = '{"skin": "#8D5524", "hat": "fedora"}' WHERE id = $1""",
            tenant.tenant_id,
        )
    finally:
        await conn.close()
    assert await _avatar(api, tenant) == DEFAULTS


async def test_the_worker_job_loads_its_tenants_style_and_a_resumed_job_the_current_one(
    api: httpx.AsyncClient, tenant: TenantKey, control_plane: EphemeralStack
) -> None:
    other = control_plane.create_tenant("other")
    await api.put("/v1/tenant/avatar", headers=other.headers, json={**CHOSEN, "hair_style": "none"})
    await api.put("/v1/tenant/avatar", headers=tenant.headers, json=CHOSEN)
    session = (await api.post("/v1/sessions", headers=tenant.headers, json={})).json()
    credential = await control_plane.worker_credential(session["room"])
    worker = {"Authorization": f"Bearer {credential}"}
    base = f"/internal/v1/sessions/{session['session_id']}"

    first = (await api.get(f"{base}/context", headers=worker)).json()
    assert (first["resumed"], first["avatar"]) == (False, CHOSEN)

    # The tenant restyles mid-session, then the worker is lost: the next job reads the new look.
    assert (await api.post(f"{base}/agent-joined", headers=worker)).status_code == 204
    restyled = {**CHOSEN, "enabled": False}
    await api.put("/v1/tenant/avatar", headers=tenant.headers, json=restyled)
    resumed = (await api.get(f"{base}/context", headers=worker)).json()
    assert (resumed["resumed"], resumed["avatar"]) == (True, restyled)

    await api.post(f"/v1/sessions/{session['session_id']}/end", headers=tenant.headers)


async def test_a_session_of_a_tenant_without_a_style_carries_the_defaults(
    api: httpx.AsyncClient, tenant: TenantKey, control_plane: EphemeralStack
) -> None:
    session = (await api.post("/v1/sessions", headers=tenant.headers, json={})).json()
    credential = await control_plane.worker_credential(session["room"])
    resp = await api.get(
        f"/internal/v1/sessions/{session['session_id']}/context",
        headers={"Authorization": f"Bearer {credential}"},
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["avatar"] == DEFAULTS
    await api.post(f"/v1/sessions/{session['session_id']}/end", headers=tenant.headers)
