"""The fleet view against the real control plane, Postgres and Redis: worker heartbeats in,
``GET /v1/fleet`` and the desired worker count out, Prometheus metrics on ``/metrics``.

The module runs its own stack with no worker: the suite's shared worker would otherwise pick
up the sessions these tests count as waiting.
"""

from __future__ import annotations

import asyncio
import math
import re
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import generate_latest
from redis.asyncio import Redis

import agent_worker.metrics  # noqa: F401 (registers the worker's series in this process)
from shared.credentials import mint_session_credential
from shared.devstack.stack import EphemeralStack, TenantKey
from shared.fleet import FleetPolicy, desired_workers, mint_worker_credential
from shared.settings import DEV_INTERNAL_SECRET, DEV_OPS_TOKEN
from tests.conftest import TEST_LOGS

OPS = {"Authorization": f"Bearer {DEV_OPS_TOKEN}"}
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EphemeralStack]:
    logs = Path(TEST_LOGS) / "fleet" if TEST_LOGS else None
    with EphemeralStack(tmp_path_factory.mktemp("fleet"), logs=logs) as running:
        # Admission off: these tests create sessions no worker will take, to count them as
        # waiting (tests/e2e/test_admission.py covers admission on a real worker).
        running.start_control_plane(
            PODIUM_METRICS_REFRESH_SECONDS="1", PODIUM_ADMISSION_ENABLED="false"
        )
        yield running


@pytest.fixture
async def api(stack: EphemeralStack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=stack.api_url, timeout=10) as client:
        yield client


@pytest.fixture
def tenant(stack: EphemeralStack) -> TenantKey:
    return stack.create_tenant()


def _worker_auth(name: str, secret: str = DEV_INTERNAL_SECRET) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint_worker_credential(secret, name)}"}


def _heartbeat(name: str, **overrides: Any) -> dict[str, Any]:
    return {
        "worker": name,
        "livekit_worker_id": "AW_test",
        "agent_name": "podium-presenter",
        "max_sessions": 4,
        "active_jobs": 1,
        "idle_processes": 1,
        "load": 0.25,
        "draining": False,
        "rooms": ["podium-room-a"],
        **overrides,
    }


async def _put(api: httpx.AsyncClient, name: str, **overrides: Any) -> httpx.Response:
    return await api.put(
        f"/internal/v1/fleet/workers/{name}",
        json=_heartbeat(name, **overrides),
        headers=_worker_auth(name),
    )


async def _fleet(api: httpx.AsyncClient) -> dict[str, Any]:
    resp = await api.get("/v1/fleet", headers=OPS)
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


def _desired(active: int) -> int:
    """The default policy by hand: 4 slots a worker, headroom max(4, 50 %), 1..50 workers."""
    headroom = max(4, math.ceil(active * 0.5))
    return max(1, min(50, math.ceil((active + headroom) / 4)))


def _mine(view: dict[str, Any], name: str) -> dict[str, Any] | None:
    return next((w for w in view["workers"] if w["worker"] == name), None)


async def test_the_fleet_view_needs_the_ops_token(
    api: httpx.AsyncClient, tenant: TenantKey
) -> None:
    assert (await api.get("/v1/fleet")).status_code == 401
    assert (await api.get("/v1/fleet", headers={"Authorization": "Bearer nope"})).status_code == 401
    # a tenant's API key is not an ops credential
    refused = await api.get("/v1/fleet", headers=tenant.headers)
    assert refused.status_code == 401
    assert refused.json()["error"] == "unauthorized"


async def test_a_heartbeat_shows_the_worker_and_its_rooms(api: httpx.AsyncClient) -> None:
    name = f"hb-{uuid.uuid4().hex[:8]}"
    assert (await _put(api, name, active_jobs=3, load=0.75, rooms=["r1", "r2", "r3"])).status_code
    view = await _fleet(api)
    me = _mine(view, name)
    assert me is not None
    assert (me["active_jobs"], me["load"], me["rooms"], me["draining"]) == (
        3,
        0.75,
        ["r1", "r2", "r3"],
        False,
    )
    # it leaves the view as soon as it says it is gone
    left = await api.delete(f"/internal/v1/fleet/workers/{name}", headers=_worker_auth(name))
    assert left.status_code == 204
    assert _mine(await _fleet(api), name) is None


