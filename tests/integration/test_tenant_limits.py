"""Per-tenant limits against the real control plane, Postgres and Redis: each limit set low for
one tenant through `podium admin limits` refuses it with a 429 that says which limit and when to
retry, while other tenants go on; rates reset with their window; a change applies within
seconds; and a Redis outage leaves each replica enforcing the limits by itself."""

from __future__ import annotations

import asyncio
import functools
import re
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from control_plane.limits.service import CACHE_SECONDS
from shared.devstack.services import ManagedProcess, Redis, free_port
from shared.devstack.stack import ROOT, EphemeralStack, TenantKey, http_ok
from tests.e2e.conftest import upload_ready
from tests.factories import make_pdf

DEFAULTS = {
    "concurrent_sessions": 20,
    "sessions_per_minute": 60,
    "uploads_in_flight": 5,
    "uploads_per_hour": 60,
    "searches_per_second": 20,
    "slide_changes_per_second": 10,
    "webhook_endpoints": 10,
}


def assert_refused(resp: httpx.Response, limit: str, phrase: str) -> int:
    """A 429 naming the limit and its value, with a Retry-After; returns the seconds."""
    assert resp.status_code == 429, resp.text
    body = resp.json()
    count = limit in ("uploads_in_flight", "webhook_endpoints", "concurrent_sessions")
    assert body["error"] == ("limit_exceeded" if count else "rate_limited"), body
    assert f"Tenant limit reached: {phrase} ({limit})." in body["message"], body["message"]
    retry = int(resp.headers["Retry-After"])
    assert retry >= 1 and f"Retry after {retry} s." in body["message"]
    return retry


def _search(deck_id: str = "") -> str:
    # Counted before the deck is looked up: an unknown deck answers 404 once the limit let it by.
    return f"/v1/decks/{deck_id or uuid.uuid4()}/search?q=price"


async def _burst(api: httpx.AsyncClient, n: int, path: str, tenant: TenantKey) -> list[int]:
    answers = await asyncio.gather(*(api.get(path, headers=tenant.headers) for _ in range(n)))
    return sorted(r.status_code for r in answers)


def _cli(stack: EphemeralStack, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "control_plane", "admin", "limits", *args],
        env=stack.api_env,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )


def test_the_cli_shows_sets_and_resets_a_tenants_limits(control_plane: EphemeralStack) -> None:
    tenant = control_plane.create_tenant("cli-limits")
    fresh = control_plane.limits(tenant)
    assert fresh["limits"] == DEFAULTS and sorted(fresh["defaults"]) == sorted(DEFAULTS)

    changed = control_plane.set_limits(tenant, sessions_per_minute=120, uploads_per_hour=10)
    assert changed["limits"] == DEFAULTS | {"sessions_per_minute": 120, "uploads_per_hour": 10}
    assert "sessions_per_minute" not in changed["defaults"]
    reset = control_plane.limits(tenant, "--reset", "sessions_per_minute")
    assert (
        reset["limits"]["sessions_per_minute"] == 60 and reset["limits"]["uploads_per_hour"] == 10
    )

    shown = _cli(control_plane, tenant.tenant_id)
    assert shown.returncode == 0, shown.stderr
    lines = {line.split()[0]: line.split()[1:] for line in shown.stdout.splitlines()}
    assert lines["uploads_per_hour"] == ["10"] and lines["sessions_per_minute"] == [
        "60",
        "(default)",
    ]

    allowed = ", ".join(DEFAULTS)
    for args, says in [
        (["--set", "sessions_per_hour=5"], f"unknown limit 'sessions_per_hour'; limits: {allowed}"),
        (["--set", "uploads_per_hour=0"], "uploads_per_hour must be a whole number from 1 to"),
        (["--set", "uploads_per_hour=lots"], "not 'lots'"),
        (["--reset", "everything"], "unknown limit 'everything'"),
    ]:
        bad = _cli(control_plane, tenant.tenant_id, *args)
        assert (bad.returncode, says in bad.stderr) == (2, True), bad.stderr
    nobody = _cli(control_plane, str(uuid.uuid4()), "--set", "uploads_per_hour=5")
    assert nobody.returncode == 2 and "no tenant" in nobody.stderr
    assert (
        control_plane.limits(tenant)["limits"]["uploads_per_hour"] == 10
    )  # bad calls changed nothing


