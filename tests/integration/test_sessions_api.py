"""The sessions API against real Postgres, Redis and livekit-server."""

from __future__ import annotations

import uuid

import httpx
import pytest
from livekit import api as lk

from shared.devstack.stack import EphemeralStack, TenantKey
from shared.schemas import DispatchMetadata
from shared.settings import DEV_LIVEKIT_KEY, DEV_LIVEKIT_SECRET


def _claims(token: str) -> lk.Claims:
    return lk.TokenVerifier(DEV_LIVEKIT_KEY, DEV_LIVEKIT_SECRET).verify(token)


async def _livekit(stack: EphemeralStack) -> lk.LiveKitAPI:
    return lk.LiveKitAPI(
        stack.livekit.url.replace("ws://", "http://"), DEV_LIVEKIT_KEY, DEV_LIVEKIT_SECRET
    )


async def test_probes_report_postgres_and_redis(api: httpx.AsyncClient) -> None:
    assert (await api.get("/healthz")).json() == {"status": "ok"}
    ready = await api.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"postgres": "ok", "redis": "ok"}


async def test_create_session_makes_room_dispatch_and_token(
    api: httpx.AsyncClient, tenant: TenantKey, stack: EphemeralStack
) -> None:
    resp = await api.post(
        "/v1/sessions",
        headers=tenant.headers,
        json={"participant": {"name": "Ada", "identity": "ada"}, "metadata": {"crm": "42"}},
    )
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert set(body) >= {"session_id", "room", "livekit_url", "token", "expires_at"}
    assert body["livekit_url"] == stack.livekit.url

    claims = _claims(body["token"])
    assert claims.identity == "ada"
    assert claims.name == "Ada"
    assert claims.video is not None
    assert claims.video.room == body["room"]
    assert claims.video.can_publish is True

    lkapi = await _livekit(stack)
    try:
        rooms = await lkapi.room.list_rooms(lk.ListRoomsRequest(names=[body["room"]]))
        assert [r.name for r in rooms.rooms] == [body["room"]]
        dispatches = await lkapi.agent_dispatch.list_dispatch(body["room"])
        assert [d.agent_name for d in dispatches] == ["podium-presenter"]
        meta = DispatchMetadata.model_validate_json(dispatches[0].metadata)
        assert str(meta.session_id) == body["session_id"]
    finally:
        await lkapi.aclose()

    got = await api.get(f"/v1/sessions/{body['session_id']}", headers=tenant.headers)
    assert got.status_code == 200
    assert got.json()["status"] == "created"
    assert got.json()["metadata"] == {"crm": "42"}


async def test_viewer_token_cannot_publish(api: httpx.AsyncClient, tenant: TenantKey) -> None:
    session = (await api.post("/v1/sessions", headers=tenant.headers, json={})).json()
    resp = await api.post(
        f"/v1/sessions/{session['session_id']}/tokens",
        headers=tenant.headers,
        json={"role": "viewer", "name": "Grace", "ttl_seconds": 600},
    )
    assert resp.status_code == 201, resp.text
    claims = _claims(resp.json()["token"])
    assert claims.video is not None
    assert claims.video.can_publish is False
    assert claims.video.can_subscribe is True
    assert resp.json()["role"] == "viewer"


async def test_end_session_closes_room_and_refuses_new_tokens(
    api: httpx.AsyncClient, tenant: TenantKey, stack: EphemeralStack
) -> None:
    session = (await api.post("/v1/sessions", headers=tenant.headers, json={})).json()
    sid = session["session_id"]
    ended = await api.post(f"/v1/sessions/{sid}/end", headers=tenant.headers)
    assert ended.status_code == 200
    assert ended.json()["status"] == "ended"
    assert ended.json()["end_reason"] == "ended_by_api"

    lkapi = await _livekit(stack)
    try:
        rooms = await lkapi.room.list_rooms(lk.ListRoomsRequest(names=[session["room"]]))
        assert rooms.rooms == []
    finally:
        await lkapi.aclose()

    again = await api.post(f"/v1/sessions/{sid}/end", headers=tenant.headers)
    assert again.status_code == 200
    assert again.json()["ended_at"] == ended.json()["ended_at"]

    token = await api.post(f"/v1/sessions/{sid}/tokens", headers=tenant.headers, json={})
    assert token.status_code == 409
    assert token.json()["error"] == "session_ended"


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({}, "Missing API key"),
        ({"Authorization": "Bearer pdm_not-a-real-key"}, "not valid"),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, "Missing API key"),
    ],
)
async def test_requests_without_a_valid_key_are_401(
    api: httpx.AsyncClient, headers: dict[str, str], message: str
) -> None:
    resp = await api.post("/v1/sessions", headers=headers, json={})
    assert resp.status_code == 401
    assert resp.json()["error"] == "unauthorized"
    assert message in resp.json()["message"]
    assert resp.headers["www-authenticate"] == "Bearer"


