"""Usage metering: the worker's cumulative reports counted once (resent, late, across a control
plane restart), time in the room by role from LiveKit's webhooks (real and signed), per day and
per session, bad input named, tenants apart, the daily webhook once per tenant and day with two
replicas sweeping, and the CLI."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest
from livekit import api as lk
from livekit import rtc

from control_plane import db
from control_plane.usage import daily
from shared.devstack.services import ManagedProcess, free_port
from shared.devstack.stack import ROOT, EphemeralStack, TenantKey, http_ok
from tests.factories import make_product_deck
from tests.webhook_receiver import Receiver, serve_receiver

TODAY = datetime.now(UTC).date()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with serve_receiver() as found:
        yield found


class Live:
    def __init__(self, owner: TenantKey, session: dict[str, Any], credential: str) -> None:
        self.owner = owner
        self.session = session
        self.sid = session["session_id"]
        self.room = session["room"]
        self.worker = {"Authorization": f"Bearer {credential}"}
        self.report_url = f"/internal/v1/sessions/{self.sid}/usage"


async def _live(api: httpx.AsyncClient, control_plane: EphemeralStack, owner: TenantKey) -> Live:
    resp = await api.post("/v1/sessions", headers=owner.headers, json={})
    assert resp.status_code == 201, resp.text
    session = resp.json()
    return Live(owner, session, await control_plane.worker_credential(session["room"]))


@pytest.fixture
async def live(
    api: httpx.AsyncClient, control_plane: EphemeralStack, tenant: TenantKey
) -> AsyncIterator[Live]:
    found = await _live(api, control_plane, tenant)
    yield found
    await api.post(f"/v1/sessions/{found.sid}/end", headers=tenant.headers)


def _report(job: str, **totals: float) -> dict[str, Any]:
    """A job's totals: keyword ``meter__dimension=quantity``."""
    items = []
    for key, quantity in totals.items():
        meter, dimension = key.split("__")
        items.append({"meter": meter, "dimension": dimension, "quantity": quantity})
    return {"job_id": job, "totals": items}


async def _send(api: httpx.AsyncClient, live: Live, body: dict[str, Any]) -> None:
    resp = await api.post(live.report_url, headers=live.worker, json=body)
    assert resp.status_code == 204, resp.text


async def _usage(api: httpx.AsyncClient, owner: TenantKey, **params: str) -> dict[str, Any]:
    query = {"from": str(TODAY), "to": str(TODAY), **params}
    resp = await api.get("/v1/usage", headers=owner.headers, params=query)
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


async def test_reports_count_once_resent_late_or_from_another_job(
    api: httpx.AsyncClient, live: Live
) -> None:
    first = _report(
        "AJ_one",
        tts_characters__ElevenLabs=120,
        llm_input_tokens__gpt=300,
        llm_output_tokens__gpt=40,
        stt_audio_seconds__Deepgram=12.5,
    )
    await _send(api, live, first)
    await _send(api, live, first)  # a resend (the answer was lost)
    grown = _report(
        "AJ_one",
        tts_characters__ElevenLabs=200,
        llm_input_tokens__gpt=300,
        llm_output_tokens__gpt=55,
        stt_audio_seconds__Deepgram=20.0,
        avatar_seconds__local=90,
    )
    # two copies of one report at once: the job's lock lets one see the other's total
    await asyncio.gather(_send(api, live, grown), _send(api, live, grown))
    await _send(api, live, first)  # a late one, smaller: nothing
    # a resumed session's next job counts from its own zero
    await _send(api, live, _report("AJ_two", tts_characters__ElevenLabs=30))

    total = (await _usage(api, live.owner))["total"]
    assert total["tts_characters"] == {"ElevenLabs": 230}
    assert total["llm_tokens"] == {"gpt": {"input": 300, "output": 55}}
    assert total["stt_audio_seconds"] == {"Deepgram": 20.0}
    assert total["avatar_minutes"] == {"local": 1.5}


async def test_a_control_plane_restart_between_reports_loses_and_doubles_nothing(
    api: httpx.AsyncClient, stack: EphemeralStack, tenant: TenantKey
) -> None:
    live = await _live(api, stack, tenant)
    await _send(api, live, _report("AJ_r", tts_characters__ElevenLabs=100))
    stack.restart_control_plane(hard=True)
    async with httpx.AsyncClient(base_url=stack.api_url, timeout=10) as fresh:
        # the job resends what it sent before the crash, then its next total
        await _send(fresh, live, _report("AJ_r", tts_characters__ElevenLabs=100))
        await _send(fresh, live, _report("AJ_r", tts_characters__ElevenLabs=140))
        total = (await _usage(fresh, tenant))["total"]
        await fresh.post(f"/v1/sessions/{live.sid}/end", headers=tenant.headers)
    assert total["tts_characters"] == {"ElevenLabs": 140}


