"""The walking skeleton, end to end: an integrator creates a session over HTTP, a participant
joins the LiveKit room with the returned token, the dispatched worker greets them by voice."""

from __future__ import annotations

import asyncio
import time

import httpx
from livekit.api import ListParticipantsRequest, LiveKitAPI, ParticipantInfo

from shared.devstack.probe import listen_for_agent_voice
from shared.devstack.services import ManagedProcess
from shared.devstack.stack import EphemeralStack, TenantKey
from tests.e2e.audience import Audience


async def test_participant_hears_the_agent_greeting(
    api: httpx.AsyncClient, tenant: TenantKey, worker: ManagedProcess
) -> None:
    t0 = time.perf_counter()
    resp = await api.post(
        "/v1/sessions", headers=tenant.headers, json={"participant": {"name": "Ada"}}
    )
    assert resp.status_code == 201, resp.text
    session = resp.json()

    heard = await listen_for_agent_voice(
        session["livekit_url"], session["token"], timeout_s=30, started_at=t0
    )
    assert heard.agent_identity.startswith("agent-")
    assert heard.peak_rms >= 300

    state = await api.get(f"/v1/sessions/{session['session_id']}", headers=tenant.headers)
    assert state.json()["status"] == "active"  # the worker reported that it joined

    ended = await api.post(f"/v1/sessions/{session['session_id']}/end", headers=tenant.headers)
    assert ended.json()["status"] == "ended"


async def test_a_viewer_neither_starts_nor_ends_the_presentation(
    api: httpx.AsyncClient, tenant: TenantKey, worker: ManagedProcess, control_plane: EphemeralStack
) -> None:
    created = await api.post(
        "/v1/sessions", headers=tenant.headers, json={"participant": {"identity": "ada"}}
    )
    assert created.status_code == 201, created.text
    session = created.json()
    sid = session["session_id"]
    minted = await api.post(
        f"/v1/sessions/{sid}/tokens",
        headers=tenant.headers,
        json={"role": "viewer", "identity": "vic"},
    )
    assert minted.status_code == 201, minted.text
    viewer = minted.json()
    try:
        async with Audience(viewer["livekit_url"], viewer["token"], publish=False) as vic:
            await asyncio.sleep(5)  # the presenter is in the room, waiting for a participant
            assert not vic.voiced, "the presenter started for a viewer"
            state = (await api.get(f"/v1/sessions/{sid}", headers=tenant.headers)).json()
            assert state["status"] == "created"
            ada = Audience(session["livekit_url"], session["token"])
            await ada.__aenter__()
        try:
            # Vic has left; Ada, who joined after, was greeted and keeps her presenter.
            await ada.until(lambda: ada.voiced, 30, "Ada never heard the greeting")
            presenter = await _presenter(control_plane, session["room"])
            await asyncio.sleep(8)  # longer than the job-silence watchdog and LiveKit's webhook
            assert await _presenter(control_plane, session["room"]) == presenter
            events = (await api.get(f"/v1/sessions/{sid}/events", headers=tenant.headers)).json()
            assert "agent.lost" not in {e["type"] for e in events["items"]}
        finally:
            await ada.__aexit__()
    finally:
        await api.post(f"/v1/sessions/{sid}/end", headers=tenant.headers)


async def _presenter(stack: EphemeralStack, room: str) -> list[str]:
    """The identities of the agents in the room."""
    lk = LiveKitAPI(
        stack.livekit.url.replace("ws://", "http://"),
        stack.livekit.api_key,
        stack.livekit.api_secret,
    )
    try:
        listed = await lk.room.list_participants(ListParticipantsRequest(room=room))
    finally:
        await lk.aclose()
    return sorted(p.identity for p in listed.participants if p.kind == ParticipantInfo.Kind.AGENT)
