"""Slide state against real Postgres, Redis and livekit-server: one versioned write path for the
API, participants and the agent, and the push to every client through the room's metadata."""

from __future__ import annotations

import asyncio
import json
import statistics
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from aiohttp import ClientSession, web
from livekit import api as lk
from livekit import rtc
from redis.asyncio import Redis

from control_plane.livekit_gateway import LiveKitGateway
from control_plane.slides.cache import SlideCache, SlideRecord
from control_plane.slides.publisher import SlidePublisher, metadata_version
from control_plane.storage import UrlSigner
from shared.devstack.services import free_port
from shared.devstack.stack import EphemeralStack, TenantKey
from tests.factories import make_pdf

Deck = tuple[TenantKey, str]


async def _ready_deck(api: httpx.AsyncClient, owner: TenantKey, pages: int) -> str:
    pdf = make_pdf([[f"Slide {i} title", f"Body of slide {i}"] for i in range(1, pages + 1)])
    resp = await api.post(
        "/v1/decks", headers=owner.headers, files={"file": (f"d{pages}.pdf", pdf)}
    )
    assert resp.status_code == 202, resp.text
    deck_id = str(resp.json()["deck_id"])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        deck = (await api.get(f"/v1/decks/{deck_id}", headers=owner.headers)).json()
        if deck["status"] in ("ready", "failed"):
            assert deck["status"] == "ready", deck
            return deck_id
        await asyncio.sleep(0.2)
    raise AssertionError(f"deck {deck_id} not ingested in 60 s")


@pytest.fixture(scope="module")
async def decks(control_plane: EphemeralStack) -> tuple[TenantKey, str, str]:
    """One tenant with a 5-slide and a 60-slide deck, both ready."""
    owner = control_plane.create_tenant("slides")
    # Some tests here change one session's slide far faster than people or the presenter do.
    control_plane.set_limits(owner, slide_changes_per_second=10_000, concurrent_sessions=100)
    async with httpx.AsyncClient(base_url=control_plane.api_url, timeout=10) as api:
        small, big = await asyncio.gather(_ready_deck(api, owner, 5), _ready_deck(api, owner, 60))
    return owner, small, big


@pytest.fixture
def deck(decks: tuple[TenantKey, str, str]) -> Deck:
    return decks[0], decks[1]


async def _session(api: httpx.AsyncClient, owner: TenantKey, deck_id: str | None) -> dict[str, Any]:
    resp = await api.post(
        "/v1/sessions",
        headers=owner.headers,
        json={"deck_id": deck_id, "participant": {"identity": "ada", "name": "Ada"}},
    )
    assert resp.status_code == 201, resp.text
    return dict(resp.json())


async def _move(
    api: httpx.AsyncClient, owner: TenantKey, sid: str, key: str | None = None, **body: Any
) -> httpx.Response:
    headers = {**owner.headers, **({"Idempotency-Key": key} if key else {})}
    return await api.post(f"/v1/sessions/{sid}/slide", headers=headers, json=body)


async def _transitions(api: httpx.AsyncClient, owner: TenantKey, sid: str) -> list[dict[str, Any]]:
    resp = await api.get(
        f"/v1/sessions/{sid}/transitions", headers=owner.headers, params={"limit": 500}
    )
    assert resp.status_code == 200, resp.text
    return list(resp.json()["items"])


async def _bearer(
    api: httpx.AsyncClient, owner: TenantKey, sid: str, role: str, identity: str | None = None
) -> dict[str, str]:
    """The Authorization header of a newly minted participant token with ``role``."""
    body = {"role": role, **({"identity": identity, "name": identity.title()} if identity else {})}
    resp = await api.post(f"/v1/sessions/{sid}/tokens", headers=owner.headers, json=body)
    assert resp.status_code == 201, resp.text
    assert resp.json()["role"] == role
    return {"Authorization": f"Bearer {resp.json()['token']}"}


def _slide(metadata: str) -> dict[str, Any]:
    return dict(json.loads(metadata)["podium"]["slide"])