@pytest.mark.parametrize(
    ("body", "named"),
    [
        (_report("AJ_x", tts_characters__ElevenLabs=-1), "quantity"),
        (_report("AJ_x", tts_characters__ElevenLabs=1e13), "quantity"),
        ({"job_id": "AJ_x", "totals": [{"meter": "gpu_hours", "dimension": "a", "quantity": 1}]},
         "meter"),
        ({"job_id": "AJ_x", "totals": [
            {"meter": "tts_characters", "dimension": "a", "quantity": 1},
            {"meter": "tts_characters", "dimension": "a", "quantity": 2}]}, "once"),
        ({"job_id": "AJ_x", "totals": []}, "totals"),
        ({"job_id": "AJ x", "totals": [
            {"meter": "tts_characters", "dimension": "a", "quantity": 1}]}, "job_id"),
        ({"job_id": "AJ_x", "totals": [
            {"meter": "tts_characters", "dimension": "a\x00", "quantity": 1}]}, "dimension"),
    ],
)  # fmt: skip
async def test_a_bad_report_is_refused_naming_the_problem(
    api: httpx.AsyncClient, live: Live, body: dict[str, Any], named: str
) -> None:
    resp = await api.post(live.report_url, headers=live.worker, json=body)
    assert resp.status_code == 422, resp.text
    assert named in resp.text
    assert (await _usage(api, live.owner))["total"]["tts_characters"] == {}


async def test_a_report_needs_the_sessions_own_credential(
    api: httpx.AsyncClient, live: Live, control_plane: EphemeralStack
) -> None:
    other = await _live(api, control_plane, live.owner)
    resp = await api.post(
        other.report_url, headers=live.worker, json=_report("AJ_x", tts_characters__a=1)
    )
    assert resp.status_code == 404
    resp = await api.post(
        live.report_url, headers=live.owner.headers, json=_report("AJ_x", tts_characters__a=1)
    )
    assert resp.status_code == 401
    await api.post(f"/v1/sessions/{other.sid}/end", headers=live.owner.headers)


@pytest.mark.parametrize(
    ("params", "status", "named"),
    [
        ({"from": "2026-03-02", "to": "2026-03-01"}, 422, "before"),
        ({"from": "2025-01-01", "to": "2026-03-01"}, 422, "366"),
        ({"from": "2026-02-30"}, 422, "from"),
        ({"group_by": "week"}, 422, "group_by"),
        ({"group_by": "session", "cursor": "bm90LWEtY3Vyc29y"}, 422, "cursor"),
        ({"group_by": "session", "limit": "201"}, 422, "limit"),
    ],
)
async def test_bad_usage_queries_are_refused_naming_the_problem(
    api: httpx.AsyncClient,
    tenant: TenantKey,
    params: dict[str, str],
    status: int,
    named: str,
) -> None:
    resp = await api.get("/v1/usage", headers=tenant.headers, params=params)
    assert resp.status_code == status, resp.text
    assert named in resp.text


async def test_another_tenant_sees_none_of_it(
    api: httpx.AsyncClient, live: Live, control_plane: EphemeralStack
) -> None:
    await _send(api, live, _report("AJ_s", tts_characters__ElevenLabs=77))
    stranger = control_plane.create_tenant("stranger")
    theirs = await _usage(api, stranger, group_by="session")
    assert theirs["sessions"] == []
    assert theirs["total"]["tts_characters"] == {}
    assert theirs["tenant_id"] == stranger.tenant_id
    assert (await _usage(api, live.owner))["total"]["tts_characters"] == {"ElevenLabs": 77}
    assert (await api.get("/v1/usage")).status_code == 401


def _signed(stack: EphemeralStack, event: dict[str, Any]) -> tuple[str, dict[str, str]]:
    body = json.dumps(event)
    digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
    token = (
        lk.AccessToken(stack.livekit.api_key, stack.livekit.api_secret).with_sha256(digest).to_jwt()
    )
    return body, {"Authorization": token, "Content-Type": "application/webhook+json"}


