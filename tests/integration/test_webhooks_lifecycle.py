"""Integrator webhooks and the session lifecycle, on a stack of their own (short retry and
timeout settings): signed deliveries that verify, retries with backoff after failures, a
delivery log and replay; sessions ended for no-show, idleness, maximum duration and LiveKit's
room_finished webhook, each with its reason."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from livekit import api as lk

from control_plane.webhooks.signing import verify
from shared.devstack.stack import EphemeralStack, TenantKey
from tests.conftest import TEST_LOGS
from tests.factories import make_pdf
from tests.webhook_receiver import Receiver, serve_receiver


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EphemeralStack]:
    logs = Path(TEST_LOGS) / "webhooks" if TEST_LOGS else None
    with EphemeralStack(tmp_path_factory.mktemp("webhooks"), logs=logs) as running:
        # The receiver is on loopback: private URLs are allowed only in dev unless told.
        running.start_control_plane(
            PODIUM_WEBHOOK_ALLOW_PRIVATE_URLS="true",
            PODIUM_WEBHOOK_RETRY_BASE_SECONDS="0.3",
            PODIUM_WEBHOOK_POLL_SECONDS="0.1",
            PODIUM_WEBHOOK_MAX_ATTEMPTS="3",
            PODIUM_SESSION_NO_SHOW_SECONDS="4",
            PODIUM_SESSION_IDLE_TIMEOUT_SECONDS="4",
            PODIUM_SESSION_MAX_DURATION_SECONDS="9",
            PODIUM_LIFECYCLE_SWEEP_SECONDS="0.5",
            PODIUM_ADMISSION_ENABLED="false",  # no worker here: sessions only need their rows
        )
        yield running


@pytest.fixture
async def api(stack: EphemeralStack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=stack.api_url, timeout=10) as client:
        yield client


@pytest.fixture
def tenant(stack: EphemeralStack) -> TenantKey:
    return stack.create_tenant("hooks")


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with serve_receiver() as found:
        yield found


async def _eventually(probe: Callable[[], Awaitable[Any]], seconds: float, what: str) -> Any:
    """``probe()``'s first truthy answer, asked every 0.2 s for up to ``seconds``."""
    for _ in range(max(1, int(seconds / 0.2))):
        if found := await probe():
            return found
        await asyncio.sleep(0.2)
    raise AssertionError(f"{what} within {seconds} s")