async def test_a_session_with_a_deck_starts_on_slide_one(
    api: httpx.AsyncClient, deck: Deck
) -> None:
    owner, deck_id = deck
    session = await _session(api, owner, deck_id)
    resp = await api.get(f"/v1/sessions/{session['session_id']}/slide", headers=owner.headers)
    assert resp.status_code == 200, resp.text
    state = resp.json()
    assert state["session_id"] == session["session_id"]
    assert state["deck_id"] == deck_id
    assert (state["index"], state["count"], state["version"]) == (1, 5, 1)
    assert state["title"] == "Slide 1 title"
    assert state["paused"] is False
    assert state["changed_by"] == "api"
    image = await api.get(state["image_url"])  # signed: no API key needed
    assert image.status_code == 200
    assert image.headers["content-type"] == "image/jpeg"

    [start] = await _transitions(api, owner, session["session_id"])
    assert (start["action"], start["from_index"], start["to_index"], start["version"]) == (
        "start",
        None,
        1,
        1,
    )


async def test_every_action_applies_bumps_the_version_and_is_recorded(
    api: httpx.AsyncClient, deck: Deck
) -> None:
    owner, deck_id = deck
    sid = (await _session(api, owner, deck_id))["session_id"]
    steps: list[tuple[dict[str, Any], int, bool]] = [
        ({"action": "next"}, 2, False),
        ({"action": "next", "reason": "user asked"}, 3, False),
        ({"action": "previous"}, 2, False),
        ({"action": "goto", "index": 5}, 5, False),
        ({"action": "first"}, 1, False),
        ({"action": "last"}, 5, False),
        ({"action": "pause"}, 5, True),
        ({"action": "resume"}, 5, False),
    ]
    for version, (body, index, paused) in enumerate(steps, start=2):
        resp = await _move(api, owner, sid, **body)
        assert resp.status_code == 200, (body, resp.text)
        state = resp.json()
        assert (state["index"], state["version"], state["paused"]) == (index, version, paused)
        assert state["title"] == f"Slide {index} title"
        assert state["changed_by"] == "api"
    got = (await api.get(f"/v1/sessions/{sid}/slide", headers=owner.headers)).json()
    assert (got["index"], got["version"]) == (5, 9)

    log = await _transitions(api, owner, sid)
    assert [t["version"] for t in log] == list(range(1, 10))
    assert [t["action"] for t in log[1:]] == [s[0]["action"] for s in steps]
    assert [(t["from_index"], t["to_index"]) for t in log[1:5]] == [(1, 2), (2, 3), (3, 2), (2, 5)]
    assert log[2]["reason"] == "user asked"
    assert {t["actor"] for t in log} == {"api"}
    page = await api.get(
        f"/v1/sessions/{sid}/transitions",
        headers=owner.headers,
        params={"limit": 3, "after_version": 2},
    )
    assert [t["version"] for t in page.json()["items"]] == [3, 4, 5]
    assert page.json()["next_after_version"] == 5


async def test_out_of_range_is_422_naming_the_range(api: httpx.AsyncClient, deck: Deck) -> None:
    owner, deck_id = deck
    sid = (await _session(api, owner, deck_id))["session_id"]
    for index in (6, 0, -3, 10**12):
        resp = await _move(api, owner, sid, action="goto", index=index)
        assert resp.status_code == 422, (index, resp.text)
        assert resp.json()["error"] == "slide_out_of_range"
        assert "1 to 5" in resp.json()["message"]
        assert resp.json()["state"]["version"] == 1
    for body in ({"action": "goto"}, {"action": "next", "index": 2}, {"action": "jump"}):
        resp = await _move(api, owner, sid, **body)
        assert resp.status_code == 422, body
        assert resp.json()["error"] == "validation_error"
    bad_key = await _move(api, owner, sid, key="has space", action="next")
    assert bad_key.status_code == 422
    assert "Idempotency-Key" in bad_key.json()["message"]
    assert (await api.get(f"/v1/sessions/{sid}/slide", headers=owner.headers)).json()[
        "version"
    ] == 1


async def test_no_next_at_the_end_and_no_previous_at_the_start(
    api: httpx.AsyncClient, deck: Deck
) -> None:
    owner, deck_id = deck
    sid = (await _session(api, owner, deck_id))["session_id"]
    first = await _move(api, owner, sid, action="previous")
    assert first.status_code == 409
    assert first.json()["error"] == "no_previous_slide"
    assert first.json()["state"]["index"] == 1
    assert (await _move(api, owner, sid, action="last")).status_code == 200
    last = await _move(api, owner, sid, action="next")
    assert last.status_code == 409
    assert last.json()["error"] == "no_next_slide"
    assert "last slide (5)" in last.json()["message"]
    assert (last.json()["state"]["index"], last.json()["state"]["version"]) == (5, 2)


