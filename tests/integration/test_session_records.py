"""Session records through the public API, against real Postgres, Redis and livekit-server: the
turn log a worker sends (idempotent, ordered, paginated), the transcript as JSON and WebVTT, the
event timeline, the session list with filters, and the JSONL export — each tenant-scoped."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from shared.devstack.stack import EphemeralStack, TenantKey
from tests.factories import make_pdf


@pytest.fixture(scope="module")
async def deck(control_plane: EphemeralStack) -> tuple[TenantKey, str]:
    from tests.e2e.conftest import upload_ready

    owner = control_plane.create_tenant("records")
    pdf = make_pdf([["Intro", "Welcome"], ["Pricing", "Plans start at 49 dollars"]])
    async with httpx.AsyncClient(base_url=control_plane.api_url, timeout=10) as api:
        return owner, await upload_ready(api, owner, "two.pdf", pdf)


class Live:
    def __init__(self, owner: TenantKey, session: dict[str, Any], credential: str) -> None:
        self.owner = owner
        self.sid = session["session_id"]
        self.worker = {"Authorization": f"Bearer {credential}"}
        self.internal = f"/internal/v1/sessions/{self.sid}"
        self.public = f"/v1/sessions/{self.sid}"


@pytest.fixture
async def live(
    api: httpx.AsyncClient, deck: tuple[TenantKey, str], control_plane: EphemeralStack
) -> AsyncIterator[Live]:
    owner, deck_id = deck
    resp = await api.post("/v1/sessions", headers=owner.headers, json={"deck_id": deck_id})
    assert resp.status_code == 201, resp.text
    session = resp.json()
    yield Live(owner, session, await control_plane.worker_credential(session["room"]))
    await api.post(f"/v1/sessions/{session['session_id']}/end", headers=owner.headers)


T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def _turn(n: int, **extra: Any) -> dict[str, Any]:
    start = T0 + timedelta(seconds=10 * n)
    return {
        "turn_id": f"speech_{n}",
        "job_id": "AJ_test",
        "started_at": start.isoformat(),
        "ended_at": (start + timedelta(seconds=3)).isoformat(),
        "user_text": f"question {n}",
        "agent_text": f"answer {n}",
        "tool_calls": [
            {
                "call_id": f"call_{n}",
                "name": "search_slides",
                "arguments": '{"query": "price"}',
                "output": "Slide 2 (Pricing), relevance 0.700: Plans start at 49 dollars",
            }
        ],
        "slide_before": 1,
        "slide_after": 1,
        "timings": {"end_of_turn_delay": 0.4, "llm_ttft": 0.05, "e2e_latency": 0.8},
        "calls": [
            {"stage": "llm", "request_id": f"req_{n}", "provider": "podium", "duration": 0.1}
        ],
        "providers": {"llm": "podium/offline-responder"},
        **extra,
    }


async def _post_turns(api: httpx.AsyncClient, live: Live, turns: list[dict[str, Any]]) -> None:
    resp = await api.post(f"{live.internal}/turns", headers=live.worker, json={"turns": turns})
    assert resp.status_code == 204, resp.text


async def test_turns_are_stored_once_numbered_in_order_and_paginated(
    api: httpx.AsyncClient, live: Live, tenant: TenantKey
) -> None:
    await _post_turns(api, live, [_turn(1), _turn(2)])
    await _post_turns(api, live, [_turn(2), _turn(3)])  # a resent batch, then the next turn

    page = (await api.get(f"{live.public}/turns?limit=2", headers=live.owner.headers)).json()
    assert [(t["number"], t["turn_id"]) for t in page["items"]] == [
        (1, "speech_1"),
        (2, "speech_2"),
    ]
    assert page["next_after"] == 2
    rest = (
        await api.get(f"{live.public}/turns?after=2&limit=2", headers=live.owner.headers)
    ).json()
    assert [t["turn_id"] for t in rest["items"]] == ["speech_3"]
    assert rest["next_after"] is None
    turn = (await api.get(f"{live.public}/turns/3", headers=live.owner.headers)).json()
    assert turn["tool_calls"][0]["name"] == "search_slides"
    assert turn["timings"]["e2e_latency"] == 0.8
    assert turn["calls"][0]["request_id"] == "req_3"

    # Another tenant sees nothing; an unknown turn and bad input are clear 4xx.
    other = await api.get(f"{live.public}/turns", headers=tenant.headers)
    assert other.status_code == 404
    missing = await api.get(f"{live.public}/turns/99", headers=live.owner.headers)
    assert missing.status_code == 404
    bad = await api.get(f"{live.public}/turns?limit=0", headers=live.owner.headers)
    assert bad.status_code == 422
    assert "limit" in bad.text


async def test_a_malformed_turn_is_refused_naming_the_field(
    api: httpx.AsyncClient, live: Live
) -> None:
    resp = await api.post(
        f"{live.internal}/turns",
        headers=live.worker,
        json={"turns": [_turn(1, slide_before=0)]},
    )
    assert resp.status_code == 422
    assert "slide_before" in resp.text
    # A newer worker's extra field (rolling upgrade) is stored without it, not refused.
    newer = _turn(1, mood="cheerful", timings={"llm_ttft": 0.1, "future_stage": 1.0})
    await _post_turns(api, live, [newer])
    [stored] = (await api.get(f"{live.public}/turns", headers=live.owner.headers)).json()["items"]
    assert "mood" not in stored and "future_stage" not in stored["timings"]
    assert stored["timings"]["llm_ttft"] == 0.1


async def test_transcript_as_json_and_webvtt(api: httpx.AsyncClient, live: Live) -> None:
    t = T0.timestamp()
    messages = [
        {
            "item_id": "a1",
            "role": "assistant",
            "text": "Hello, Ada!",
            "started_at": datetime.fromtimestamp(t + 1, UTC).isoformat(),
            "ended_at": datetime.fromtimestamp(t + 2.5, UTC).isoformat(),
        },
        {
            "item_id": "u1",
            "role": "user",
            "text": "What --> does it cost?",
            "started_at": datetime.fromtimestamp(t + 4, UTC).isoformat(),
            "ended_at": datetime.fromtimestamp(t + 5, UTC).isoformat(),
        },
        {"item_id": "a2", "role": "assistant", "text": "It's on slide 2.", "interrupted": True},
    ]
    resp = await api.post(
        f"{live.internal}/messages", headers=live.worker, json={"messages": messages}
    )
    assert resp.status_code == 204, resp.text

    body = (await api.get(f"{live.public}/transcript", headers=live.owner.headers)).json()
    assert [(i["role"], i["text"]) for i in body["items"]] == [
        ("assistant", "Hello, Ada!"),
        ("user", "What --> does it cost?"),
        ("assistant", "It's on slide 2."),
    ]
    assert body["items"][2]["interrupted"] is True
    page = await api.get(
        f"{live.public}/transcript?limit=1&after={body['items'][0]['seq']}",
        headers=live.owner.headers,
    )
    assert [i["item_id"] for i in page.json()["items"]] == ["u1"]

    for resp in (
        await api.get(f"{live.public}/transcript?format=vtt", headers=live.owner.headers),
        await api.get(
            f"{live.public}/transcript", headers={**live.owner.headers, "Accept": "text/vtt"}
        ),
    ):
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/vtt")
        cues = resp.text.split("\n\n")
        assert cues[0] == "WEBVTT"
        # The first two cues carry the measured speaking times, relative to the first line.
        assert "00:00:00.000 --> 00:00:01.500\n<v Presenter>Hello, Ada!" in cues[1]
        assert "00:00:03.000 --> 00:00:04.000\n<v User>What --&gt; does it cost?" in cues[2]
        assert "<v Presenter>It's on slide 2." in cues[3]
    bad = await api.get(f"{live.public}/transcript?format=srt", headers=live.owner.headers)
    assert bad.status_code == 422 and "format" in bad.text


async def test_events_list_slides_escalations_and_lifecycle_in_order(
    api: httpx.AsyncClient, live: Live
) -> None:
    moved = await api.post(
        f"{live.internal}/slide",
        headers={**live.worker, "Idempotency-Key": "t-next"},
        json={"action": "next"},
    )
    assert moved.status_code == 200, moved.text
    esc = await api.post(
        f"{live.internal}/escalations",
        headers={**live.worker, "Idempotency-Key": "t-esc"},
        json={"reason": "wants a human"},
    )
    assert esc.status_code == 201, esc.text
    ended = await api.post(f"{live.public}/end", headers=live.owner.headers)
    assert ended.status_code == 200

    events = (await api.get(f"{live.public}/events", headers=live.owner.headers)).json()
    types = [e["type"] for e in events["items"]]
    assert types[:2] == ["slide.start", "session.created"] or types[:2] == [
        "session.created",
        "slide.start",
    ]
    assert types[-3:] == ["slide.next", "escalation.requested", "session.ended"]
    assert events["items"][-3]["data"]["to_index"] == 2
    assert events["items"][-2]["data"]["reason"] == "wants a human"
    page = (await api.get(f"{live.public}/events?limit=2", headers=live.owner.headers)).json()
    rest = await api.get(
        f"{live.public}/events", params={"cursor": page["next_cursor"]}, headers=live.owner.headers
    )
    assert page["items"] + rest.json()["items"] == events["items"]


async def test_session_list_filters_and_pages(
    api: httpx.AsyncClient, control_plane: EphemeralStack
) -> None:
    owner = control_plane.create_tenant("lister")
    ids = []
    for _ in range(3):
        resp = await api.post("/v1/sessions", headers=owner.headers, json={})
        assert resp.status_code == 201
        ids.append(resp.json()["session_id"])
    await api.post(f"/v1/sessions/{ids[0]}/end", headers=owner.headers)

    everything = (await api.get("/v1/sessions?limit=2", headers=owner.headers)).json()
    assert [s["session_id"] for s in everything["items"]] == [ids[2], ids[1]]
    rest = (
        await api.get(
            "/v1/sessions", params={"cursor": everything["next_cursor"]}, headers=owner.headers
        )
    ).json()
    assert [s["session_id"] for s in rest["items"]] == [ids[0]]
    ended = (await api.get("/v1/sessions?status=ended", headers=owner.headers)).json()
    assert [s["session_id"] for s in ended["items"]] == [ids[0]]
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    none = await api.get("/v1/sessions", params={"created_after": future}, headers=owner.headers)
    assert none.json()["items"] == []
    for query, field in (("status=gone", "status"), ("cursor=xyz", "cursor")):
        bad = await api.get(f"/v1/sessions?{query}", headers=owner.headers)
        assert bad.status_code == 422, bad.text
        assert field in bad.text
    for sid in ids[1:]:
        await api.post(f"/v1/sessions/{sid}/end", headers=owner.headers)


async def test_export_is_json_lines_of_the_whole_session(
    api: httpx.AsyncClient, live: Live
) -> None:
    await api.post(
        f"{live.internal}/messages",
        headers=live.worker,
        json={"messages": [{"item_id": "u1", "role": "user", "text": "Hi"}]},
    )
    await _post_turns(api, live, [_turn(1)])
    resp = await api.get(f"{live.public}/export", headers=live.owner.headers)
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("application/x-ndjson")
    records = [json.loads(line) for line in resp.text.splitlines()]
    kinds = [r["type"] for r in records]
    assert kinds[0] == "session" and records[0]["session_id"] == live.sid
    assert kinds.index("message") < kinds.index("turn") < kinds.index("event")
    assert next(r for r in records if r["type"] == "turn")["user_text"] == "question 1"


async def test_recordings_are_opt_in_stored_from_the_worker_and_served_to_the_tenant(
    api: httpx.AsyncClient, control_plane: EphemeralStack, tenant: TenantKey
) -> None:
    plain = (await api.post("/v1/sessions", headers=tenant.headers, json={})).json()
    recorded = (
        await api.post("/v1/sessions", headers=tenant.headers, json={"record": True})
    ).json()
    ogg = b"OggS" + bytes(range(256)) * 8

    async def put(session: dict[str, Any], body: bytes) -> httpx.Response:
        credential = await control_plane.worker_credential(session["room"])
        return await api.put(
            f"/internal/v1/sessions/{session['session_id']}/recording/segments/0",
            params={"job_id": "AJ_1", "started_at": time.time(), "duration_s": 1.0},
            headers={"Authorization": f"Bearer {credential}", "Content-Type": "audio/ogg"},
            content=body,
        )

    refused = await put(plain, ogg)
    assert (refused.status_code, refused.json()["error"]) == (409, "recording_not_requested")
    not_ogg = await put(recorded, b"RIFF....WAVE")
    assert (not_ogg.status_code, not_ogg.json()["error"]) == (422, "not_ogg")
    path = f"/v1/sessions/{recorded['session_id']}"
    empty = await api.get(f"{path}/recording", headers=tenant.headers)
    assert (empty.status_code, empty.json()["items"]) == (200, [])
    assert (await put(recorded, ogg)).status_code == 204

    session = (await api.get(path, headers=tenant.headers)).json()
    assert (session["record"], session["recording_url"]) == (True, f"{path}/recording")
    listed = (await api.get(f"{path}/recording", headers=tenant.headers)).json()["items"]
    assert [(s["seq"], s["bytes"]) for s in listed] == [(0, len(ogg))]
    audio = await api.get(f"{path}/recording/segments/0", headers=tenant.headers)
    assert audio.status_code == 200
    assert audio.headers["content-type"] == "audio/ogg"
    assert audio.content == ogg
    plain_view = (
        await api.get(f"/v1/sessions/{plain['session_id']}", headers=tenant.headers)
    ).json()
    assert (plain_view["record"], plain_view["recording_url"]) == (False, None)

    # A tenant can record every session by default; a session can still opt out.
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "control_plane", "admin", "record-sessions", tenant.tenant_id, "on"],
        env=control_plane.api_env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    default = (await api.post("/v1/sessions", headers=tenant.headers, json={})).json()
    opted_out = (
        await api.post("/v1/sessions", headers=tenant.headers, json={"record": False})
    ).json()
    for created, expected in ((default, True), (opted_out, False)):
        found = await api.get(f"/v1/sessions/{created['session_id']}", headers=tenant.headers)
        assert found.json()["record"] is expected
    for created in (plain, recorded, default, opted_out):
        await api.post(f"/v1/sessions/{created['session_id']}/end", headers=tenant.headers)
