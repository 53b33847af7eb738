"""The offline presenter loop against the real control plane (Postgres, Redis, livekit-server):
the worker's routes for search and narration, the presenter's tools moving the real slide state,
and — with a worker in the room — a spoken "next slide" that every participant sees."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from uuid import UUID

import httpx
import pytest
from livekit import rtc
from livekit.agents import AgentSession

from agent_worker.control_plane_client import ControlPlaneClient, SessionApi
from agent_worker.presenter import Presenter
from agent_worker.responder import DOESNT_COVER, OfflineResponder
from shared.devstack.probe import frame_rms
from shared.devstack.services import ManagedProcess
from shared.devstack.stack import EphemeralStack
from tests.e2e.conftest import ProductDeck, Sessions
from tests.e2e.speech import espeak, speak, within


@dataclass
class LiveSession:
    session_id: str
    room: str
    auth: dict[str, str]
    deck: SessionApi


@pytest.fixture
async def live(
    new_session: Sessions, product_deck: ProductDeck, control_plane: EphemeralStack
) -> AsyncIterator[LiveSession]:
    """A session on the product deck (no participant joins it) and the worker's view of it."""
    session = await new_session(product_deck.deck_id)
    credential = await control_plane.worker_credential(session["room"])
    async with ControlPlaneClient(control_plane.api_url, timeout_seconds=10) as client:
        yield LiveSession(
            session["session_id"],
            session["room"],
            {"Authorization": f"Bearer {credential}"},
            client.for_session(UUID(session["session_id"]), credential),
        )


# First in the module: every other test here creates sessions that are dispatched to the same
# worker, and a dispatch that arrives while the worker's session slots are full is dropped by
# livekit-server (no re-dispatch yet), which would leave this session without an agent.
async def test_a_spoken_next_slide_moves_everyones_slide_and_the_presenter_answers(
    api: httpx.AsyncClient, product_deck: ProductDeck, new_session: Sessions, worker: ManagedProcess
) -> None:
    samples, rate = espeak("Next slide, please.")
    session = await new_session(product_deck.deck_id, paused=True)  # a turn, not the narration
    room = rtc.Room()
    loop = asyncio.get_running_loop()
    listening: asyncio.Future[None] = loop.create_future()
    moved: asyncio.Future[float] = loop.create_future()
    answered: asyncio.Future[float] = loop.create_future()
    readers: list[asyncio.Task[None]] = []

    def slide_index() -> int | None:
        return json.loads(room.metadata or "{}").get("podium", {}).get("slide", {}).get("index")

    states: list[tuple[float, str]] = []

    def on_attributes(changed: dict[str, str], participant: rtc.Participant) -> None:
        # The framework publishes the agent's state; the greeting is over once the agent
        # listens again after speaking (it may report 'listening' before the greeting starts).
        if "lk.agent.state" in changed:
            states.append((time.perf_counter(), changed["lk.agent.state"]))
        spoke = any(state == "speaking" for _, state in states)
        if spoke and changed.get("lk.agent.state") == "listening" and not listening.done():
            listening.set_result(None)

    def on_metadata(_old: str, _new: str) -> None:
        if slide_index() == 2 and not moved.done():
            moved.set_result(time.perf_counter())

    async def read(track: rtc.Track) -> None:
        stream = rtc.AudioStream(track)
        try:
            async for event in stream:
                if moved.done() and frame_rms(event.frame) >= 300 and not answered.done():
                    answered.set_result(time.perf_counter())
        finally:
            await stream.aclose()

    def on_track(track: rtc.Track, *_: object) -> None:
        if track.kind == rtc.TrackKind.KIND_AUDIO:
            readers.append(asyncio.create_task(read(track)))

    room.on("participant_attributes_changed", on_attributes)
    room.on("room_metadata_changed", on_metadata)
    room.on("track_subscribed", on_track)
    source = rtc.AudioSource(rate, 1)
    said_at = time.perf_counter()
    try:
        await room.connect(session["livekit_url"], session["token"])
        assert slide_index() == 1  # late joiners read the slide from the room at once
        track = rtc.LocalAudioTrack.create_audio_track("mic", source)
        await room.local_participant.publish_track(
            track, rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
        )
        await within(listening, 60, "the agent never finished greeting")

        said_at = time.perf_counter()
        await speak(source, samples)
        moved_at = await within(moved, 30, "the slide did not move to 2")
        answered_at = await within(answered, 30, "the agent did not speak after the move")
    finally:
        print("agent states:", [(round(t - said_at, 2), s) for t, s in states])
        for reader in readers:
            reader.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
        await room.disconnect()
    speech_s = len(samples) / rate
    print(
        f"\nspoken 'next slide' ({speech_s:.2f} s of speech + 1 s silence): slide moved "
        f"{moved_at - said_at - speech_s:.2f} s after speech ended, agent voice "
        f"{answered_at - moved_at:.2f} s after the move"
    )
    state = await api.get(
        f"/v1/sessions/{session['session_id']}/slide", headers=product_deck.owner.headers
    )
    assert (state.json()["index"], state.json()["changed_by"]) == (2, "agent")