async def test_a_stale_expected_version_is_409_with_the_current_state(
    api: httpx.AsyncClient, deck: Deck
) -> None:
    owner, deck_id = deck
    sid = (await _session(api, owner, deck_id))["session_id"]
    assert (await _move(api, owner, sid, action="next", expected_version=1)).status_code == 200
    stale = await _move(api, owner, sid, action="goto", index=4, expected_version=1)
    assert stale.status_code == 409
    assert stale.json()["error"] == "version_conflict"
    assert (stale.json()["state"]["version"], stale.json()["state"]["index"]) == (2, 2)
    fresh = await _move(api, owner, sid, action="goto", index=4, expected_version=2)
    assert fresh.status_code == 200
    assert (fresh.json()["index"], fresh.json()["version"]) == (4, 3)


async def test_the_same_idempotency_key_applies_once(api: httpx.AsyncClient, deck: Deck) -> None:
    owner, deck_id = deck
    sid = (await _session(api, owner, deck_id))["session_id"]
    first = await _move(api, owner, sid, key="tool-call-1", action="next")
    again = await _move(api, owner, sid, key="tool-call-1", action="next")
    assert first.status_code == again.status_code == 200
    assert again.json() | {"image_url": None} == first.json() | {"image_url": None}
    assert "idempotent-replayed" not in first.headers
    assert again.headers["idempotent-replayed"] == "true"
    # A barge-in may cancel a tool while its request is in flight; the retry races the original.
    racing = await asyncio.gather(
        *(_move(api, owner, sid, key="tool-call-2", action="next") for _ in range(10))
    )
    assert {r.status_code for r in racing} == {200}
    assert {(r.json()["index"], r.json()["version"]) for r in racing} == {(3, 3)}
    # The original result is returned even after the state moved on.
    assert (await _move(api, owner, sid, action="last")).status_code == 200
    late = await _move(api, owner, sid, key="tool-call-1", action="next")
    assert (late.json()["index"], late.json()["version"]) == (2, 2)

    assert [t["version"] for t in await _transitions(api, owner, sid)] == [1, 2, 3, 4]
    reused = await _move(api, owner, sid, key="tool-call-1", action="goto", index=1)
    assert reused.status_code == 409
    assert reused.json()["error"] == "idempotency_key_reused"


async def test_concurrent_changes_never_lose_an_update(
    api: httpx.AsyncClient, decks: tuple[TenantKey, str, str]
) -> None:
    owner, _, big = decks
    sid = (await _session(api, owner, big))["session_id"]
    results = await asyncio.gather(
        *(_move(api, owner, sid, key=f"k-{i}", action="next") for i in range(50))
    )
    assert [r.status_code for r in results] == [200] * 50, [r.text for r in results[:3]]
    versions = sorted(r.json()["version"] for r in results)
    assert versions == list(range(2, 52))  # strictly increasing, no duplicates, no gaps
    assert sorted(r.json()["index"] for r in results) == list(range(2, 52))
    log = await _transitions(api, owner, sid)
    assert len(log) == 51
    assert [t["version"] for t in log] == list(range(1, 52))
    assert all(t["to_index"] == t["from_index"] + 1 for t in log[1:])
    final = (await api.get(f"/v1/sessions/{sid}/slide", headers=owner.headers)).json()
    assert (final["index"], final["version"]) == (51, 51)


