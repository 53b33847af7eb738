"""Postgres restarts under a running control plane: while it is away, calls that need it are
answered a retryable 503 (never a 500), the replica stays alive, and once it is back the same
process serves again with nothing acknowledged lost (the pool replaces its dead connections).

The module runs its own stack, so stopping its Postgres disturbs no other test.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis

from shared.devstack.stack import EphemeralStack
from tests.conftest import TEST_LOGS
from tests.e2e.conftest import upload_ready
from tests.factories import make_pdf


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EphemeralStack]:
    logs = Path(TEST_LOGS) / "postgres-restart" if TEST_LOGS else None
    with EphemeralStack(tmp_path_factory.mktemp("postgres-restart"), logs=logs) as running:
        running.start_control_plane(PODIUM_ADMISSION_ENABLED="false")
        yield running


@pytest.fixture
async def api(stack: EphemeralStack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=stack.api_url, timeout=15) as client:
        yield client


async def test_a_postgres_restart_answers_503_meanwhile_and_loses_nothing(
    stack: EphemeralStack, api: httpx.AsyncClient
) -> None:
    owner = stack.create_tenant("pg-restart")
    deck_id = await upload_ready(api, owner, "restart.pdf", make_pdf([["One"], ["Two"], ["Three"]]))
    created = await api.post("/v1/sessions", headers=owner.headers, json={"deck_id": deck_id})
    assert created.status_code == 201, created.text
    sid = created.json()["session_id"]
    slide = f"/v1/sessions/{sid}/slide"
    moved = await api.post(
        slide, headers={**owner.headers, "Idempotency-Key": "before"}, json={"action": "next"}
    )
    assert moved.status_code == 200, moved.text
    acknowledged = moved.json()["version"]

    await asyncio.to_thread(stack.postgres.stop)
    try:
        # (the current slide itself may still be read from its Redis copy)
        for path in (f"/v1/sessions/{sid}", "/v1/sessions", f"/v1/sessions/{sid}/transitions"):
            down = await api.get(path, headers=owner.headers)
            assert down.status_code == 503, (path, down.status_code, down.text)
            assert down.json()["error"] == "upstream_unavailable"
            assert "Retry-After" in down.headers
        change = await api.post(
            slide, headers={**owner.headers, "Idempotency-Key": "during"}, json={"action": "next"}
        )
        assert change.status_code == 503, change.text
        assert (await api.get("/healthz")).status_code == 200  # alive: no restart needed
    finally:
        await asyncio.to_thread(stack.postgres.start)

    # Back: the same process serves again within seconds (its pooled connections were dead).
    deadline = time.monotonic() + 15
    while (state := await api.get(f"/v1/sessions/{sid}", headers=owner.headers)).status_code != 200:
        assert state.status_code == 503, state.text
        assert time.monotonic() < deadline, "the control plane did not serve again in 15 s"
        await asyncio.sleep(0.2)
    assert state.json()["status"] == "created"
    current = await api.get(slide, headers=owner.headers)
    assert current.json()["version"] == acknowledged
    retried = await api.post(
        slide, headers={**owner.headers, "Idempotency-Key": "during"}, json={"action": "next"}
    )
    assert retried.status_code == 200, retried.text
    assert retried.json()["version"] == acknowledged + 1
    listed = await api.get(f"/v1/sessions/{sid}/transitions", headers=owner.headers)
    versions = [t["version"] for t in listed.json()["items"]]
    assert acknowledged in versions and acknowledged + 1 in versions


async def test_the_presenting_job_keeps_its_session_while_postgres_is_away(
    stack: EphemeralStack, api: httpx.AsyncClient
) -> None:
    """A job's liveness report checks its dispatch in Postgres. While Postgres is away the job
    that already presents the session goes on reporting, so once Postgres is back the watchdog
    does not take it for lost and replace it; another job claiming the session meanwhile is
    told to retry, and after the restart it is superseded as before."""
    owner = stack.create_tenant("pg-restart-alive")
    created = await api.post("/v1/sessions", headers=owner.headers, json={})
    assert created.status_code == 201, created.text
    sid = created.json()["session_id"]
    job = {"Authorization": f"Bearer {await stack.worker_credential(created.json()['room'])}"}
    alive = f"/internal/v1/sessions/{sid}/alive"
    redis = Redis.from_url(stack.redis.url())
    try:
        assert (await api.post(alive, headers=job, json={"job_id": "AJ_one"})).status_code == 204
        before = await redis.zscore("podium:session-deadlines", sid)
        assert before is not None

        await asyncio.to_thread(stack.postgres.stop)
        try:
            kept = await api.post(alive, headers=job, json={"job_id": "AJ_one"})
            assert kept.status_code == 204, kept.text
            after = await redis.zscore("podium:session-deadlines", sid)
            assert after is not None and after > before  # the deadline moved on
            rival = await api.post(alive, headers=job, json={"job_id": "AJ_two"})
            assert rival.status_code == 503, rival.text
            assert rival.json()["error"] == "upstream_unavailable"
            assert "Retry-After" in rival.headers
        finally:
            await asyncio.to_thread(stack.postgres.start)

        deadline = time.monotonic() + 15
        while (
            back := await api.post(alive, headers=job, json={"job_id": "AJ_two"})
        ).status_code == 503:
            assert time.monotonic() < deadline, "the control plane did not serve again in 15 s"
            await asyncio.sleep(0.2)
        assert back.status_code == 409, back.text  # AJ_one still presents it
        again = await api.post(alive, headers=job, json={"job_id": "AJ_one"})
        assert again.status_code == 204, again.text
    finally:
        await redis.aclose()