async def _livekit(api: httpx.AsyncClient, stack: EphemeralStack, event: dict[str, Any]) -> None:
    body, headers = _signed(stack, event)
    resp = await api.post("/livekit/webhook", content=body, headers=headers)
    assert resp.status_code == 204, resp.text


def _presence(
    event: str, room: str, sid: str, at: datetime, role: str | None = None
) -> dict[str, Any]:
    participant: dict[str, Any] = {"sid": sid, "identity": sid, "kind": "STANDARD"}
    if role:
        participant["attributes"] = {"podium.role": role}
        participant["joinedAtMs"] = str(int(at.timestamp() * 1000))
    return {
        "event": event,
        "room": {"name": room},
        "participant": participant,
        "id": f"EV_{event}_{sid}",
        "createdAt": str(int(at.timestamp())),
    }


D1 = date(2026, 3, 1)
MIDNIGHT = datetime(2026, 3, 2, tzinfo=UTC)


async def test_participant_minutes_by_role_are_cut_at_midnight(
    api: httpx.AsyncClient, live: Live, control_plane: EphemeralStack
) -> None:
    room, m = live.room, timedelta(minutes=1)
    heard = [
        ("participant_joined", "PA_a", -30, "participant"),
        ("participant_joined", "PA_v", -15, "viewer"),
        # LiveKit may send a webhook twice: the second changes nothing
        ("participant_joined", "PA_v", -10, "viewer"),
        ("participant_left", "PA_v", 15, None),
        ("participant_left", "PA_v", 50, None),
        ("participant_left", "PA_a", 30, None),
    ]
    for event, sid, minutes, role in heard:
        await _livekit(
            api, control_plane, _presence(event, room, sid, MIDNIGHT + minutes * m, role)
        )
    finished = str(int((MIDNIGHT + 40 * m).timestamp()))
    await _livekit(
        api,
        control_plane,
        {"event": "room_finished", "room": {"name": room}, "id": "EV_rf", "createdAt": finished},
    )

    resp = await api.get(
        "/v1/usage",
        headers=live.owner.headers,
        params={"from": str(D1), "to": str(D1 + timedelta(days=1)), "group_by": "day"},
    )
    assert resp.status_code == 200, resp.text
    page = resp.json()
    days = {d["day"]: d["usage"] for d in page["days"]}
    assert days["2026-03-01"]["participant_minutes"] == {"participant": 30.0, "viewer": 15.0}
    assert days["2026-03-02"]["participant_minutes"] == {"participant": 30.0, "viewer": 15.0}
    assert days["2026-03-01"]["session_minutes"] == 30.0
    assert days["2026-03-02"]["session_minutes"] == 40.0
    assert page["total"]["session_minutes"] == 70.0
    assert page["total"]["participant_minutes"] == {"participant": 60.0, "viewer": 30.0}
    # one day alone
    only = await api.get(
        "/v1/usage", headers=live.owner.headers, params={"from": "2026-03-02", "to": "2026-03-02"}
    )
    assert only.json()["total"]["participant_minutes"] == {"participant": 30.0, "viewer": 15.0}


async def test_a_participant_still_in_the_room_counts_up_to_now(
    api: httpx.AsyncClient, live: Live, control_plane: EphemeralStack
) -> None:
    joined = datetime.now(UTC) - timedelta(minutes=2)
    await _livekit(
        api,
        control_plane,
        _presence("participant_joined", live.room, "PA_s", joined, "participant"),
    )
    first = (await _usage(api, live.owner))["total"]["participant_minutes"]["participant"]
    assert 1.9 <= first <= 2.5
    await asyncio.sleep(1.5)
    later = (await _usage(api, live.owner))["total"]["participant_minutes"]["participant"]
    assert later >= first + 0.02
    # the session ends without the leave ever arriving: the time stops at its end
    await api.post(f"/v1/sessions/{live.sid}/end", headers=live.owner.headers)
    ended = (await _usage(api, live.owner))["total"]["participant_minutes"]["participant"]
    await asyncio.sleep(1.5)
    # Frozen: 1.5 s more would be +0.025 min; the session's end may still settle by a few
    # milliseconds after /end answers (seen: 2.025 then 2.026), so allow 0.3 s of it.
    after = (await _usage(api, live.owner))["total"]["participant_minutes"]["participant"]
    assert abs(after - ended) <= 0.005, (ended, after)