async def test_participants_navigate_with_their_livekit_token_viewers_cannot(
    api: httpx.AsyncClient, deck: Deck
) -> None:
    owner, deck_id = deck
    session = await _session(api, owner, deck_id)
    sid = session["session_id"]
    ada = {"Authorization": f"Bearer {session['token']}"}
    moved = await api.post("/v1/participant/slide", headers=ada, json={"action": "next"})
    assert moved.status_code == 200, moved.text
    assert (moved.json()["index"], moved.json()["changed_by"]) == (2, "participant:ada")
    assert (await _transitions(api, owner, sid))[-1]["actor"] == "participant:ada"

    watch = await _bearer(api, owner, sid, "viewer")
    refused = await api.post("/v1/participant/slide", headers=watch, json={"action": "next"})
    assert refused.status_code == 403
    assert refused.json()["error"] == "role_not_allowed"
    assert "'viewer'" in refused.json()["message"]
    seen = await api.get("/v1/participant/slide", headers=watch)  # viewers may read
    assert (seen.status_code, seen.json()["index"]) == (200, 2)

    forged = (
        lk.AccessToken("devkey", "some-other-secret-that-is-long-enough-123")
        .with_identity("mallory")
        .with_grants(lk.VideoGrants(room_join=True, room=session["room"]))
        .with_attributes({"podium.session_id": sid, "podium.role": "participant"})
        .to_jwt()
    )
    for token in (forged, "not-a-jwt"):
        resp = await api.post(
            "/v1/participant/slide",
            headers={"Authorization": f"Bearer {token}"},
            json={"action": "next"},
        )
        assert resp.status_code == 401, token
    assert (await api.post("/v1/participant/slide", json={"action": "next"})).status_code == 401
    # A tenant API key is not a participant token.
    as_key = await api.post("/v1/participant/slide", headers=owner.headers, json={"action": "next"})
    assert as_key.status_code == 401


async def test_a_host_locks_navigation_and_participants_cannot_move_until_unlocked(
    api: httpx.AsyncClient, deck: Deck
) -> None:
    owner, deck_id = deck
    session = await _session(api, owner, deck_id)
    sid = session["session_id"]
    ada = {"Authorization": f"Bearer {session['token']}"}
    host = await _bearer(api, owner, sid, "host", "hope")
    watch = await _bearer(api, owner, sid, "viewer", "vic")

    async def as_(who: dict[str, str], action: str) -> httpx.Response:
        return await api.post("/v1/participant/slide", headers=who, json={"action": action})

    # only the host locks: a participant and a viewer are told who may
    for who, role in ((ada, "participant"), (watch, "viewer")):
        refused = await as_(who, "lock")
        assert refused.status_code == 403, refused.text
        assert refused.json()["error"] == "role_not_allowed"
        assert f"'{role}'" in refused.json()["message"]
    locked = await as_(host, "lock")
    assert locked.status_code == 200, locked.text
    assert (locked.json()["locked"], locked.json()["index"]) == (True, 1)

    # a participant's move is refused with the state; nothing moved
    refused = await as_(ada, "next")
    assert refused.status_code == 409, refused.text
    body = refused.json()
    assert body["error"] == "navigation_locked"
    assert "host" in body["message"]
    assert (body["state"]["index"], body["state"]["locked"]) == (1, True)
    # pausing stays the participants'; the host, the API and the presenter still move
    assert (await as_(ada, "pause")).json()["paused"] is True
    assert (await as_(host, "next")).json()["index"] == 2
    assert (await _move(api, owner, sid, action="next")).json()["index"] == 3
    seen = await api.get("/v1/participant/slide", headers=ada)
    assert (seen.json()["index"], seen.json()["locked"]) == (3, True)

    unlocked = await as_(host, "unlock")
    assert unlocked.json()["locked"] is False
    moved = await as_(ada, "next")
    assert (moved.status_code, moved.json()["index"]) == (200, 4)

    log = await _transitions(api, owner, sid)
    assert [(t["action"], t["locked"], t["actor"]) for t in log[1:]] == [
        ("lock", True, "participant:hope"),
        ("pause", True, "participant:ada"),
        ("next", True, "participant:hope"),
        ("next", True, "api"),
        ("unlock", False, "participant:hope"),
        ("next", False, "participant:ada"),
    ]


async def test_an_integrator_locks_navigation_through_the_api(
    api: httpx.AsyncClient, deck: Deck
) -> None:
    owner, deck_id = deck
    session = await _session(api, owner, deck_id)
    sid = session["session_id"]
    locked = await _move(api, owner, sid, action="lock")
    assert (locked.status_code, locked.json()["locked"]) == (200, True)
    ada = {"Authorization": f"Bearer {session['token']}"}
    refused = await api.post(
        "/v1/participant/slide", headers=ada, json={"action": "goto", "index": 3}
    )
    assert refused.json()["error"] == "navigation_locked"
    assert (await _move(api, owner, sid, action="unlock")).json()["locked"] is False
    assert (await api.post("/v1/participant/slide", headers=ada, json={"action": "last"})).json()[
        "index"
    ] == 5


