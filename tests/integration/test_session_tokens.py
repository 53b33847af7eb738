"""Participant tokens against the real livekit-server: one joins its session's room while the
session lives, cannot bring the room back once the session ended, and never outlives the
session's maximum duration."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from livekit import api as lk
from livekit import rtc

from shared.devstack.stack import EphemeralStack, TenantKey
from shared.settings import DEV_LIVEKIT_KEY, DEV_LIVEKIT_SECRET

# PODIUM_SESSION_MAX_DURATION_SECONDS as the suite's control plane has it (the default).
MAX_DURATION = timedelta(hours=4)


async def _rooms(stack: EphemeralStack, name: str) -> list[str]:
    lkapi = lk.LiveKitAPI(
        stack.livekit.url.replace("ws://", "http://"), DEV_LIVEKIT_KEY, DEV_LIVEKIT_SECRET
    )
    try:
        found = await lkapi.room.list_rooms(lk.ListRoomsRequest(names=[name]))
    finally:
        await lkapi.aclose()
    return [r.name for r in found.rooms]


async def test_a_token_of_an_ended_session_cannot_bring_its_room_back(
    api: httpx.AsyncClient, tenant: TenantKey, control_plane: EphemeralStack
) -> None:
    session = (await api.post("/v1/sessions", headers=tenant.headers, json={})).json()
    ada = rtc.Room()
    await ada.connect(control_plane.livekit.url, session["token"])  # the session is live
    await ada.disconnect()
    ended = await api.post(f"/v1/sessions/{session['session_id']}/end", headers=tenant.headers)
    assert ended.status_code == 200
    assert await _rooms(control_plane, session["room"]) == []

    # The token has not expired, but only the control plane creates rooms.
    late = rtc.Room()
    with pytest.raises(rtc.ConnectError):
        await late.connect(control_plane.livekit.url, session["token"])
    await late.disconnect()
    assert await _rooms(control_plane, session["room"]) == []


async def test_a_token_never_outlives_the_sessions_maximum_duration(
    api: httpx.AsyncClient, tenant: TenantKey
) -> None:
    session = (await api.post("/v1/sessions", headers=tenant.headers, json={})).json()
    asked = await api.post(
        f"/v1/sessions/{session['session_id']}/tokens",
        headers=tenant.headers,
        json={"ttl_seconds": 86_400},
    )
    assert asked.status_code == 201, asked.text
    claims = lk.TokenVerifier(DEV_LIVEKIT_KEY, DEV_LIVEKIT_SECRET).verify(asked.json()["token"])
    assert claims.video is not None and not claims.video.room_create
    expires_at = datetime.fromisoformat(asked.json()["expires_at"])
    latest = datetime.now(UTC) + MAX_DURATION
    assert expires_at <= latest
    assert expires_at > latest - timedelta(minutes=1)  # capped, not cut short
    await api.post(f"/v1/sessions/{session['session_id']}/end", headers=tenant.headers)