async def _endpoint(
    api: httpx.AsyncClient, tenant: TenantKey, url: str, events: list[str] | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {"url": url} | ({"events": events} if events else {})
    resp = await api.post("/v1/webhooks/endpoints", headers=tenant.headers, json=body)
    assert resp.status_code == 201, resp.text
    created: dict[str, Any] = resp.json()
    assert created["secret"].startswith("whsec_")
    return created


async def _session(api: httpx.AsyncClient, tenant: TenantKey, **body: Any) -> dict[str, Any]:
    resp = await api.post("/v1/sessions", headers=tenant.headers, json=body)
    assert resp.status_code == 201, resp.text
    session: dict[str, Any] = resp.json()
    return session


async def _worker(stack: EphemeralStack, session: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {await stack.worker_credential(session['room'])}"}


async def test_signed_events_arrive_and_failed_attempts_are_retried(
    api: httpx.AsyncClient, stack: EphemeralStack, tenant: TenantKey, receiver: Receiver
) -> None:
    endpoint = await _endpoint(api, tenant, receiver.url)
    receiver.failing = 2  # the first two attempts fail: they are retried with backoff
    session = await _session(api, tenant)
    sid = session["session_id"]
    worker = await _worker(stack, session)
    joined = await api.post(f"/internal/v1/sessions/{sid}/agent-joined", headers=worker)
    assert joined.status_code == 204
    assert (await api.post(f"/v1/sessions/{sid}/end", headers=tenant.headers)).status_code == 200
    await receiver.until(lambda: len(receiver.got) >= 4)  # started + ended (after 2 failures)
    # transcript.ready waits for the leaving job to report its records sent (or 30 s).
    pending = (
        await api.get("/v1/webhooks/deliveries?event_type=transcript.ready", headers=tenant.headers)
    ).json()["items"]
    assert [(d["status"], d["attempts"]) for d in pending] == [("pending", 0)]
    done = await api.post(f"/internal/v1/sessions/{sid}/records-complete", headers=worker)
    assert done.status_code == 204

    def delivered() -> list[str]:
        return [e["type"] for e in receiver.events(endpoint["secret"])[2:]]

    await receiver.until(lambda: "transcript.ready" in delivered(), 5)
    # One delivery each; their order is not guaranteed once one of them is being retried.
    assert sorted(delivered()) == ["session.ended", "session.started", "transcript.ready"]
    events = receiver.events(endpoint["secret"])
    # Retries carry the same delivery id; every event names the session.
    assert len({e["_delivery"] for e in events}) == 3
    assert all(e["data"]["session_id"] == sid for e in events)
    ended = next(e for e in events if e["type"] == "session.ended")
    assert ended["data"]["end_reason"] == "ended_by_api"
    ready = next(e for e in events if e["type"] == "transcript.ready")
    assert ready["data"]["transcript_url"] == f"/v1/sessions/{sid}/transcript"

    # A body changed in transit does not verify.
    headers, body = receiver.got[-1]
    assert not verify(
        endpoint["secret"],
        headers["Podium-Webhook-Timestamp"],
        body.replace(b"transcript", b"Transcript"),
        headers["Podium-Signature"],
    )

    # The receiver has a request before the sender has its answer and marks it delivered.
    async def all_delivered() -> list[dict[str, Any]]:
        resp = await api.get("/v1/webhooks/deliveries", headers=tenant.headers)
        items: list[dict[str, Any]] = resp.json()["items"]
        return items if {d["status"] for d in items} == {"delivered"} else []

    log = await _eventually(all_delivered, 5, "every delivery marked delivered")
    assert sum(d["attempts"] for d in log) == 5  # three deliveries, two retries
    retried = [d for d in log if d["attempts"] > 1]
    assert retried and all(d["last_status"] == 204 for d in retried)


async def test_a_delivery_that_keeps_failing_gives_up_and_can_be_replayed(
    api: httpx.AsyncClient, stack: EphemeralStack, tenant: TenantKey, receiver: Receiver
) -> None:
    endpoint = await _endpoint(api, tenant, receiver.url, ["session.ended"])
    receiver.always_fail = True
    session = await _session(api, tenant)
    await api.post(f"/v1/sessions/{session['session_id']}/end", headers=tenant.headers)
    await receiver.until(lambda: len(receiver.got) >= 3)

    async def failed() -> list[dict[str, Any]]:
        resp = await api.get("/v1/webhooks/deliveries?status=failed", headers=tenant.headers)
        items: list[dict[str, Any]] = resp.json()["items"]
        return items

    gone = await _eventually(failed, 10, "the delivery did not give up")
    [delivery] = gone
    assert (delivery["attempts"], delivery["last_status"]) == (3, 500)
    assert delivery["event_type"] == "session.ended"
    await asyncio.sleep(1)
    assert len(receiver.got) == 3  # no attempt after giving up

    # Another tenant can neither see nor replay it.
    other = stack.create_tenant("other")
    path = f"/v1/webhooks/deliveries/{delivery['delivery_id']}"
    assert (await api.get(path, headers=other.headers)).status_code == 404
    assert (await api.post(f"{path}/replay", headers=other.headers)).status_code == 404

    receiver.always_fail = False
    replay = await api.post(f"{path}/replay", headers=tenant.headers)
    assert replay.status_code == 202, replay.text
    await receiver.until(lambda: len(receiver.got) == 4)

    async def delivered() -> bool:
        return bool((await api.get(path, headers=tenant.headers)).json()["status"] == "delivered")

    await _eventually(delivered, 5, "the replay was not delivered")
    last = receiver.events(endpoint["secret"])[-1]
    assert last["_delivery"] == delivery["delivery_id"]
    assert last["type"] == "session.ended"


async def test_deck_and_escalation_events(
    api: httpx.AsyncClient, stack: EphemeralStack, tenant: TenantKey, receiver: Receiver
) -> None:
    from tests.e2e.conftest import upload_ready

    endpoint = await _endpoint(api, tenant, receiver.url, ["deck.ready", "escalation.requested"])
    deck_id = await upload_ready(api, tenant, "one.pdf", make_pdf([["Pricing", "49 dollars"]]))
    session = await _session(api, tenant, deck_id=deck_id)
    esc = await api.post(
        f"/internal/v1/sessions/{session['session_id']}/escalations",
        headers={**await _worker(stack, session), "Idempotency-Key": "e1"},
        json={"reason": "asked for a person", "last_question": "Can I talk to someone?"},
    )
    assert esc.status_code == 201, esc.text
    await receiver.until(lambda: len(receiver.got) >= 2)
    events = {e["type"]: e for e in receiver.events(endpoint["secret"])}
    assert events["deck.ready"]["data"]["deck_id"] == deck_id
    assert events["deck.ready"]["data"]["slide_count"] == 1
    assert events["escalation.requested"]["data"]["reason"] == "asked for a person"
    assert events["escalation.requested"]["data"]["session_id"] == session["session_id"]
    await api.post(f"/v1/sessions/{session['session_id']}/end", headers=tenant.headers)


async def test_bad_endpoints_are_refused_naming_the_field(
    api: httpx.AsyncClient, tenant: TenantKey
) -> None:
    for body, field_name in (
        ({"url": "ftp://example.com/x"}, "url"),
        ({"url": "not a url"}, "url"),
        ({"url": "https://example.com/x", "events": ["session.exploded"]}, "events"),
        ({"url": "https://example.com/x", "events": []}, "events"),
    ):
        resp = await api.post("/v1/webhooks/endpoints", headers=tenant.headers, json=body)
        assert resp.status_code == 422, (body, resp.text)
        assert field_name in resp.text
    # Private URLs are allowed on this stack; cloud metadata services never are.
    for url in (
        "http://169.254.169.254/latest",
        "http://[fd00:ec2::254]/",
        "http://[::ffff:a9fe:a9fe]/",
    ):
        resp = await api.post("/v1/webhooks/endpoints", headers=tenant.headers, json={"url": url})
        assert (resp.status_code, resp.json()["error"]) == (422, "url_not_allowed"), resp.text
    listed = (await api.get("/v1/webhooks/endpoints", headers=tenant.headers)).json()
    assert "secret" not in json.dumps(listed)


async def _reason(api: httpx.AsyncClient, tenant: TenantKey, sid: str, seconds: float) -> Any:
    async def ended() -> Any:
        found = (await api.get(f"/v1/sessions/{sid}", headers=tenant.headers)).json()
        return found if found["status"] == "ended" else None

    return (await _eventually(ended, seconds, "the session did not end"))["end_reason"]


async def test_sessions_end_for_no_show_idleness_and_maximum_duration(
    api: httpx.AsyncClient, stack: EphemeralStack, tenant: TenantKey
) -> None:
    no_show = await _session(api, tenant)
    idle = await _session(api, tenant)
    busy = await _session(api, tenant)
    sid = busy["session_id"]
    busy_worker = await _worker(stack, busy)
    for session in (idle, busy):
        worker = await _worker(stack, session)
        await api.post(
            f"/internal/v1/sessions/{session['session_id']}/agent-joined", headers=worker
        )

    # Someone keeps talking in one of them: it is not idle, but its maximum duration ends it.
    reasons: dict[str, str] = {}
    for n in range(60):
        for session in (no_show, idle, busy):
            found = (
                await api.get(f"/v1/sessions/{session['session_id']}", headers=tenant.headers)
            ).json()
            if found["status"] == "ended":
                reasons.setdefault(session["session_id"], found["end_reason"])
        if len(reasons) == 3:
            break
        await api.post(
            f"/internal/v1/sessions/{sid}/messages",
            headers=busy_worker,
            json={"messages": [{"item_id": f"m{n}", "role": "user", "text": "still here"}]},
        )
        await asyncio.sleep(0.5)
    assert [reasons.get(s["session_id"]) for s in (no_show, idle, busy)] == [
        "no_show",
        "idle_timeout",
        "max_duration",
    ]
    events = (await api.get(f"/v1/sessions/{sid}/events", headers=tenant.headers)).json()
    ended = [e for e in events["items"] if e["type"] == "session.ended"]
    assert [(e["actor"], e["data"]["reason"]) for e in ended] == [("control_plane", "max_duration")]


async def test_livekit_closing_the_room_ends_the_session(
    api: httpx.AsyncClient, stack: EphemeralStack, tenant: TenantKey
) -> None:
    session = await _session(api, tenant)
    lkapi = lk.LiveKitAPI(
        stack.livekit.url.replace("ws://", "http://"),
        stack.livekit.api_key,
        stack.livekit.api_secret,
    )
    try:
        await lkapi.room.delete_room(lk.DeleteRoomRequest(room=session["room"]))
    finally:
        await lkapi.aclose()
    # LiveKit's signed room_finished webhook, not our sweeper (no-show is 4 s away).
    assert await _reason(api, tenant, session["session_id"], 3.5) == "room_finished"