async def test_other_tenants_get_404_and_change_nothing(
    api: httpx.AsyncClient, deck: Deck, tenant: TenantKey
) -> None:
    owner, deck_id = deck
    sid = (await _session(api, owner, deck_id))["session_id"]
    for method, path, body in [
        ("GET", f"/v1/sessions/{sid}/slide", None),
        ("POST", f"/v1/sessions/{sid}/slide", {"action": "next"}),
        ("GET", f"/v1/sessions/{sid}/transitions", None),
        ("GET", f"/v1/sessions/{uuid.uuid4()}/slide", None),
    ]:
        resp = await api.request(method, path, headers=tenant.headers, json=body)
        assert resp.status_code == 404, (method, path, resp.text)
        assert resp.json()["error"] == "not_found"
    mine = (await api.get(f"/v1/sessions/{sid}/slide", headers=owner.headers)).json()
    assert mine["version"] == 1


async def test_ended_sessions_and_sessions_without_a_deck_refuse_changes(
    api: httpx.AsyncClient, deck: Deck
) -> None:
    owner, deck_id = deck
    sid = (await _session(api, owner, deck_id))["session_id"]
    assert (await api.post(f"/v1/sessions/{sid}/end", headers=owner.headers)).status_code == 200
    ended = await _move(api, owner, sid, action="next")
    assert ended.status_code == 409
    assert ended.json()["error"] == "session_ended"
    final = await api.get(f"/v1/sessions/{sid}/slide", headers=owner.headers)
    assert (final.status_code, final.json()["version"]) == (200, 1)

    bare = (await _session(api, owner, None))["session_id"]
    for resp in (
        await api.get(f"/v1/sessions/{bare}/slide", headers=owner.headers),
        await _move(api, owner, bare, action="next"),
    ):
        assert resp.status_code == 409
        assert resp.json()["error"] == "no_deck"


async def test_the_worker_credential_reads_and_changes_its_own_session_only(
    api: httpx.AsyncClient, deck: Deck, stack: EphemeralStack
) -> None:
    owner, deck_id = deck
    session = await _session(api, owner, deck_id)
    other = await _session(api, owner, deck_id)
    sid = session["session_id"]
    credential = await stack.worker_credential(session["room"])
    auth = {"Authorization": f"Bearer {credential}"}

    read = await api.get(f"/internal/v1/sessions/{sid}/slide", headers=auth)
    assert (read.status_code, read.json()["index"]) == (200, 1)
    keyed = {**auth, "Idempotency-Key": "tool-goto-3"}
    body = {"action": "goto", "index": 3, "reason": "user asked about pricing"}
    moved = await api.post(f"/internal/v1/sessions/{sid}/slide", headers=keyed, json=body)
    assert moved.status_code == 200, moved.text
    assert (moved.json()["index"], moved.json()["changed_by"]) == (3, "agent")
    retried = await api.post(f"/internal/v1/sessions/{sid}/slide", headers=keyed, json=body)
    assert (retried.json()["version"], retried.headers["idempotent-replayed"]) == (2, "true")
    unkeyed = await api.post(f"/internal/v1/sessions/{sid}/slide", headers=auth, json=body)
    assert unkeyed.status_code == 422  # the presenter's tools must be retry-safe
    pause = await api.post(
        f"/internal/v1/sessions/{sid}/slide",
        headers={**auth, "Idempotency-Key": "tool-pause"},
        json={"action": "pause"},
    )
    assert (pause.json()["paused"], pause.json()["version"]) == (True, 3)
    last = (await _transitions(api, owner, sid))[-2]
    assert (last["actor"], last["reason"]) == ("agent", "user asked about pricing")

    elsewhere = await api.post(
        f"/internal/v1/sessions/{other['session_id']}/slide",
        headers={**auth, "Idempotency-Key": "x"},
        json={"action": "next"},
    )
    assert elsewhere.status_code == 404
    with_key = await api.get(f"/internal/v1/sessions/{sid}/slide", headers=owner.headers)
    assert with_key.status_code == 401