async def test_session_creations_per_minute(
    api: httpx.AsyncClient, control_plane: EphemeralStack
) -> None:
    busy, other = control_plane.create_tenant("busy"), control_plane.create_tenant("calm")
    control_plane.set_limits(busy, sessions_per_minute=2)
    made = [await api.post("/v1/sessions", headers=busy.headers, json={}) for _ in range(2)]
    assert [r.status_code for r in made] == [201, 201], made[-1].text
    refused = await api.post("/v1/sessions", headers=busy.headers, json={})
    retry = assert_refused(refused, "sessions_per_minute", "2 session creations per minute")
    assert 50 <= retry <= 60  # the first creation leaves the one-minute window then
    assert (await api.post("/v1/sessions", headers=other.headers, json={})).status_code == 201


async def test_searches_per_second_reset_with_their_window(
    api: httpx.AsyncClient, control_plane: EphemeralStack
) -> None:
    busy, other = control_plane.create_tenant("searcher"), control_plane.create_tenant("reader")
    control_plane.set_limits(busy, searches_per_second=3)
    assert await _burst(api, 5, _search(), busy) == [404, 404, 404, 429, 429]
    refused = await api.get(_search(), headers=busy.headers)
    retry = assert_refused(refused, "searches_per_second", "3 searches per second")
    assert retry == 1
    assert await _burst(api, 5, _search(), other) == [404] * 5

    await asyncio.sleep(retry + 0.1)
    assert (await api.get(_search(), headers=busy.headers)).status_code == 404


async def test_an_evaluation_counts_one_search_per_question(
    api: httpx.AsyncClient, control_plane: EphemeralStack
) -> None:
    tenant = control_plane.create_tenant("evaluator")
    control_plane.set_limits(tenant, searches_per_second=4)
    path = f"/v1/decks/{uuid.uuid4()}/evaluations"
    three = {"questions": [{"question": f"q{i}?"} for i in range(3)]}
    answers = await asyncio.gather(
        api.post(path, headers=tenant.headers, json=three),
        api.post(path, headers=tenant.headers, json=three),
    )
    assert sorted(r.status_code for r in answers) == [404, 429]
    await asyncio.sleep(1.1)
    # Larger than the limit: it waits for a whole window instead of never passing.
    many = {"questions": [{"question": f"q{i}?"} for i in range(50)]}
    assert (await api.post(path, headers=tenant.headers, json=many)).status_code == 404
    assert_refused(
        await api.get(_search(), headers=tenant.headers),
        "searches_per_second",
        "4 searches per second",
    )


async def test_a_limit_changed_by_the_cli_applies_within_seconds(
    api: httpx.AsyncClient, control_plane: EphemeralStack
) -> None:
    tenant = control_plane.create_tenant("upgraded")
    control_plane.set_limits(tenant, searches_per_second=2)
    assert await _burst(api, 4, _search(), tenant) == [404, 404, 429, 429]
    changed = time.monotonic()
    control_plane.set_limits(tenant, searches_per_second=6)
    while await _burst(api, 4, _search(), tenant) != [404] * 4:
        assert time.monotonic() - changed < CACHE_SECONDS + 3, "the new limit never applied"
        await asyncio.sleep(1.1)