async def test_heartbeats_expire_in_redis(api: httpx.AsyncClient, stack: EphemeralStack) -> None:
    name = f"ttl-{uuid.uuid4().hex[:8]}"
    assert (await _put(api, name)).status_code == 204
    redis = Redis.from_url(stack.redis.url(), decode_responses=True)
    try:
        ttl_ms = await redis.pttl(f"podium:fleet:worker:{name}")
    finally:
        await redis.aclose()
    # the default TTL (15 s): a worker that dies without a word leaves the view by itself
    assert 10_000 < ttl_ms <= 15_000


async def test_workers_speak_only_for_themselves(api: httpx.AsyncClient) -> None:
    body = _heartbeat("worker-b")
    # another worker's credential
    other = await api.put(
        "/internal/v1/fleet/workers/worker-b", json=body, headers=_worker_auth("worker-a")
    )
    assert other.status_code == 403
    # a session credential (what a job holds) is not a fleet credential
    session = mint_session_credential(DEV_INTERNAL_SECRET, uuid.uuid4(), 1, 60)
    as_job = await api.put(
        "/internal/v1/fleet/workers/worker-b",
        json=body,
        headers={"Authorization": f"Bearer {session}"},
    )
    assert as_job.status_code == 401
    # signed with another secret
    forged = await api.put(
        "/internal/v1/fleet/workers/worker-b",
        json=body,
        headers=_worker_auth("worker-b", secret="s" * 40),
    )
    assert forged.status_code == 401
    # a body that is not a heartbeat
    bad = await api.put(
        "/internal/v1/fleet/workers/worker-b",
        json={**body, "load": 7},
        headers=_worker_auth("worker-b"),
    )
    assert bad.status_code == 422
    assert "load" in bad.json()["message"]


async def test_desired_workers_follow_new_sessions_with_headroom(
    api: httpx.AsyncClient, tenant: TenantKey
) -> None:
    before = await _fleet(api)
    policy = before["policy"]
    assert policy == {
        "sessions_per_worker": 4,
        "headroom_sessions": 4,
        "headroom_ratio": 0.5,
        "min_workers": 1,
        "max_workers": 50,
    }
    created = []
    for _ in range(9):
        resp = await api.post("/v1/sessions", headers=tenant.headers, json={})
        assert resp.status_code == 201, resp.text
        created.append(resp.json()["session_id"])
    try:
        after = await _fleet(api)
        # no worker runs them yet (none in this stack): they wait, and they count
        assert after["active_sessions"] == before["active_sessions"] + 9
        assert after["sessions_waiting"] == before["sessions_waiting"] + 9
        demand = after["sessions_on_ready_workers"] + after["sessions_waiting"]
        assert after["desired_workers"] == _desired(demand)
        assert after["desired_workers"] > before["desired_workers"]
    finally:
        for session_id in created:
            await api.post(f"/v1/sessions/{session_id}/end", headers=tenant.headers)
    assert (await _fleet(api))["sessions_waiting"] == before["sessions_waiting"]


async def test_sessions_count_on_ready_workers_not_on_draining_ones(
    api: httpx.AsyncClient,
) -> None:
    name = f"busy-{uuid.uuid4().hex[:8]}"
    before = await _fleet(api)
    try:
        assert (await _put(api, name, active_jobs=8, max_sessions=8, load=1.0)).status_code
        serving = await _fleet(api)
        assert serving["sessions_on_ready_workers"] == before["sessions_on_ready_workers"] + 8
        assert serving["desired_workers"] == _desired(
            serving["sessions_on_ready_workers"] + serving["sessions_waiting"]
        )
        assert serving["desired_workers"] > before["desired_workers"]

        assert (await _put(api, name, active_jobs=8, max_sessions=8, draining=True)).status_code
        draining = await _fleet(api)
        assert draining["sessions_on_draining_workers"] == 8
        assert draining["draining_workers"] == before["draining_workers"] + 1
        # its 8 sessions finish where they are: nobody needs to replace their slots
        assert draining["desired_workers"] == before["desired_workers"]
        # and its free slots are not offered as capacity
        assert draining["free_slots"] == before["free_slots"]
    finally:
        await api.delete(f"/internal/v1/fleet/workers/{name}", headers=_worker_auth(name))