async def test_reads_fall_back_to_postgres_when_redis_lost_the_state(
    api: httpx.AsyncClient, deck: Deck, stack: EphemeralStack
) -> None:
    owner, deck_id = deck
    sid = (await _session(api, owner, deck_id))["session_id"]
    assert (await _move(api, owner, sid, action="goto", index=4)).status_code == 200
    redis = Redis.from_url(stack.redis.url(), decode_responses=True)
    try:
        key = f"podium:session:{sid}:slide"
        assert await redis.hget(key, "version") == "2"
        await redis.delete(key)
        got = (await api.get(f"/v1/sessions/{sid}/slide", headers=owner.headers)).json()
        assert (got["index"], got["version"]) == (4, 2)
        assert await redis.hget(key, "version") == "2"  # refilled from Postgres
    finally:
        await redis.aclose()


async def _join(url: str, token: str) -> rtc.Room:
    room = rtc.Room()
    await room.connect(url, token)
    return room


async def test_clients_get_changes_pushed_through_room_metadata(
    api: httpx.AsyncClient, deck: Deck, stack: EphemeralStack
) -> None:
    owner, deck_id = deck
    session = await _session(api, owner, deck_id)
    sid = session["session_id"]
    redis = Redis.from_url(stack.redis.url(), decode_responses=True)
    pubsub = redis.pubsub()
    await pubsub.subscribe(f"podium:session:{sid}:slide")
    early = await _join(session["livekit_url"], session["token"])
    late: rtc.Room | None = None
    try:
        assert _slide(early.metadata)["version"] == 1  # set when the room was created
        seen: asyncio.Queue[tuple[float, dict[str, Any]]] = asyncio.Queue()
        early.on(
            "room_metadata_changed",
            lambda _old, new: seen.put_nowait((time.perf_counter(), _slide(new))),
        )
        latencies = []
        steps = [{"action": "goto", "index": i % 4 + 2} for i in range(19)] + [{"action": "first"}]
        for body in steps:
            sent = time.perf_counter()
            resp = await _move(api, owner, sid, **body)
            assert resp.status_code == 200
            expected = resp.json()["version"]
            while True:
                at, slide = await asyncio.wait_for(seen.get(), timeout=5)
                assert slide["version"] <= expected
                if slide["version"] == expected:
                    break
            latencies.append((at - sent) * 1000)
            assert slide == resp.json() | {"image_url": slide["image_url"]}
        print(
            f"\nslide push latency, POST -> room_metadata_changed at a client: "
            f"p50 {statistics.median(latencies):.1f} ms, max {max(latencies):.1f} ms "
            f"({len(latencies)} changes)"
        )
        assert max(latencies) < 2000

        viewer = await api.post(
            f"/v1/sessions/{sid}/tokens", headers=owner.headers, json={"role": "viewer"}
        )
        late = await _join(session["livekit_url"], viewer.json()["token"])
        on_join = _slide(late.metadata)
        assert (on_join["index"], on_join["version"]) == (1, 21)
        assert on_join["title"] == "Slide 1 title"

        published: list[int] = []
        deadline = time.monotonic() + 5
        while len(published) < 20 and time.monotonic() < deadline:
            # None for the (ignored) subscribe confirmation as well as on timeout.
            msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.5)
            if msg is not None:
                published.append(json.loads(msg["data"])["version"])
        assert published == list(range(2, 22))
    finally:
        await early.disconnect()
        if late is not None:
            await late.disconnect()
        await pubsub.aclose()
        await redis.aclose()


@pytest.fixture
async def flaky_livekit(stack: EphemeralStack) -> AsyncIterator[dict[str, Any]]:
    """A proxy in front of the real livekit-server that refuses the next ``fail`` metadata
    updates with 503 and records the slide version of each update it lets through."""
    control: dict[str, Any] = {"fail": 0, "refused": 0, "passed": [], "delay_s": 0.0}
    upstream = stack.livekit.url.replace("ws://", "http://")
    session = ClientSession()

    async def proxy(request: web.Request) -> web.Response:
        body = await request.read()
        if request.path.endswith("/UpdateRoomMetadata"):
            if control["fail"] > 0:
                control["fail"] -= 1
                control["refused"] += 1
                return web.Response(status=503, text="unavailable")
            update = lk.UpdateRoomMetadataRequest.FromString(body)
            control["passed"].append(metadata_version(update.metadata))
            await asyncio.sleep(control["delay_s"])
        headers = {k: v for k, v in request.headers.items() if k.lower() != "host"}
        async with session.post(upstream + request.path, data=body, headers=headers) as resp:
            return web.Response(
                status=resp.status, body=await resp.read(), content_type=resp.content_type
            )

    app = web.Application()
    app.router.add_route("POST", "/{tail:.*}", proxy)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    control["url"] = f"ws://127.0.0.1:{port}"
    try:
        yield control
    finally:
        await runner.cleanup()
        await session.close()