async def test_uploads_in_flight_and_per_hour(
    api: httpx.AsyncClient, control_plane: EphemeralStack
) -> None:
    busy, other = control_plane.create_tenant("uploader"), control_plane.create_tenant("idle")
    control_plane.set_limits(busy, uploads_in_flight=1, uploads_per_hour=3)
    big = make_pdf([[f"Page {i}", "text"] for i in range(40)])  # ingests for a few seconds
    first = await api.post("/v1/decks", headers=busy.headers, files={"file": ("a.pdf", big)})
    assert first.status_code == 202, first.text
    second = await api.post("/v1/decks", headers=busy.headers, files={"file": ("b.pdf", big)})
    assert_refused(second, "uploads_in_flight", "1 deck upload in flight")
    assert "Wait until one of your decks is ready or failed." in second.json()["message"]
    elsewhere = await api.post("/v1/decks", headers=other.headers, files={"file": ("c.pdf", big)})
    assert elsewhere.status_code == 202, elsewhere.text

    deadline = time.monotonic() + 60
    while (await api.get(f"/v1/decks/{first.json()['deck_id']}", headers=busy.headers)).json()[
        "status"
    ] not in ("ready", "failed"):
        assert time.monotonic() < deadline
        await asyncio.sleep(0.2)
    small = make_pdf([["One"]])
    # The refused upload cost none of the hour's three: two more are accepted, then the hour is up.
    for name in ("d.pdf", "e.pdf"):
        accepted = await api.post("/v1/decks", headers=busy.headers, files={"file": (name, small)})
        assert accepted.status_code == 202, accepted.text
        await upload_done(api, busy, accepted.json()["deck_id"])
    hourly = await api.post("/v1/decks", headers=busy.headers, files={"file": ("f.pdf", small)})
    assert 3000 < assert_refused(hourly, "uploads_per_hour", "3 deck uploads per hour") <= 3600


async def upload_done(api: httpx.AsyncClient, tenant: TenantKey, deck_id: str) -> None:
    deadline = time.monotonic() + 60
    while (await api.get(f"/v1/decks/{deck_id}", headers=tenant.headers)).json()["status"] not in (
        "ready",
        "failed",
    ):
        assert time.monotonic() < deadline, f"deck {deck_id} still in flight"
        await asyncio.sleep(0.2)


async def test_slide_changes_per_second_per_session(
    api: httpx.AsyncClient, control_plane: EphemeralStack
) -> None:
    tenant = control_plane.create_tenant("clicker")
    control_plane.set_limits(tenant, slide_changes_per_second=3)
    deck_id = await upload_ready(api, tenant, "five.pdf", make_pdf([[f"S{i}"] for i in range(5)]))
    sessions = [
        (await api.post("/v1/sessions", headers=tenant.headers, json={"deck_id": deck_id})).json()
        for _ in range(2)
    ]
    sid = sessions[0]["session_id"]

    def goto(i: int) -> dict[str, Any]:
        return {"action": "goto", "index": i % 5 + 1}

    async def change(key: str, body: dict[str, Any], sid: str = sid) -> httpx.Response:
        headers = {**tenant.headers, "Idempotency-Key": key}
        return await api.post(f"/v1/sessions/{sid}/slide", headers=headers, json=body)

    answers = await asyncio.gather(*(change(f"k{i}", goto(i)) for i in range(5)))
    assert sorted(r.status_code for r in answers) == [200, 200, 200, 429, 429]
    refused = next(r for r in answers if r.status_code == 429)
    assert_refused(refused, "slide_changes_per_second", "3 slide changes per second per session")

    # While over the limit: a retry of an applied change is answered from its record...
    applied = next(i for i, r in enumerate(answers) if r.status_code == 200)
    replay = await change(f"k{applied}", goto(applied))
    assert (replay.status_code, replay.headers.get("idempotent-replayed")) == (200, "true")
    # ...a participant on the join page is refused like the API...
    ada = {"Authorization": f"Bearer {sessions[0]['token']}"}
    clicked = await api.post("/v1/participant/slide", headers=ada, json={"action": "first"})
    assert_refused(clicked, "slide_changes_per_second", "3 slide changes per second per session")
    # ...the presenter's own changes have their own window...
    credential = await control_plane.worker_credential(sessions[0]["room"])
    presenter = {"Authorization": f"Bearer {credential}", "Idempotency-Key": "narration-1"}
    advanced = await api.post(
        f"/internal/v1/sessions/{sid}/slide", headers=presenter, json={"action": "first"}
    )
    assert advanced.status_code == 200, advanced.text
    # ...and so does every other session.
    assert (await change("s2", goto(1), sessions[1]["session_id"])).status_code == 200

    await asyncio.sleep(1.1)
    assert (await change("later", goto(2))).status_code == 200


