"""Session credentials: one key per purpose, rotated through a key ring, bound to one dispatch,
renewed while the session lives and refused for writes once its records closed — against a
control plane of its own (distinct keys per purpose), real Postgres, Redis and livekit-server."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from livekit import api as lk
from livekit import rtc

from agent_worker.control_plane_client import ControlPlaneClient, ControlPlaneError
from control_plane.storage import UrlSigner
from shared.credentials import mint_session_credential
from shared.devstack.stack import EphemeralStack, TenantKey
from shared.fleet import mint_worker_credential
from shared.schemas import DispatchMetadata
from tests.conftest import TEST_LOGS
from tests.integration.test_conversation_api import _agent_left, _signed

SESSION_KEY = "session-key-new-0123456789abcdef0123456789abcdef"
OLD_SESSION_KEY = "session-key-old-0123456789abcdef0123456789abcdef"
ASSET_KEY = "asset-url-key-0123456789abcdef0123456789abcdef"
FLEET_KEY = "fleet-key-0123456789abcdef0123456789abcdef"
GRACE_S = 2
KEYS = {
    "PODIUM_SESSION_CREDENTIAL_KEYS": f"{SESSION_KEY},{OLD_SESSION_KEY}",
    "PODIUM_ASSET_URL_KEYS": ASSET_KEY,
    "PODIUM_FLEET_KEYS": FLEET_KEY,
    "PODIUM_RECORDS_GRACE_SECONDS": str(GRACE_S),
    "PODIUM_ADMISSION_ENABLED": "false",
}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EphemeralStack]:
    logs = Path(TEST_LOGS) / "worker-credentials" if TEST_LOGS else None
    with EphemeralStack(tmp_path_factory.mktemp("credentials"), logs=logs) as running:
        running.start_control_plane(**KEYS)
        yield running


@pytest.fixture
async def api(stack: EphemeralStack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=stack.api_url, timeout=10) as client:
        yield client


@pytest.fixture
def tenant(stack: EphemeralStack) -> TenantKey:
    return stack.create_tenant()


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _messages(item_id: str) -> dict[str, Any]:
    return {"messages": [{"item_id": item_id, "role": "user", "text": "Hi"}]}


async def _dispatched(stack: EphemeralStack, room: str) -> list[str]:
    """The credentials of the room's presenter dispatches, oldest first."""
    lkapi = lk.LiveKitAPI(
        stack.livekit.url.replace("ws://", "http://"),
        stack.livekit.api_key,
        stack.livekit.api_secret,
    )
    try:
        found = await lkapi.agent_dispatch.list_dispatch(room)
    finally:
        await lkapi.aclose()
    return [DispatchMetadata.model_validate_json(d.metadata).credential for d in found]


async def _session(api: httpx.AsyncClient, tenant: TenantKey) -> dict[str, Any]:
    resp = await api.post("/v1/sessions", headers=tenant.headers, json={})
    assert resp.status_code == 201, resp.text
    session: dict[str, Any] = resp.json()
    return session


async def test_a_credential_signed_with_another_purposes_key_is_refused(
    api: httpx.AsyncClient, tenant: TenantKey, stack: EphemeralStack
) -> None:
    session = await _session(api, tenant)
    sid = uuid.UUID(session["session_id"])
    context = f"/internal/v1/sessions/{sid}/context"
    good = mint_session_credential(SESSION_KEY, sid, 1, 60)
    assert (await api.get(context, headers=_bearer(good))).status_code == 200
    for key in (ASSET_KEY, FLEET_KEY):
        forged = mint_session_credential(key, sid, 1, 60)
        assert (await api.get(context, headers=_bearer(forged))).status_code == 401
    # ... and the other way round: a worker's fleet route takes only fleet-key credentials
    heartbeat = {
        "worker": "w-1",
        "agent_name": "podium-presenter",
        "max_sessions": 4,
        "active_jobs": 0,
        "idle_processes": 1,
        "load": 0,
        "draining": False,
    }
    fleet = "/internal/v1/fleet/workers/w-1"
    for key in (SESSION_KEY, ASSET_KEY):
        resp = await api.put(
            fleet, json=heartbeat, headers=_bearer(mint_worker_credential(key, "w-1"))
        )
        assert resp.status_code == 401
    resp = await api.put(
        fleet, json=heartbeat, headers=_bearer(mint_worker_credential(FLEET_KEY, "w-1"))
    )
    assert resp.status_code == 204, resp.text
    # the session credential a job gets in its dispatch is signed with the session key
    (dispatched,) = await _dispatched(stack, session["room"])
    assert (await api.get(context, headers=_bearer(dispatched))).status_code == 200