async def test_pushes_are_retried_and_never_go_back_a_version(
    api: httpx.AsyncClient, deck: Deck, stack: EphemeralStack, flaky_livekit: dict[str, Any]
) -> None:
    owner, deck_id = deck
    session = await _session(api, owner, deck_id)
    state = (
        await api.get(f"/v1/sessions/{session['session_id']}/slide", headers=owner.headers)
    ).json()
    record = SlideRecord(
        session_id=uuid.UUID(session["session_id"]),
        tenant_id=uuid.UUID(owner.tenant_id),
        room=session["room"],
        deck_id=uuid.UUID(deck_id),
        index=1,
        count=5,
        version=1,
        paused=False,
        title="Slide 1 title",
        image_key=None,
        changed_by="api",
        changed_at=datetime.now(UTC),
    )

    def at(version: int, index: int) -> SlideRecord:
        return SlideRecord(**{**record.__dict__, "version": version, "index": index})

    redis = Redis.from_url(stack.redis.url(), decode_responses=True)
    gateway = LiveKitGateway(
        url=flaky_livekit["url"],
        api_key=stack.livekit.api_key,
        api_secret=stack.livekit.api_secret,
        agent_name="unused",
    )

    async def load(_: uuid.UUID) -> SlideRecord | None:
        return None

    client = await _join(session["livekit_url"], session["token"])
    try:
        seen: list[int] = []
        newest = asyncio.Event()

        def on_change(_old: str, new: str) -> None:
            seen.append(_slide(new)["version"])
            if seen[-1] == state["version"] + 2:
                newest.set()

        client.on("room_metadata_changed", on_change)
        async with gateway:
            publisher = SlidePublisher(
                gateway, SlideCache(redis), UrlSigner("s", "http://x"), load, first_delay_s=0.05
            )
            flaky_livekit["fail"] = 3  # LiveKit "down" for the first three attempts
            publisher.submit(at(state["version"] + 1, 2))
            await asyncio.sleep(0.02)
            publisher.submit(at(state["version"] + 2, 3))  # supersedes v+1 while it retries
            await asyncio.wait_for(newest.wait(), timeout=5)
            publisher.submit(at(state["version"] + 1, 2))  # a late, stale retry: ignored
            await publisher.stop()
        assert flaky_livekit["refused"] == 3
        assert flaky_livekit["passed"] == [state["version"] + 2]
        assert seen == [state["version"] + 2]
        assert _slide(client.metadata)["index"] == 3
    finally:
        await client.disconnect()
        await redis.aclose()


async def test_a_push_missed_before_a_crash_is_sent_after_restart(
    api: httpx.AsyncClient, deck: Deck, control_plane: EphemeralStack
) -> None:
    owner, deck_id = deck
    session = await _session(api, owner, deck_id)
    sid = session["session_id"]
    assert (await _move(api, owner, sid, action="goto", index=3)).status_code == 200
    lkapi = lk.LiveKitAPI(
        control_plane.livekit.url.replace("ws://", "http://"),
        control_plane.livekit.api_key,
        control_plane.livekit.api_secret,
    )
    try:
        # As if the process died between committing version 2 and pushing it.
        await lkapi.room.update_room_metadata(
            lk.UpdateRoomMetadataRequest(room=session["room"], metadata="{}")
        )
        control_plane.restart_control_plane(hard=True)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            rooms = await lkapi.room.list_rooms(lk.ListRoomsRequest(names=[session["room"]]))
            if metadata_version(rooms.rooms[0].metadata) == 2:
                break
            await asyncio.sleep(0.1)
        assert _slide(rooms.rooms[0].metadata)["index"] == 3
    finally:
        await lkapi.aclose()