async def test_presenter_searches_are_counted_per_session(
    api: httpx.AsyncClient, control_plane: EphemeralStack
) -> None:
    tenant = control_plane.create_tenant("presenter-search")
    control_plane.set_limits(tenant, searches_per_second=2)
    session = (await api.post("/v1/sessions", headers=tenant.headers, json={})).json()
    credential = await control_plane.worker_credential(session["room"])
    auth = {"Authorization": f"Bearer {credential}"}
    path = f"/internal/v1/sessions/{session['session_id']}/search?q=price"
    # The tenant's API searches use up its own allowance; the presenter's is the session's.
    assert await _burst(api, 3, _search(), tenant) == [404, 404, 429]
    answers = await asyncio.gather(*(api.get(path, headers=auth) for _ in range(3)))
    assert sorted(r.status_code for r in answers) == [409, 409, 429]  # 409: no deck
    assert_refused(
        next(r for r in answers if r.status_code == 429),
        "searches_per_second",
        "2 searches per second",
    )


async def test_webhook_endpoints_hold_under_concurrent_creation(
    api: httpx.AsyncClient, control_plane: EphemeralStack
) -> None:
    tenant, other = control_plane.create_tenant("hooks"), control_plane.create_tenant("hooks-2")
    control_plane.set_limits(tenant, webhook_endpoints=2)

    async def register(who: TenantKey, n: int) -> httpx.Response:
        return await api.post(
            "/v1/webhooks/endpoints",
            headers=who.headers,
            json={"url": f"https://example.com/hook/{n}", "events": ["session.ended"]},
        )

    answers = await asyncio.gather(*(register(tenant, n) for n in range(5)))
    assert sorted(r.status_code for r in answers) == [201, 201, 429, 429, 429]
    refused = next(r for r in answers if r.status_code == 429)
    assert_refused(refused, "webhook_endpoints", "2 webhook endpoints")
    assert "Delete an endpoint to add another." in refused.json()["message"]
    listed = (await api.get("/v1/webhooks/endpoints", headers=tenant.headers)).json()
    assert len(listed) == 2
    assert (await register(other, 9)).status_code == 201

    gone = await api.delete(
        f"/v1/webhooks/endpoints/{listed[0]['endpoint_id']}", headers=tenant.headers
    )
    assert gone.status_code == 204
    assert (await register(tenant, 7)).status_code == 201


# --- two replicas sharing a Redis of their own, which the test stops and starts -------------


@dataclass
class Replicas:
    urls: list[str]
    logs: list[ManagedProcess]
    redis: Redis


@pytest.fixture(scope="module")
def replicas(control_plane: EphemeralStack) -> Iterator[Replicas]:
    """Two more control planes on the suite's Postgres, with their own Redis (stopping the
    suite's Redis would disturb the other tests)."""
    stack = control_plane
    redis = Redis(free_port(), stack.logs / "limits-redis.log")
    redis.start()
    procs: list[ManagedProcess] = []
    urls: list[str] = []
    try:
        for name in ("limits-a", "limits-b"):
            port = free_port()
            url = f"http://127.0.0.1:{port}"
            env = {
                **stack.api_env,
                "PODIUM_PORT": str(port),
                "PODIUM_PUBLIC_URL": url,
                "PODIUM_REDIS_URL": redis.url(),
                "PODIUM_ADMISSION_ENABLED": "false",
            }
            proc = ManagedProcess(
                name,
                [sys.executable, "-m", "control_plane", "serve"],
                stack.logs / f"{name}.log",
                env=env,
                cwd=ROOT,
            )
            proc.start()
            procs.append(proc)
            proc.wait_until(functools.partial(http_ok, f"{url}/healthz"), 60)
            urls.append(url)
        yield Replicas(urls, procs, redis)
    finally:
        for proc in procs:
            proc.stop()
        redis.stop()