async def test_real_participants_are_metered_by_the_role_their_token_gave(
    api: httpx.AsyncClient, live: Live
) -> None:
    viewer = await api.post(
        f"/v1/sessions/{live.sid}/tokens",
        headers=live.owner.headers,
        json={"identity": "vic", "role": "viewer"},
    )
    assert viewer.status_code in (200, 201), viewer.text
    rooms = [rtc.Room(), rtc.Room()]
    await rooms[0].connect(live.session["livekit_url"], live.session["token"])
    await rooms[1].connect(live.session["livekit_url"], viewer.json()["token"])
    await asyncio.sleep(3)
    for room in rooms:
        await room.disconnect()
    # Until both leaves are in: the figures stop growing.
    deadline = time.monotonic() + 30
    last: dict[str, Any] = {}
    while True:
        total = (await _usage(api, live.owner))["total"]
        roles = total["participant_minutes"]
        if set(roles) >= {"participant", "viewer"} and roles == last.get("participant_minutes"):
            break
        assert time.monotonic() < deadline, total
        last = total
        await asyncio.sleep(1.0)
    # LiveKit dates a leave to the second: a 3 s connection measures 2 to 4 s, plus connecting
    assert 2 / 60 <= roles["participant"] <= 10 / 60, roles
    assert 2 / 60 <= roles["viewer"] <= 10 / 60, roles
    assert total["session_minutes"] >= roles["participant"]