async def test_search_and_slide_routes_serve_the_sessions_deck(
    api: httpx.AsyncClient, live: LiveSession, product_deck: ProductDeck, new_session: Sessions
) -> None:
    sid = live.session_id
    found = await api.get(
        f"/internal/v1/sessions/{sid}/search",
        params={"q": "how much does it cost per month"},
        headers=live.auth,
    )
    assert found.status_code == 200, found.text
    hits = found.json()["hits"]
    assert len(hits) == 3  # k defaults to 3
    assert (hits[0]["slide_index"], hits[0]["title"]) == (4, "Pricing")

    slide = await api.get(f"/internal/v1/sessions/{sid}/slides/4", headers=live.auth)
    assert slide.json() == {
        "index": 4,
        "title": "Pricing",
        "text": "Starter\nTeam\nEnterprise",
        "notes": "Plans start at 49 dollars per month for five seats; enterprise is custom "
        "with volume discounts and an annual contract.",
    }
    missing = await api.get(f"/internal/v1/sessions/{sid}/slides/9", headers=live.auth)
    assert (missing.status_code, missing.json()["error"]) == (422, "slide_out_of_range")
    assert "1 to 8" in missing.json()["message"]

    # The credential is scoped to its session; a tenant key is not a worker credential.
    other = await new_session(product_deck.deck_id)
    elsewhere = await api.get(
        f"/internal/v1/sessions/{other['session_id']}/search", params={"q": "x"}, headers=live.auth
    )
    assert elsewhere.status_code == 404
    with_key = await api.get(
        f"/internal/v1/sessions/{sid}/search", params={"q": "x"}, headers=product_deck.owner.headers
    )
    assert with_key.status_code == 401


async def test_a_session_without_a_deck_has_nothing_to_search(
    api: httpx.AsyncClient, new_session: Sessions, control_plane: EphemeralStack
) -> None:
    bare = await new_session(None)
    auth = {"Authorization": f"Bearer {await control_plane.worker_credential(bare['room'])}"}
    resp = await api.get(
        f"/internal/v1/sessions/{bare['session_id']}/search", params={"q": "pricing"}, headers=auth
    )
    assert (resp.status_code, resp.json()["error"]) == (409, "no_deck")


async def test_the_control_plane_says_which_questions_the_deck_covers(live: LiveSession) -> None:
    """The coverage verdict the presenter acts on: on-topic questions covered, off-topic not."""
    on_topic = [
        "How much does it cost?",
        "Is there an annual contract?",
        "Is our data encrypted?",
        "When does forecasting ship?",
        "How long does setup take?",
    ]
    off_topic = [
        "What's the weather in Paris?",
        "Who won the world cup?",
        "Can you recommend a good pasta recipe?",
        "What is the capital of Australia?",
    ]
    on = {q: await live.deck.search(q) for q in on_topic}
    off = {q: await live.deck.search(q) for q in off_topic}
    print("\non-topic:", json.dumps({q: r.confidence for q, r in on.items()}, indent=1))
    print("off-topic:", json.dumps({q: r.confidence for q, r in off.items()}, indent=1))
    assert all(r.covered and r.hits for r in on.values()), on
    assert not any(r.covered for r in off.values()), off


async def _say(session: AgentSession[None], text: str) -> str:
    result = await session.run(user_input=text)
    reply = result.events[-1].item
    assert reply.type == "message", result.events
    return reply.text_content or ""


async def test_the_offline_presenter_moves_the_real_slide_and_answers_from_the_deck(
    api: httpx.AsyncClient, live: LiveSession, product_deck: ProductDeck
) -> None:
    async def shown() -> tuple[int, str]:
        state = await api.get(
            f"/v1/sessions/{live.session_id}/slide", headers=product_deck.owner.headers
        )
        return state.json()["index"], state.json()["changed_by"]

    started = time.perf_counter()
    async with AgentSession[None](llm=OfflineResponder()) as session:
        await session.start(Presenter(deck=live.deck))

        result = await session.run(user_input="Next slide, please.")
        result.expect.next_event().is_function_call(name="next_slide")
        result.expect.next_event().is_function_call_output(
            output="Now on slide 2 of 8: The problem."
        )
        result.expect.next_event().is_message(role="assistant")
        assert await shown() == (2, "agent")

        assert await _say(session, "Go back to the part about pricing") == (
            "Now on slide 4 of 8: Pricing."
        )
        assert await _say(session, "go to slide 12") == (
            "Slide 12 is out of range: this deck has slides 1 to 8."
        )
        assert await shown() == (4, "agent")
        assert await _say(session, "previous slide") == "Now on slide 3 of 8: How it works."
        assert await _say(session, "Which slide is this?") == (
            "Showing slide 3 of 8: How it works."
        )

        answer = await _say(session, "Is there an annual contract?")
        assert answer.startswith("That's on slide 4, Pricing. ")
        assert "annual contract" in answer
        assert await _say(session, "Who won the world cup?") == DOESNT_COVER
        assert await shown() == (3, "agent")  # answering does not move the slide

        # Relative moves of more than one slide, and the deck's edge.
        assert await _say(session, "Skip three slides ahead.") == "Now on slide 6 of 8: Our team."
        assert await _say(session, "go back two slides") == "Now on slide 4 of 8: Pricing."
        assert await _say(session, "forward five slides") == "Now on slide 8 of 8: Questions?."
        assert (await _say(session, "two slides ahead")).startswith("Already on the last slide")
        assert await shown() == (8, "agent")
    print(
        f"\neleven offline turns against the control plane: {time.perf_counter() - started:.2f} s"
    )


async def test_a_retried_tool_call_moves_the_slide_once(live: LiveSession) -> None:
    first = await live.deck.change_slide("next", idempotency_key="tool-call_abc")
    again = await live.deck.change_slide("next", idempotency_key="tool-call_abc")
    assert (first.index, again.index, again.version) == (2, 2, first.version)