async def test_an_abandoned_session_asks_for_no_worker(
    api: httpx.AsyncClient, tenant: TenantKey, stack: EphemeralStack
) -> None:
    """Open in Postgres (its agent joined once) but run by no worker: no slot is wanted."""
    resp = await api.post("/v1/sessions", headers=tenant.headers, json={})
    assert resp.status_code == 201, resp.text
    session = resp.json()
    before = await _fleet(api)
    credential = await stack.worker_credential(session["room"])
    joined = await api.post(
        f"/internal/v1/sessions/{session['session_id']}/agent-joined",
        headers={"Authorization": f"Bearer {credential}"},
    )
    assert joined.status_code == 204, joined.text
    try:
        after = await _fleet(api)
        assert after["active_sessions"] == before["active_sessions"]  # still open...
        assert after["sessions_waiting"] == before["sessions_waiting"] - 1  # ...not waiting
        assert after["desired_workers"] == _desired(
            after["sessions_on_ready_workers"] + after["sessions_waiting"]
        )
    finally:
        await api.post(f"/v1/sessions/{session['session_id']}/end", headers=tenant.headers)


def _sample(text: str, name: str, labels: str = "") -> float | None:
    pattern = rf"^{re.escape(name)}{re.escape(labels)} ([0-9.e+-]+)$"
    match = re.search(pattern, text, re.MULTILINE)
    return float(match.group(1)) if match else None


async def test_prometheus_metrics_report_requests_and_the_fleet(api: httpx.AsyncClient) -> None:
    name = f"prom-{uuid.uuid4().hex[:8]}"
    assert (await _put(api, name, idle_processes=3, active_jobs=0, rooms=[])).status_code == 204
    try:
        view = await _fleet(api)
        deadline = time.monotonic() + 10  # gauges refresh every PODIUM_METRICS_REFRESH_SECONDS
        text = ""
        while time.monotonic() < deadline:
            text = (await api.get("/metrics")).text
            if _sample(text, "podium_fleet_idle_processes") == view["idle_processes"]:
                break
            await asyncio.sleep(0.5)
        assert _sample(text, "podium_fleet_idle_processes") == view["idle_processes"], text
        assert _sample(text, "podium_fleet_desired_workers") == view["desired_workers"]
        served = _sample(
            text,
            "podium_http_requests_total",
            '{method="GET",route="/v1/fleet",status="200"}',
        )
        assert served is not None and served >= 2
        # route templates, not raw paths, so label values stay bounded
        assert f'route="/internal/v1/fleet/workers/{name}"' not in text
        assert 'route="/internal/v1/fleet/workers/{worker}"' in text
    finally:
        await api.delete(f"/internal/v1/fleet/workers/{name}", headers=_worker_auth(name))


@pytest.mark.parametrize("path", ["/metrics", "/healthz"])
async def test_ops_endpoints_need_no_tenant(api: httpx.AsyncClient, path: str) -> None:
    assert (await api.get(path)).status_code == 200


@pytest.mark.parametrize(
    ("sessions", "workers"),
    [(0, 1), (4, 2), (10, 4), (100, 38), (200, 50)],
)
def test_the_desired_count_keeps_warm_headroom(sessions: int, workers: int) -> None:
    """The default policy, worked by hand: headroom max(4 slots, 50 %), 4 slots a worker."""
    policy = FleetPolicy(
        sessions_per_worker=4,
        headroom_sessions=4,
        headroom_ratio=0.5,
        min_workers=1,
        max_workers=50,
    )
    assert desired_workers(sessions, policy) == workers
    assert desired_workers(0, policy.model_copy(update={"min_workers": 3})) == 3


