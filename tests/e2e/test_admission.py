"""Admission and fairness on a real fleet: a worker with four slots, a control plane with
admission on (as in production), LiveKit, Postgres and Redis of this module's own.

No 201 without a presenter: a burst past the fleet's slots gets 503 no_capacity; a session
nobody joins gives its slot back within the join window; one tenant cannot take the last slot
from another; a tenant bursting past its own limits is refused with 429 while another tenant's
session gets its presenter; with Redis down, admission works from the last fleet size it saw.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from livekit.api import LiveKitAPI

from agent_worker.heartbeat import FREED_SLOT_DELAY_S
from shared.devstack.probe import listen_for_agent_voice
from shared.devstack.stack import ROOT, EphemeralStack, TenantKey
from shared.fleet import FleetPolicy, desired_workers
from shared.settings import DEV_OPS_TOKEN
from tests.conftest import TEST_LOGS

SLOTS = 4
JOIN_WINDOW_S = 8
OPS = {"Authorization": f"Bearer {DEV_OPS_TOKEN}"}
CONTROL_PLANE_ENV = {
    "PODIUM_SESSION_NO_SHOW_SECONDS": str(JOIN_WINDOW_S),
    "PODIUM_LIFECYCLE_SWEEP_SECONDS": "1",
    "PODIUM_ADMISSION_WAIT_SECONDS": "1",
    "PODIUM_ADMISSION_FAIR_RESERVE_SLOTS": "1",
}


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EphemeralStack]:
    logs = Path(TEST_LOGS) / "admission" if TEST_LOGS else None
    with EphemeralStack(tmp_path_factory.mktemp("admission"), logs=logs) as stack:
        stack.start_control_plane(**CONTROL_PLANE_ENV)
        # Audio-only keeps the concurrent presenters within two cores.
        stack.start_worker(
            "admission-worker",
            PODIUM_MAX_SESSIONS=str(SLOTS),
            PODIUM_HEARTBEAT_INTERVAL_SECONDS="1",
            PODIUM_AVATAR_PROVIDER="none",
        )
        yield stack


@pytest.fixture
async def api(fleet: EphemeralStack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=fleet.api_url, timeout=20) as client:
        await _until_idle(client)
        yield client


# A job dispatched for a session the previous test ended at once can reach the worker after the
# fleet first looks idle; its slot is then reported busy until FREED_SLOT_DELAY_S after it ends
# (which made the fair-share test refuse a slot it expected, in a CI run). Idle means idle for
# that long, plus a heartbeat and a dispatch.
SETTLED_S = FREED_SLOT_DELAY_S + 1.5


async def _until_idle(api: httpx.AsyncClient, timeout_s: float = 40) -> None:
    """Every slot free and no session open, for ``SETTLED_S``: the previous test's sessions
    and their jobs have gone."""
    deadline = time.monotonic() + timeout_s
    view: dict[str, Any] = {}
    idle_since: float | None = None
    while time.monotonic() < deadline:
        view = (await api.get("/v1/fleet", headers=OPS)).json()
        if (
            view["ready_workers"] == 1
            and view["free_slots"] == SLOTS
            and view["active_sessions"] == 0
        ):
            idle_since = idle_since if idle_since is not None else time.monotonic()
            if time.monotonic() - idle_since >= SETTLED_S:
                return
        else:
            idle_since = None
        await asyncio.sleep(0.5)
    raise AssertionError(f"the fleet did not settle: {view}")


async def _create(api: httpx.AsyncClient, tenant: TenantKey) -> httpx.Response:
    return await api.post("/v1/sessions", headers=tenant.headers, json={})


async def _end_all(
    api: httpx.AsyncClient, tenant: TenantKey, sessions: list[dict[str, Any]]
) -> None:
    for s in sessions:
        resp = await api.post(f"/v1/sessions/{s['session_id']}/end", headers=tenant.headers)
        assert resp.status_code == 200, resp.text


async def _until_presenters(fleet: EphemeralStack, rooms: list[str], timeout_s: float = 15) -> None:
    """Every room's presenter dispatch is held by a worker's job."""
    lk = LiveKitAPI(
        fleet.livekit.url.replace("ws://", "http://"),
        fleet.livekit.api_key,
        fleet.livekit.api_secret,
    )
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            missing = []
            for room in rooms:
                dispatches = await lk.agent_dispatch.list_dispatch(room)
                if not any(d.state.jobs for d in dispatches if d.agent_name == "podium-presenter"):
                    missing.append(room)
            if not missing:
                return
            assert time.monotonic() < deadline, f"no worker took {len(missing)} of the sessions"
            await asyncio.sleep(0.5)
    finally:
        await lk.aclose()


def _assert_no_capacity(resp: httpx.Response) -> None:
    assert resp.status_code == 503, resp.text
    assert resp.json()["error"] == "no_capacity"
    assert int(resp.headers["Retry-After"]) >= 1


def _set_limits(fleet: EphemeralStack, tenant: TenantKey, **values: int) -> None:
    sets = [arg for name, value in values.items() for arg in ("--set", f"{name}={value}")]
    subprocess.run(
        [sys.executable, "-m", "control_plane", "admin", "limits", tenant.tenant_id, *sets],
        env=fleet.api_env,
        check=True,
        capture_output=True,
        cwd=ROOT,
    )


# Once quarantined (it failed 2 of 5 fresh-clone suite runs): the idle worker answered the second
# of simultaneous job requests "not available" and livekit-server dropped that dispatch (the
# framework's load estimate; fixed by agent_worker/server.py: SlotServer, see test_worker_load).
async def test_a_burst_past_the_fleet_gets_503s_and_every_201_its_presenter(
    fleet: EphemeralStack, api: httpx.AsyncClient
) -> None:
    tenant = fleet.create_tenant("burst")
    answers = await asyncio.gather(*(_create(api, tenant) for _ in range(8)))
    created = [r.json() for r in answers if r.status_code == 201]
    # One tenant alone takes all but the slot kept for a tenant still to come.
    assert len(created) == SLOTS - 1, [r.status_code for r in answers]
    for refused in (r for r in answers if r.status_code != 201):
        _assert_no_capacity(refused)
    try:
        heard = await asyncio.gather(
            *(listen_for_agent_voice(s["livekit_url"], s["token"], timeout_s=30) for s in created)
        )
        assert all(h.agent_identity for h in heard)
    finally:
        await _end_all(api, tenant, created)
    metrics = (await api.get("/metrics")).text
    # the last slot was there, but kept for another tenant
    refused = len(answers) - len(created)
    assert f'podium_admissions_total{{outcome="fair_share"}} {refused}.0' in metrics
    assert f'podium_admissions_total{{outcome="admitted"}} {len(created)}.0' in metrics


async def test_a_session_nobody_joins_gives_its_slot_back_within_the_join_window(
    fleet: EphemeralStack, api: httpx.AsyncClient
) -> None:
    tenants = [fleet.create_tenant(f"no-show-{i}") for i in range(SLOTS)]
    held = []
    for tenant in tenants:  # one each: the slot kept for others goes to the last of them
        resp = await _create(api, tenant)
        assert resp.status_code == 201, resp.text
        held.append(resp.json())
    created_at = time.monotonic()
    # every slot admitted really holds a presenter (livekit-server offered each to the worker,
    # the last at a load of (SLOTS-1)/SLOTS, above its default target load of 0.7)
    await _until_presenters(fleet, [s["room"] for s in held])
    first = tenants[0]
    # Every slot taken, nobody joined: creations wait, counted as demand the fleet must grow for.
    waiting = asyncio.gather(*(_create(api, first) for _ in range(3)))
    await asyncio.sleep(0.5)
    view = (await api.get("/v1/fleet", headers=OPS)).json()
    for refused in await waiting:
        _assert_no_capacity(refused)
    assert view["sessions_queued"] == 3, view
    demand = view["sessions_on_ready_workers"] + view["sessions_waiting"] + 3
    policy = FleetPolicy(**view["policy"])
    assert view["desired_workers"] == desired_workers(demand, policy) > 1
    freed_after = None
    while time.monotonic() - created_at < JOIN_WINDOW_S + 18:
        resp = await _create(api, first)
        if resp.status_code == 201:
            freed_after = time.monotonic() - created_at
            await _end_all(api, first, [resp.json()])
            break
        _assert_no_capacity(resp)
        await asyncio.sleep(0.5)
    assert freed_after is not None, "no slot came back"
    # window + the sweeper's period + the freed-slot delay + a heartbeat + the admission wait,
    # with room for a busy box
    assert JOIN_WINDOW_S - 1 <= freed_after <= JOIN_WINDOW_S + 11, freed_after
    ended = (await api.get(f"/v1/sessions/{held[0]['session_id']}", headers=first.headers)).json()
    assert (ended["status"], ended["end_reason"]) == ("ended", "no_show")


async def test_one_tenant_cannot_take_the_last_slot_from_another(
    fleet: EphemeralStack, api: httpx.AsyncClient
) -> None:
    greedy, newcomer = fleet.create_tenant("greedy"), fleet.create_tenant("newcomer")
    mine: list[dict[str, Any]] = []
    try:
        for _ in range(SLOTS - 1):
            resp = await _create(api, greedy)
            assert resp.status_code == 201, resp.text
            mine.append(resp.json())
        refused = await _create(api, greedy)
        _assert_no_capacity(refused)
        assert "kept for other tenants" in refused.json()["message"]
        fleet_view = (await api.get("/v1/fleet", headers=OPS)).json()
        assert fleet_view["sessions_by_tenant"] == {greedy.tenant_id: SLOTS - 1}
        theirs = await _create(api, newcomer)
        assert theirs.status_code == 201, theirs.text
        await _end_all(api, newcomer, [theirs.json()])
    finally:
        await _end_all(api, greedy, mine)


async def test_a_tenant_past_its_limits_gets_429s_while_another_gets_its_presenter(
    fleet: EphemeralStack, api: httpx.AsyncClient
) -> None:
    noisy, quiet = fleet.create_tenant("noisy"), fleet.create_tenant("quiet")
    _set_limits(fleet, noisy, concurrent_sessions=1, sessions_per_minute=5)
    answers = await asyncio.gather(*(_create(api, noisy) for _ in range(12)))
    created = [r.json() for r in answers if r.status_code == 201]
    assert len(created) == 1, [r.status_code for r in answers]
    refused = [r for r in answers if r.status_code != 201]
    assert {r.status_code for r in refused} == {429}
    for r in refused:
        assert int(r.headers["Retry-After"]) >= 1
    assert any("1 concurrent live session (" in r.json()["message"] for r in refused), [
        r.json()["message"] for r in refused
    ]
    try:
        t0 = time.perf_counter()
        resp = await _create(api, quiet)
        assert resp.status_code == 201, resp.text
        session = resp.json()
        heard = await listen_for_agent_voice(
            session["livekit_url"], session["token"], timeout_s=20, started_at=t0
        )
        assert heard.first_voice_s < 20
        await _end_all(api, quiet, [session])
    finally:
        await _end_all(api, noisy, created)


async def test_with_redis_down_admission_uses_the_last_fleet_size_it_saw(
    fleet: EphemeralStack, api: httpx.AsyncClient
) -> None:
    tenant = fleet.create_tenant("redis-outage")
    first = await _create(api, tenant)  # reads the fleet: SLOTS slots
    assert first.status_code == 201, first.text
    sessions = [first.json()]
    fleet.redis.stop()
    try:
        # Postgres holds fewer open sessions than the fleet had slots: admitted, as degraded.
        for _ in range(SLOTS - 1):
            during = await _create(api, tenant)
            assert during.status_code == 201, during.text
            sessions.append(during.json())
        _assert_no_capacity(await _create(api, tenant))  # all slots open: refused, not waved in
        metrics = (await api.get("/metrics")).text
        assert f'podium_admissions_total{{outcome="admitted_degraded"}} {SLOTS - 1}.0' in metrics
    finally:
        fleet.redis.start()
        await _end_all(api, tenant, sessions)
    await _until_idle(api)
    after = await _create(api, tenant)
    assert after.status_code == 201, after.text
    await _end_all(api, tenant, [after.json()])


async def test_dispatch_on_join_sends_the_presenter_when_the_first_participant_arrives(
    fleet: EphemeralStack, api: httpx.AsyncClient
) -> None:
    assert fleet.api_process is not None
    fleet.api_process.stop(20)
    fleet.start_control_plane(**CONTROL_PLANE_ENV, PODIUM_DISPATCH_MODE="on_join")
    try:
        tenant = fleet.create_tenant("on-join")
        resp = await _create(api, tenant)
        assert resp.status_code == 201, resp.text
        session = resp.json()
        await asyncio.sleep(2)  # a dispatch at creation would have a job by now
        lk = LiveKitAPI(
            fleet.livekit.url.replace("ws://", "http://"),
            fleet.livekit.api_key,
            fleet.livekit.api_secret,
        )
        try:

            async def presenters() -> int:
                listed = await lk.agent_dispatch.list_dispatch(session["room"])
                # (LiveKit lists its implicit dispatch for unnamed workers too; ours is named)
                return sum(d.agent_name == "podium-presenter" for d in listed)

            assert await presenters() == 0
            heard = await listen_for_agent_voice(session["livekit_url"], session["token"])
            assert heard.agent_identity
            assert await presenters() == 1  # one presenter, however many webhooks arrived
        finally:
            await lk.aclose()
        await _end_all(api, tenant, [session])
    finally:
        fleet.api_process.stop(20)
        fleet.start_control_plane(**CONTROL_PLANE_ENV)


async def test_a_dispatch_no_worker_took_is_sent_again_once_a_slot_frees(
    fleet: EphemeralStack, api: httpx.AsyncClient
) -> None:
    # Admission off stands in for the race it cannot close (the worker's own count of its
    # slots lagging the heartbeats): livekit-server offers the fourth session to a full worker,
    # which refuses it, and drops the dispatch.
    assert fleet.api_process is not None
    fleet.api_process.stop(20)
    fleet.start_control_plane(
        **{**CONTROL_PLANE_ENV, "PODIUM_SESSION_NO_SHOW_SECONDS": "60"},
        PODIUM_ADMISSION_ENABLED="false",
        PODIUM_DISPATCH_CHECK_SECONDS="1",
    )
    tenant = fleet.create_tenant("dropped")
    sessions = []
    try:
        for _ in range(SLOTS + 1):
            resp = await _create(api, tenant)
            assert resp.status_code == 201, resp.text
            sessions.append(resp.json())
            # each job starts, and the worker reports its load (every 2.5 s), before the next
            # offer: livekit-server then sees the real load of every slot taken
            await asyncio.sleep(3)
        # the worker takes a job on every one of its slots (livekit-server's default target
        # load would stop at 70 % of them)
        await _until_presenters(fleet, [s["room"] for s in sessions[:SLOTS]])
        last = sessions[-1]
        lk = LiveKitAPI(
            fleet.livekit.url.replace("ws://", "http://"),
            fleet.livekit.api_key,
            fleet.livekit.api_secret,
        )
        try:
            dispatches = await lk.agent_dispatch.list_dispatch(last["room"])
        finally:
            await lk.aclose()
        assert not [job for d in dispatches for job in d.state.jobs], "a full worker took it"
        await _end_all(api, tenant, sessions[:1])  # a slot frees
        heard = await listen_for_agent_voice(last["livekit_url"], last["token"], timeout_s=30)
        assert heard.agent_identity
        events = await api.get(f"/v1/sessions/{last['session_id']}/events", headers=tenant.headers)
        assert "dispatch.retried" in {e["type"] for e in events.json()["items"]}
    finally:
        await _end_all(api, tenant, sessions[1:])
        fleet.api_process.stop(20)
        fleet.start_control_plane(**CONTROL_PLANE_ENV)