@pytest.fixture
async def clients(replicas: Replicas) -> AsyncIterator[list[httpx.AsyncClient]]:
    async with (
        httpx.AsyncClient(base_url=replicas.urls[0], timeout=10) as a,
        httpx.AsyncClient(base_url=replicas.urls[1], timeout=10) as b,
    ):
        yield [a, b]


def _metric(text: str, name: str) -> float:
    found = re.search(rf"^{name} ([0-9.e+]+)$", text, re.MULTILINE)
    assert found, f"{name} not exported"
    return float(found[1])


async def _spread(clients: list[httpx.AsyncClient], n: int, tenant: TenantKey) -> list[int]:
    """``n`` searches at once, alternating between the replicas."""
    answers = await asyncio.gather(
        *(clients[i % 2].get(_search(), headers=tenant.headers) for i in range(n))
    )
    return sorted(r.status_code for r in answers)


async def test_rate_limits_hold_across_replicas_and_through_a_redis_outage(
    replicas: Replicas, clients: list[httpx.AsyncClient], control_plane: EphemeralStack
) -> None:
    tenant = control_plane.create_tenant("replicated")
    control_plane.set_limits(tenant, searches_per_second=4, webhook_endpoints=1)
    a, b = clients
    # Shared through Redis: four in total, whichever replica answers.
    assert await _spread(clients, 8, tenant) == [404] * 4 + [429] * 4
    assert _metric((await a.get("/metrics")).text, "podium_limits_degraded") == 0

    replicas.redis.stop()
    try:
        await asyncio.sleep(1.1)
        # Each replica now counts alone, with the same limit: never everything, never nothing.
        for client in (a, b):
            answers = await asyncio.gather(
                *(client.get(_search(), headers=tenant.headers) for _ in range(6))
            )
            assert sorted(r.status_code for r in answers) == [404] * 4 + [429] * 2
            assert_refused(
                next(r for r in answers if r.status_code == 429),
                "searches_per_second",
                "4 searches per second",
            )
            metrics = (await client.get("/metrics")).text
            assert _metric(metrics, "podium_limits_degraded") == 1
            assert _metric(metrics, "podium_limits_local_checks_total") >= 6
        # Counts live in Postgres and hold as ever.
        hook = {"url": "https://example.com/hook", "events": ["session.ended"]}
        assert (
            await a.post("/v1/webhooks/endpoints", headers=tenant.headers, json=hook)
        ).status_code == 201
        assert_refused(
            await b.post("/v1/webhooks/endpoints", headers=tenant.headers, json=hook),
            "webhook_endpoints",
            "1 webhook endpoint",
        )
        for log in replicas.logs:
            text = log.log_path.read_text()
            assert text.count("redis unreachable: rate limits counted per replica") == 1
    finally:
        replicas.redis.start()

    # Back on Redis within a probe period or two: the degraded gauge back to 0, shared again.
    deadline = time.monotonic() + 10
    for client in (a, b):
        while _metric((await client.get("/metrics")).text, "podium_limits_degraded") != 0:
            assert time.monotonic() < deadline, "still counting in memory"
            await client.get(_search(), headers=tenant.headers)
            await asyncio.sleep(0.5)
    await asyncio.sleep(1.1)
    assert await _spread(clients, 8, tenant) == [404] * 4 + [429] * 4
    for log in replicas.logs:
        text = log.log_path.read_text()
        assert "redis back: rate limits shared again" in text
        assert text.count("redis unreachable: rate limits counted per replica") == 1