async def test_out_of_range_numbers_and_nul_text_are_422(
    api: httpx.AsyncClient, deck: Deck
) -> None:
    owner, deck_id = deck
    sid = (await _session(api, owner, deck_id))["session_id"]
    huge = await _move(api, owner, sid, action="next", expected_version=10**20)
    assert huge.status_code == 422
    nul = await _move(api, owner, sid, action="next", reason="a\x00b")
    assert nul.status_code == 422
    after = await api.get(
        f"/v1/sessions/{sid}/transitions", headers=owner.headers, params={"after_version": 10**20}
    )
    assert after.status_code == 422


async def test_a_burst_of_changes_ends_on_the_newest_version_in_the_room(
    api: httpx.AsyncClient, decks: tuple[TenantKey, str, str], control_plane: EphemeralStack
) -> None:
    owner, _, big = decks
    session = await _session(api, owner, big)
    sid = session["session_id"]
    answers = await asyncio.gather(
        *(_move(api, owner, sid, action="goto", index=i % 60 + 1) for i in range(100))
    )
    assert [a.status_code for a in answers] == [200] * 100
    final = (await api.get(f"/v1/sessions/{sid}/slide", headers=owner.headers)).json()
    assert final["version"] == 101  # start + 100 changes, none lost
    lkapi = lk.LiveKitAPI(
        control_plane.livekit.url.replace("ws://", "http://"),
        control_plane.livekit.api_key,
        control_plane.livekit.api_secret,
    )
    try:
        deadline = time.monotonic() + 10
        shown: dict[str, Any] = {}
        while time.monotonic() < deadline:
            rooms = await lkapi.room.list_rooms(lk.ListRoomsRequest(names=[session["room"]]))
            shown = _slide(rooms.rooms[0].metadata)
            if shown["version"] == final["version"]:
                break
            await asyncio.sleep(0.05)
        assert (shown["version"], shown["index"]) == (final["version"], final["index"])
    finally:
        await lkapi.aclose()


async def test_pushes_of_a_burst_are_coalesced_to_the_newest_version(
    api: httpx.AsyncClient, deck: Deck, stack: EphemeralStack, flaky_livekit: dict[str, Any]
) -> None:
    """Clients need only the newest state: while one push is in flight, later changes replace
    each other, and the next push carries the newest."""
    owner, deck_id = deck
    session = await _session(api, owner, deck_id)
    first = (
        await api.get(f"/v1/sessions/{session['session_id']}/slide", headers=owner.headers)
    ).json()["version"]
    base = SlideRecord(
        session_id=uuid.UUID(session["session_id"]),
        tenant_id=uuid.UUID(owner.tenant_id),
        room=session["room"],
        deck_id=uuid.UUID(deck_id),
        index=1,
        count=5,
        version=first,
        paused=False,
        title=None,
        image_key=None,
        changed_by="api",
        changed_at=datetime.now(UTC),
    )
    redis = Redis.from_url(stack.redis.url(), decode_responses=True)
    gateway = LiveKitGateway(
        url=flaky_livekit["url"],
        api_key=stack.livekit.api_key,
        api_secret=stack.livekit.api_secret,
        agent_name="unused",
    )

    async def load(_: uuid.UUID) -> SlideRecord | None:
        return None

    flaky_livekit["delay_s"] = 0.02  # each push takes LiveKit 20 ms
    client = await _join(session["livekit_url"], session["token"])
    newest = first + 100
    arrived = asyncio.Event()

    def on_change(_old: str, new: str) -> None:
        if metadata_version(new) == newest:
            arrived.set()

    client.on("room_metadata_changed", on_change)
    try:
        async with gateway:
            publisher = SlidePublisher(gateway, SlideCache(redis), UrlSigner("s", "http://x"), load)
            for n in range(1, 101):
                version = first + n
                publisher.submit(
                    SlideRecord(**{**base.__dict__, "version": version, "index": n % 5 + 1})
                )
                await asyncio.sleep(0.001)
            await asyncio.wait_for(arrived.wait(), timeout=5)
            await publisher.stop()
        passed = flaky_livekit["passed"]
        assert passed[-1] == newest  # none lost at the end
        assert passed == sorted(set(passed))  # never an older version after a newer one
        assert len(passed) < 50  # 100 changes, far fewer pushes
        assert _slide(client.metadata)["version"] == newest
        assert _slide(client.metadata)["index"] == 100 % 5 + 1
    finally:
        await client.disconnect()
        await redis.aclose()