async def test_the_dashboard_only_charts_metrics_the_services_export(
    api: httpx.AsyncClient,
) -> None:
    """Every series the Grafana dashboard queries exists: a renamed metric fails here, not on
    an operator's blank panel."""
    dashboard = (ROOT / "deploy" / "grafana" / "podium-fleet.json").read_text()
    wanted = set(re.findall(r"podium_[a-z_]+", dashboard))
    assert wanted, "the dashboard queries no podium metric"

    await api.get("/v1/fleet", headers=OPS)  # at least one labelled request sample
    exported: set[str] = set()
    deadline = time.monotonic() + 15  # the refresher fills labelled gauges on its first tick
    while time.monotonic() < deadline:
        text = (await api.get("/metrics")).text
        # sample names, and the declared families (a labelled series has no sample until used)
        exported = set(re.findall(r"^(podium_[a-z_]+)", text, re.M))
        exported |= set(re.findall(r"^# TYPE (podium_[a-z_]+)", text, re.M))
        if {"podium_sessions", "podium_decks", "podium_fleet_workers"} <= exported:
            break
        await asyncio.sleep(0.5)
    # the worker's series: agent_worker.metrics registers them in this process on import
    exported |= set(re.findall(r"^(podium_worker_[a-z_]+)", generate_latest().decode(), re.M))
    missing = sorted(
        name
        for name in wanted
        if name not in exported and name.removesuffix("_bucket") not in exported
    )
    assert not missing, missing


async def test_turn_latency_comes_from_the_turn_log(
    api: httpx.AsyncClient, tenant: TenantKey, stack: EphemeralStack
) -> None:
    """A turn a worker logs shows up in the latency histograms, end to end and per stage."""
    resp = await api.post("/v1/sessions", headers=tenant.headers, json={})
    assert resp.status_code == 201, resp.text
    session = resp.json()
    credential = await stack.worker_credential(session["room"])

    async def histogram(name: str, labels: str = "") -> tuple[float, float]:
        text = (await api.get("/metrics")).text
        count = _sample(text, f"{name}_count", labels) or 0.0
        total = _sample(text, f"{name}_sum", labels) or 0.0
        return count, total

    turns_before = await histogram("podium_turn_latency_seconds")
    stt_before = await histogram("podium_turn_stage_seconds", '{stage="transcription"}')
    turn = {
        "turn_id": f"SP_{uuid.uuid4().hex[:12]}",
        "started_at": "2026-01-01T10:00:00Z",
        "ended_at": "2026-01-01T10:00:03Z",
        "timings": {
            "end_of_turn_delay": 0.35,
            "transcription_delay": 0.42,
            "llm_ttft": 0.2,
            "tts_ttfb": 0.09,
            "e2e_latency": 1.23,
        },
    }
    try:
        logged = await api.post(
            f"/internal/v1/sessions/{session['session_id']}/turns",
            headers={"Authorization": f"Bearer {credential}"},
            json={"turns": [turn]},
        )
        assert logged.status_code == 204, logged.text
        deadline = time.monotonic() + 10
        turns_after = turns_before
        while time.monotonic() < deadline and turns_after[0] == turns_before[0]:
            await asyncio.sleep(0.5)
            turns_after = await histogram("podium_turn_latency_seconds")
        assert turns_after[0] == turns_before[0] + 1
        assert turns_after[1] - turns_before[1] == pytest.approx(1.23)
        stt_after = await histogram("podium_turn_stage_seconds", '{stage="transcription"}')
        assert stt_after[0] == stt_before[0] + 1
        assert stt_after[1] - stt_before[1] == pytest.approx(0.42)
    finally:
        await api.post(f"/v1/sessions/{session['session_id']}/end", headers=tenant.headers)