async def test_grouped_by_session_in_pages(
    api: httpx.AsyncClient, control_plane: EphemeralStack
) -> None:
    owner = control_plane.create_tenant("usage-pages")
    lives = [await _live(api, control_plane, owner) for _ in range(3)]
    for n, live in enumerate(lives, start=1):
        await _send(api, live, _report("AJ_p", tts_characters__ElevenLabs=10 * n))
    seen: list[dict[str, Any]] = []
    cursor: str | None = None
    pages = 0
    while True:
        params = {"group_by": "session", "limit": "2", **({"cursor": cursor} if cursor else {})}
        page = await _usage(api, owner, **params)
        pages += 1
        seen += page["sessions"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 2
    ids = [s["session_id"] for s in seen]
    assert ids == sorted(ids) and set(ids) == {live.sid for live in lives}
    by_id = {s["session_id"]: s["usage"]["tts_characters"]["ElevenLabs"] for s in seen}
    assert by_id == {live.sid: 10 * n for n, live in enumerate(lives, start=1)}
    assert page["total"]["tts_characters"] == {"ElevenLabs": 60}
    for live in lives:
        await api.post(f"/v1/sessions/{live.sid}/end", headers=owner.headers)


async def test_usage_daily_fires_once_per_tenant_and_day_with_two_replicas(
    api: httpx.AsyncClient, control_plane: EphemeralStack, receiver: Receiver
) -> None:
    owner = control_plane.create_tenant("usage-daily")
    resp = await api.post(
        "/v1/webhooks/endpoints",
        headers=owner.headers,
        json={"url": receiver.url, "events": ["usage.daily"]},
    )
    assert resp.status_code == 201, resp.text
    secret = resp.json()["secret"]
    live = await _live(api, control_plane, owner)
    await _send(api, live, _report("AJ_d", tts_characters__ElevenLabs=42, llm_input_tokens__m=9))
    await api.post(f"/v1/sessions/{live.sid}/end", headers=owner.headers)

    # Two replicas sweep just after today ends (UTC), at once, then again.
    after_midnight = datetime.combine(TODAY + timedelta(days=1), datetime.min.time(), UTC)
    now = after_midnight + daily.GRACE + timedelta(minutes=1)
    pools = [
        await db.create_pool(control_plane.postgres.url(), min_size=1, max_size=2) for _ in range(2)
    ]
    try:
        await asyncio.gather(*(daily.sweep(pool, now) for pool in pools))
        await asyncio.gather(*(daily.sweep(pool, now) for pool in pools))
        # before the day is over (and its grace passed) nothing is raised for it
        assert await daily.sweep(pools[0], after_midnight) == 0
    finally:
        for pool in pools:
            await pool.close()

    def mine() -> list[dict[str, Any]]:
        return [e for e in receiver.events(secret) if e["type"] == "usage.daily"]

    await receiver.until(lambda: len(mine()) >= 1)
    await asyncio.sleep(1.5)  # a second delivery would have arrived by now
    [event] = mine()
    assert event["data"]["day"] == str(TODAY)
    assert event["data"]["tenant_id"] == owner.tenant_id
    assert event["data"]["usage"]["tts_characters"] == {"ElevenLabs": 42}
    assert event["data"]["usage"]["llm_tokens"] == {"m": {"input": 9, "output": 0}}
    conn = await asyncpg.connect(control_plane.postgres.url())
    try:
        rows = await conn.fetchval(
            "SELECT count(*) FROM webhook_deliveries WHERE tenant_id = $1"
            " AND event_type = 'usage.daily'",
            owner.tenant_id,
        )
    finally:
        await conn.close()
    assert rows == 1


async def test_the_cli_prints_a_tenants_usage(
    api: httpx.AsyncClient, live: Live, control_plane: EphemeralStack
) -> None:
    await _send(api, live, _report("AJ_c", tts_characters__ElevenLabs=5, llm_output_tokens__m=3))

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "control_plane", "usage", *args],
            env=control_plane.api_env or control_plane.env(),
            capture_output=True,
            text=True,
            cwd=ROOT,
            check=False,
        )

    out = cli(live.owner.tenant_id, "--from", str(TODAY), "--to", str(TODAY), "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["total"]["tts_characters"] == {"ElevenLabs": 5}
    assert data["from"] == str(TODAY)
    text = cli(live.owner.tenant_id)
    assert text.returncode == 0, text.stderr
    assert "TTS characters       ElevenLabs: 5" in text.stdout
    assert "LLM tokens           m: 0 in, 3 out" in text.stdout
    bad = cli(live.owner.tenant_id, "--from", "2026-13-01")
    assert bad.returncode == 2 and "--from" in bad.stderr
    backwards = cli(live.owner.tenant_id, "--from", "2026-03-02", "--to", "2026-03-01")
    assert backwards.returncode == 2 and "before" in backwards.stderr


async def test_prometheus_counts_usage_by_tenant_on_the_metrics_port_only(
    api: httpx.AsyncClient, control_plane: EphemeralStack, tenant: TenantKey
) -> None:
    port, metrics_port = free_port(), free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **control_plane.api_env,
        "PODIUM_PORT": str(port),
        "PODIUM_PUBLIC_URL": url,
        "PODIUM_METRICS_PORT": str(metrics_port),
    }
    proc = ManagedProcess(
        "control-plane-usage-metrics",
        [sys.executable, "-m", "control_plane", "serve"],
        control_plane.logs / "control-plane-usage-metrics.log",
        env=env,
        cwd=ROOT,
    )
    proc.start()
    try:
        proc.wait_until(lambda: http_ok(f"{url}/readyz"), 60)
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            live = await _live(client, control_plane, tenant)
            await _send(client, live, _report("AJ_m", tts_characters__ElevenLabs=12))
            await _send(client, live, _report("AJ_m", tts_characters__ElevenLabs=12))  # resent
            await _send(client, live, _report("AJ_m", tts_characters__ElevenLabs=20))
            scraped = await client.get(f"http://127.0.0.1:{metrics_port}/metrics")
            await client.post(f"/v1/sessions/{live.sid}/end", headers=tenant.headers)
        line = f'podium_tenant_usage_total{{meter="tts_characters",tenant="{tenant.tenant_id}"}}'
        assert f"{line} 20.0" in scraped.text
    finally:
        proc.stop()
    # the API port (no metrics port configured) counts nothing by tenant
    live = await _live(api, control_plane, tenant)
    await _send(api, live, _report("AJ_n", tts_characters__ElevenLabs=5))
    assert tenant.tenant_id not in (await api.get("/metrics")).text


async def test_storage_is_counted_now_and_on_the_day_it_was_stored(
    api: httpx.AsyncClient, control_plane: EphemeralStack
) -> None:
    owner = control_plane.create_tenant("usage-storage")
    deck = make_product_deck()
    resp = await api.post("/v1/decks", headers=owner.headers, files={"file": ("a.pptx", deck)})
    assert resp.status_code == 202, resp.text
    page = await _usage(api, owner)
    assert page["storage"]["decks"] == len(deck)
    assert page["total"]["storage_added_bytes"] == {"decks": len(deck)}
    [today] = page["days"]
    assert today["usage"]["storage_added_bytes"] == {"decks": len(deck)}
    # a deck belongs to no session
    assert (await _usage(api, owner, group_by="session"))["sessions"] == []
    resp = await api.delete(f"/v1/decks/{resp.json()['deck_id']}", headers=owner.headers)
    assert resp.status_code == 204
    page = await _usage(api, owner)
    assert page["storage"]["decks"] == 0