async def test_other_tenants_sessions_answer_404(
    api: httpx.AsyncClient, tenant: TenantKey, control_plane: EphemeralStack
) -> None:
    other = control_plane.create_tenant("globex")
    session = (await api.post("/v1/sessions", headers=tenant.headers, json={})).json()
    sid = session["session_id"]
    for method, path, body in [
        ("GET", f"/v1/sessions/{sid}", None),
        ("POST", f"/v1/sessions/{sid}/tokens", {}),
        ("POST", f"/v1/sessions/{sid}/end", None),
    ]:
        resp = await api.request(method, path, headers=other.headers, json=body)
        assert resp.status_code == 404, (method, path)
        assert resp.json()["error"] == "not_found"
    # ...and the other tenant's attempt to end it changed nothing.
    mine = await api.get(f"/v1/sessions/{sid}", headers=tenant.headers)
    assert mine.json()["status"] == "created"


async def test_unknown_session_is_404(api: httpx.AsyncClient, tenant: TenantKey) -> None:
    resp = await api.get(f"/v1/sessions/{uuid.uuid4()}", headers=tenant.headers)
    assert resp.status_code == 404
    assert "was not found" in resp.json()["message"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"participant": {"role": "admin"}}, "participant.role"),
        ({"participant": {"ttl_seconds": 5}}, "participant.ttl_seconds"),
        ({"participant": {"identity": "has spaces"}}, "participant.identity"),
        ({"deck": "typo"}, "deck"),
        ({"metadata": "not-an-object"}, "metadata"),
        ([1, 2, 3], "body"),
    ],
)
async def test_malformed_bodies_are_422_with_the_field_named(
    api: httpx.AsyncClient, tenant: TenantKey, body: object, field: str
) -> None:
    resp = await api.post("/v1/sessions", headers=tenant.headers, json=body)
    assert resp.status_code == 422
    payload = resp.json()
    assert payload["error"] == "validation_error"
    assert field in payload["message"]


async def test_non_json_body_and_bad_ids_are_422(api: httpx.AsyncClient, tenant: TenantKey) -> None:
    resp = await api.post(
        "/v1/sessions",
        headers={**tenant.headers, "Content-Type": "application/json"},
        content=b"{not json",
    )
    assert resp.status_code == 422
    assert resp.json()["error"] == "validation_error"
    bad_id = await api.get("/v1/sessions/not-a-uuid", headers=tenant.headers)
    assert bad_id.status_code == 422
    assert "session_id" in bad_id.json()["message"]


async def test_unknown_deck_is_404(api: httpx.AsyncClient, tenant: TenantKey) -> None:
    resp = await api.post(
        "/v1/sessions", headers=tenant.headers, json={"deck_id": str(uuid.uuid4())}
    )
    assert resp.status_code == 404
    assert "Deck" in resp.json()["message"]


async def test_worker_credential_is_scoped_to_its_session(
    api: httpx.AsyncClient, tenant: TenantKey, stack: EphemeralStack
) -> None:
    first = (await api.post("/v1/sessions", headers=tenant.headers, json={})).json()
    second = (await api.post("/v1/sessions", headers=tenant.headers, json={})).json()
    credential = await stack.worker_credential(first["room"])
    auth = {"Authorization": f"Bearer {credential}"}

    ok = await api.get(f"/internal/v1/sessions/{first['session_id']}/context", headers=auth)
    assert ok.status_code == 200
    assert ok.json()["room"] == first["room"]
    assert "Podium" in ok.json()["greeting"]

    other = await api.get(f"/internal/v1/sessions/{second['session_id']}/context", headers=auth)
    assert other.status_code == 404
    api_key_used = await api.get(
        f"/internal/v1/sessions/{first['session_id']}/context", headers=tenant.headers
    )
    assert api_key_used.status_code == 401


@pytest.mark.parametrize(
    "body",
    [
        {"participant": {"name": "a\x00b"}},
        {"metadata": {"note": "a\x00b"}},
        {"metadata": {"blob": "x" * 20_000}},
    ],
    ids=["nul-name", "nul-metadata", "huge-metadata"],
)
async def test_unstorable_values_are_422(
    api: httpx.AsyncClient, tenant: TenantKey, body: dict[str, object]
) -> None:
    resp = await api.post("/v1/sessions", headers=tenant.headers, json=body)
    assert resp.status_code == 422, resp.text
    assert resp.json()["error"] == "validation_error"