async def test_a_key_verifies_while_it_is_in_the_ring_and_not_after(
    api: httpx.AsyncClient, tenant: TenantKey, stack: EphemeralStack
) -> None:
    session = await _session(api, tenant)
    sid = uuid.UUID(session["session_id"])
    context = f"/internal/v1/sessions/{sid}/context"
    old = mint_session_credential(OLD_SESSION_KEY, sid, 1, 600)
    assert (await api.get(context, headers=_bearer(old))).status_code == 200
    # renewing gives a credential signed by the ring's first key
    renewed = await api.post(f"/internal/v1/sessions/{sid}/credential", headers=_bearer(old))
    assert renewed.status_code == 200, renewed.text
    fresh = renewed.json()["credential"]
    # the old key leaves the ring
    stack._api_overrides = {**KEYS, "PODIUM_SESSION_CREDENTIAL_KEYS": SESSION_KEY}
    stack.restart_control_plane(hard=False)
    try:
        assert (await api.get(context, headers=_bearer(old))).status_code == 401
        assert (await api.get(context, headers=_bearer(fresh))).status_code == 200
    finally:
        stack._api_overrides = KEYS
        stack.restart_control_plane(hard=False)


async def test_a_redispatch_supersedes_the_previous_jobs_credential(
    api: httpx.AsyncClient, tenant: TenantKey, stack: EphemeralStack
) -> None:
    session = await _session(api, tenant)
    sid, room = session["session_id"], session["room"]
    base = f"/internal/v1/sessions/{sid}"
    (first,) = await _dispatched(stack, room)
    assert (await api.post(f"{base}/agent-joined", headers=_bearer(first))).status_code == 204
    renewed = (await api.post(f"{base}/credential", headers=_bearer(first))).json()["credential"]

    ada = rtc.Room()  # someone is still in the room, so the lost presenter is sent again
    await ada.connect(stack.livekit.url, session["token"])
    try:
        body, headers = _signed(stack, _agent_left(room, f"PA_{uuid.uuid4().hex[:8]}"))
        resp = await api.post("/livekit/webhook", content=body, headers=headers)
        assert resp.status_code == 204
        dispatched = await _dispatched(stack, room)
        assert len(dispatched) == 2
    finally:
        await ada.disconnect()
    second = dispatched[-1]
    for old in (first, renewed):
        resp = await api.post(f"{base}/messages", headers=_bearer(old), json=_messages("m1"))
        assert (resp.status_code, resp.json()["error"]) == (409, "superseded")
        resp = await api.get(f"{base}/context", headers=_bearer(old))
        assert (resp.status_code, resp.json()["error"]) == (409, "superseded")
        resp = await api.post(f"{base}/credential", headers=_bearer(old))
        assert (resp.status_code, resp.json()["error"]) == (409, "superseded")
    resp = await api.post(f"{base}/messages", headers=_bearer(second), json=_messages("m1"))
    assert resp.status_code == 204, resp.text


