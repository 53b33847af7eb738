"""The walking skeleton, end to end: an integrator creates a session over HTTP, a participant
joins the LiveKit room with the returned token, the dispatched worker greets them by voice."""

from __future__ import annotations

import time

import httpx

from shared.devstack.probe import listen_for_agent_voice
from shared.devstack.services import ManagedProcess
from shared.devstack.stack import TenantKey


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
