"""An audience in one room on the real stack: three participants who may speak and twenty
viewers. Two participants ask in turn and each answer is theirs (addressed by name, recorded
under their identity); a viewer types a question and hears and reads the answer; a second typed
question straight after is politely refused."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import httpx
from livekit import rtc

from tests.e2e.audience import Audience
from tests.e2e.conftest import ProductDeck, Sessions

CHAT_TOPIC = "lk.chat"
LIGHT_VIEWERS = 19  # and Vic, who listens and reads: twenty viewers


class Listener(Audience):
    """Hears the presenter only: the other people's microphones are left unsubscribed (a test
    client decoding every track of a full room costs the CPU the presenter needs)."""

    def _on_track(
        self,
        track: rtc.Track,
        publication: rtc.RemoteTrackPublication,
        participant: rtc.RemoteParticipant,
    ) -> None:
        if participant.kind != rtc.ParticipantKind.PARTICIPANT_KIND_AGENT:
            publication.set_subscribed(False)
            return
        super()._on_track(track, publication, participant)


async def _token(
    api: httpx.AsyncClient, headers: dict[str, str], sid: str, identity: str, name: str, role: str
) -> dict[str, Any]:
    minted = await api.post(
        f"/v1/sessions/{sid}/tokens",
        headers=headers,
        json={"role": role, "identity": identity, "name": name},
    )
    assert minted.status_code == 201, minted.text
    return dict(minted.json())


async def _turns(api: httpx.AsyncClient, sid: str, headers: dict[str, str]) -> list[Any]:
    resp = await api.get(f"/v1/sessions/{sid}/turns", headers=headers)
    assert resp.status_code == 200, resp.text
    items: list[Any] = resp.json()["items"]
    return items


async def test_participants_ask_in_turn_and_a_viewer_types_a_question(
    api: httpx.AsyncClient, product_deck: ProductDeck, new_session: Sessions, worker: Any
) -> None:
    owner = product_deck.owner.headers
    # audio-only: the face is another test's subject, and rendering it costs this one's CPU
    off = await api.put("/v1/tenant/avatar", headers=owner, json={"enabled": False})
    assert off.status_code == 200, off.text
    try:
        await _audience(api, owner, await new_session(product_deck.deck_id, paused=True))
    finally:
        await api.put("/v1/tenant/avatar", headers=owner, json={})


async def _audience(api: httpx.AsyncClient, owner: dict[str, str], session: dict[str, Any]) -> None:
    sid = session["session_id"]
    url = session["livekit_url"]
    ben = await _token(api, owner, sid, "ben", "Ben", "participant")
    cy = await _token(api, owner, sid, "cy", "Cy", "participant")
    vic = await _token(api, owner, sid, "vic", "Vic", "viewer")
    light = [
        await _token(api, owner, sid, f"viewer-{n}", f"Viewer {n}", "viewer")
        for n in range(LIGHT_VIEWERS)
    ]

    async with contextlib.AsyncExitStack() as stack:
        ada_ = await stack.enter_async_context(Listener(url, session["token"]))
        await ada_.until(
            lambda: any(s.startswith("Hello, Ada") for s in ada_.agent_said()), 60, "no greeting"
        )
        ben_ = await stack.enter_async_context(Listener(url, ben["token"]))
        cy_ = await stack.enter_async_context(Listener(url, cy["token"]))
        vic_ = await stack.enter_async_context(Listener(url, vic["token"], publish=False))
        rooms = await asyncio.gather(*(_light_viewer(url, v["token"]) for v in light))
        stack.push_async_callback(lambda: _leave(rooms))
        await ada_.until_silent(1.5, 30)

        # Ben asks: the floor is free, he takes it; the answer is his, by name. No comma: Piper
        # pauses 310 ms at one, near the VAD's end-of-turn silence, which can split the turn.
        asked, _ = await ben_.say("So tell me is there an annual contract?")
        answer = await ben_.until(
            lambda: [s for s in ben_.agent_said(asked) if "slide 4" in s], 40, "Ben got no answer"
        )
        assert answer[0].startswith("Ben,"), answer
        await ben_.until_silent(1.5, 30)

        # Then Cy: the floor moves to her once Ben's turn is over.
        # A new holder's first words can be lost while the floor moves to them (LiveKit's
        # speaker detection, then the switch): the request comes after a lead-in. "Next one",
        # not "next slide": after the switch cut "Okay so", Whisper once wrote "go to the next
        # flight" from Piper's voice (a fresh-clone run), which asks for no slide.
        asked, _ = await cy_.say("Okay so now could we please go on to the next one")
        await cy_.until(lambda: cy_.slide.get("index") == 2, 40, "Cy's move did not happen")
        moved = await cy_.until(lambda: cy_.agent_said(asked), 30, "Cy got no answer")
        assert moved[0].startswith("Cy,"), moved
        await cy_.until_silent(1.5, 30)

        # Vic, a viewer, cannot publish audio: he types, and hears and reads the answer. A
        # second question straight after is refused, politely: one question at a time.
        typed_at = time.perf_counter()
        await vic_.room.local_participant.send_text(
            "Is there an annual contract?", topic=CHAT_TOPIC
        )
        await asyncio.sleep(0.5)
        await vic_.room.local_participant.send_text("And the price?", topic=CHAT_TOPIC)
        read = await vic_.until(
            lambda: [s for s in vic_.agent_said(typed_at) if s.startswith("Vic, that's")],
            40,
            "Vic read no answer",
        )
        assert "slide 4" in read[0], read
        await vic_.until(
            lambda: [s for s in vic_.agent_said(typed_at) if "one question at a time" in s],
            40,
            "no refusal",
        )
        assert vic_.audible_between(typed_at, time.perf_counter()), "Vic heard no answer"
        await vic_.until_silent(1.5, 30)
        assert len(rooms) == LIGHT_VIEWERS and all(r.isconnected() for r in rooms)

    ended = await api.post(f"/v1/sessions/{sid}/end", headers=owner)
    assert ended.status_code == 200, ended.text
    for _ in range(60):  # the worker sends its last records as its job ends
        asked_turns = [t for t in await _turns(api, sid, owner) if t["user_text"]]
        if len(asked_turns) >= 3:
            break
        await asyncio.sleep(0.5)
    print(
        "\nturns:", *[(t["speaker"], t["typed"], t["user_text"]) for t in asked_turns], sep="\n  "
    )
    assert [(t["speaker"], t["typed"]) for t in asked_turns] == [
        ("ben", False),
        ("cy", False),
        ("vic", True),
    ]
    assert asked_turns[2]["user_text"] == "Is there an annual contract?"
    transcript = await api.get(f"/v1/sessions/{sid}/transcript", headers=owner)
    assert transcript.status_code == 200, transcript.text
    users = [m for m in transcript.json()["items"] if m["role"] == "user"]
    assert [m["speaker"] for m in users] == ["ben", "cy", "vic"], users


async def _light_viewer(url: str, token: str) -> rtc.Room:
    """A viewer that only follows the room (the slide in its metadata), subscribing nothing."""
    room = rtc.Room()
    await room.connect(url, token, rtc.RoomOptions(auto_subscribe=False))
    return room


async def _leave(rooms: list[rtc.Room]) -> None:
    await asyncio.gather(*(r.disconnect() for r in rooms), return_exceptions=True)