async def test_an_ended_sessions_writes_close_with_its_records(
    api: httpx.AsyncClient, tenant: TenantKey, stack: EphemeralStack
) -> None:
    # the job reports its records complete: writes close at once
    session = await _session(api, tenant)
    sid = session["session_id"]
    base = f"/internal/v1/sessions/{sid}"
    (job,) = await _dispatched(stack, session["room"])
    worker = _bearer(job)
    end = await api.post(f"/v1/sessions/{sid}/end", headers=tenant.headers)
    assert end.status_code == 200, end.text
    # the job flushes its last records as the room closes
    assert (
        await api.post(f"{base}/messages", headers=worker, json=_messages("a"))
    ).status_code == 204
    resp = await api.post(f"{base}/credential", headers=worker)
    assert (resp.status_code, resp.json()["error"]) == (409, "session_ended")
    assert (await api.post(f"{base}/records-complete", headers=worker)).status_code == 204
    for path, body in (
        ("messages", _messages("b")),
        ("turns", {"turns": []}),
        ("alive", {"job_id": "AJ_1"}),
    ):
        resp = await api.post(f"{base}/{path}", headers=worker, json=body)
        assert (resp.status_code, resp.json()["error"]) == (409, "session_ended"), path
    # what the job reads stays readable while its credential lasts
    context = await api.get(f"{base}/context", headers=worker)
    assert (context.status_code, context.json()["status"]) == (200, "ended")

    # a job that never reports: writes close once the grace after the end passed
    session = await _session(api, tenant)
    sid = session["session_id"]
    base = f"/internal/v1/sessions/{sid}"
    (job,) = await _dispatched(stack, session["room"])
    worker = _bearer(job)
    assert (await api.post(f"/v1/sessions/{sid}/end", headers=tenant.headers)).status_code == 200
    assert (
        await api.post(f"{base}/messages", headers=worker, json=_messages("a"))
    ).status_code == 204
    await asyncio.sleep(GRACE_S + 0.5)
    resp = await api.post(f"{base}/messages", headers=worker, json=_messages("b"))
    assert (resp.status_code, resp.json()["error"]) == (409, "session_ended")


async def test_asset_urls_verify_only_with_the_asset_key(api: httpx.AsyncClient) -> None:
    """A link signed with the session or fleet key (what a worker holds) is refused; with the
    asset key it passes the signature check (and finds no file)."""
    key = f"decks/{uuid.uuid4()}/slide-001.jpg"
    expected = {ASSET_KEY: 404, SESSION_KEY: 403, FLEET_KEY: 403}
    for signing, status in expected.items():
        url = UrlSigner(signing, "http://unused").url(key)
        resp = await api.get(url.removeprefix("http://unused"))
        assert resp.status_code == status, (signing[:9], resp.text)


async def test_the_worker_renews_its_credential_before_it_expires(
    api: httpx.AsyncClient, tenant: TenantKey, stack: EphemeralStack
) -> None:
    """The job keeps passing the credential of its dispatch metadata; past half its life the
    client swaps in a renewed one, so the job outlives the credential it was given."""
    session = await _session(api, tenant)
    sid = uuid.UUID(session["session_id"])
    # 4 s from a whole-second iat: it expires 3 to 4 s from now, is half-spent within 2 s
    given = mint_session_credential(SESSION_KEY, sid, 1, ttl_seconds=4)
    async with ControlPlaneClient(stack.api_url, timeout_seconds=5) as client:
        assert (await client.get_session_context(sid, given)).session_id == sid
        await asyncio.sleep(2.5)  # past half its life: the next request renews it first
        assert (await client.get_session_context(sid, given)).session_id == sid
        await asyncio.sleep(2)  # the given credential has expired
        assert (await client.get_session_context(sid, given)).session_id == sid
    async with ControlPlaneClient(stack.api_url, timeout_seconds=5) as fresh:
        with pytest.raises(ControlPlaneError) as refused:
            await fresh.get_session_context(sid, given)  # expired past its half-life: no renewal
        assert refused.value.status_code == 401
