"""Redis is a cache and a shared counter here, never the truth: flushed mid-session, then
stopped, then back empty, the API keeps serving from Postgres and loses nothing it acknowledged.

The module runs its own stack, so stopping its Redis disturbs no other test.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from shared.devstack.stack import EphemeralStack, TenantKey
from shared.fleet import mint_worker_credential
from shared.settings import DEV_INTERNAL_SECRET, DEV_OPS_TOKEN
from tests.conftest import TEST_LOGS
from tests.e2e.conftest import upload_ready
from tests.factories import make_pdf

OPS = {"Authorization": f"Bearer {DEV_OPS_TOKEN}"}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EphemeralStack]:
    logs = Path(TEST_LOGS) / "redis-outage" if TEST_LOGS else None
    with EphemeralStack(tmp_path_factory.mktemp("redis-outage"), logs=logs) as running:
        # no worker here: sessions only need their rows and rooms
        running.start_control_plane(PODIUM_ADMISSION_ENABLED="false")
        yield running


@pytest.fixture
async def api(stack: EphemeralStack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=stack.api_url, timeout=15) as client:
        yield client


async def _slide(api: httpx.AsyncClient, owner: TenantKey, sid: str) -> dict[str, Any]:
    resp = await api.get(f"/v1/sessions/{sid}/slide", headers=owner.headers)
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


async def _next(api: httpx.AsyncClient, owner: TenantKey, sid: str) -> dict[str, Any]:
    resp = await api.post(
        f"/v1/sessions/{sid}/slide",
        headers={**owner.headers, "Idempotency-Key": uuid.uuid4().hex},
        json={"action": "next"},
    )
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


def _heartbeat(name: str, rooms: list[str]) -> dict[str, Any]:
    return {
        "worker": name,
        "agent_name": "podium-presenter",
        "max_sessions": 4,
        "active_jobs": len(rooms),
        "idle_processes": 1,
        "load": len(rooms) / 4,
        "draining": False,
        "rooms": rooms,
    }


async def test_redis_flushed_then_down_then_back_empty_loses_nothing(
    stack: EphemeralStack, api: httpx.AsyncClient
) -> None:
    owner = stack.create_tenant("redis-outage")
    pages = [[f"Slide {i}", f"Point {i}"] for i in range(1, 9)]
    deck_id = await upload_ready(api, owner, "outage.pdf", make_pdf(pages))
    created = await api.post("/v1/sessions", headers=owner.headers, json={"deck_id": deck_id})
    assert created.status_code == 201, created.text
    session = created.json()
    sid = session["session_id"]
    job = {"Authorization": f"Bearer {await stack.worker_credential(session['room'])}"}
    worker = {"Authorization": f"Bearer {mint_worker_credential(DEV_INTERNAL_SECRET, 'w-1')}"}
    beat = await api.put(
        "/internal/v1/fleet/workers/w-1", headers=worker, json=_heartbeat("w-1", [session["room"]])
    )
    assert beat.status_code == 204, beat.text
    alive = await api.post(
        f"/internal/v1/sessions/{sid}/alive", headers=job, json={"job_id": "AJ_one"}
    )
    assert alive.status_code == 204, alive.text
    await _next(api, owner, sid)
    assert (await _slide(api, owner, sid))["index"] == 2

    # 1. Flushed mid-session: slide state comes back from Postgres, the rest is rebuilt by the
    #    next report of each kind.
    redis = Redis.from_url(stack.redis.url())
    await redis.flushall()
    assert (await _slide(api, owner, sid))["index"] == 2
    assert (await _next(api, owner, sid))["index"] == 3
    assert (await api.get("/v1/fleet", headers=OPS)).json()["ready_workers"] == 0
    await api.put(
        "/internal/v1/fleet/workers/w-1", headers=worker, json=_heartbeat("w-1", [session["room"]])
    )
    assert (await api.get("/v1/fleet", headers=OPS)).json()["ready_workers"] == 1
    # the job that presented keeps its session; another job claiming it now is refused
    again = await api.post(
        f"/internal/v1/sessions/{sid}/alive", headers=job, json={"job_id": "AJ_one"}
    )
    assert again.status_code == 204, again.text
    rival = await api.post(
        f"/internal/v1/sessions/{sid}/alive", headers=job, json={"job_id": "AJ_two"}
    )
    assert rival.status_code == 409, rival.text
    assert await redis.zscore("podium:session-deadlines", sid) is not None
    await redis.aclose()

    # 2. Down: the replica stays in service and every Postgres-backed route keeps working.
    stack.redis.stop()
    try:
        ready = await api.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["status"] == "degraded"
        assert ready.json()["checks"]["postgres"] == "ok"
        acknowledged = [(await _next(api, owner, sid))["version"] for _ in range(3)]
        assert (await _slide(api, owner, sid))["index"] == 6
        search = await api.get(
            f"/v1/decks/{deck_id}/search", headers=owner.headers, params={"q": "point 4"}
        )
        assert search.status_code == 200, search.text
        other = await api.post("/v1/sessions", headers=owner.headers, json={"deck_id": deck_id})
        assert other.status_code == 201, other.text
        transcript = await api.get(f"/v1/sessions/{sid}/transcript", headers=owner.headers)
        assert transcript.status_code == 200, transcript.text
        # what needs Redis says so, retryably, instead of failing with a 500
        fleet = await api.get("/v1/fleet", headers=OPS)
        assert fleet.status_code == 503, fleet.text
        assert fleet.json()["error"] == "upstream_unavailable"
        assert "Retry-After" in fleet.headers
        report = await api.post(
            f"/internal/v1/sessions/{sid}/alive", headers=job, json={"job_id": "AJ_one"}
        )
        assert report.status_code == 503, report.text
    finally:
        stack.redis.start()

    # 3. Back, empty: nothing acknowledged during the outage is lost.
    ready = await api.get("/readyz")
    assert ready.json()["status"] == "ready"
    state = await _slide(api, owner, sid)
    assert (state["index"], state["version"]) == (6, acknowledged[-1])
    transitions = await api.get(
        f"/v1/sessions/{sid}/transitions", headers=owner.headers, params={"limit": 100}
    )
    versions = [t["version"] for t in transitions.json()["items"]]
    assert set(acknowledged) <= set(versions)
    assert (await _next(api, owner, sid))["index"] == 7
