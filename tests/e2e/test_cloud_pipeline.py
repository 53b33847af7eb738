"""A worker configured for the cloud providers — Deepgram STT, OpenAI LLM, ElevenLabs TTS, each
a local server that speaks its wire protocol — runs a spoken "next slide" through a real LiveKit
room: the real plugins hear it, call the tool, move everyone's slide and speak. When the model
fails every request, the offline responder behind it still moves the slide and answers, opening
with an apology."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from livekit import rtc

from agent_worker.providers import APOLOGY
from shared.devstack.probe import frame_rms
from shared.devstack.services import ManagedProcess
from shared.devstack.stack import EphemeralStack, TenantKey
from tests.e2e.speech import espeak, speak, within
from tests.factories import make_product_deck
from tests.fakes import DeepgramFake, ElevenLabsFake, OpenAIFake


@dataclass(frozen=True)
class Cloud:
    openai: OpenAIFake
    deepgram: DeepgramFake
    elevenlabs: ElevenLabsFake


@pytest.fixture(scope="module")
async def cloud() -> AsyncIterator[Cloud]:
    async with OpenAIFake() as oai, DeepgramFake() as dg, ElevenLabsFake() as eleven:
        yield Cloud(oai, dg, eleven)


# This module sorts before the other e2e modules, so it runs before the session's offline
# `worker` starts: both register the same agent name, and a session is dispatched to only one.
@pytest.fixture(scope="module")
def cloud_worker(control_plane: EphemeralStack, cloud: Cloud) -> Iterator[ManagedProcess]:
    proc = control_plane.start_worker(
        name="cloud-worker",
        PODIUM_STT_PROVIDER="deepgram",
        PODIUM_DEEPGRAM_API_KEY=cloud.deepgram.api_key,
        PODIUM_DEEPGRAM_BASE_URL=cloud.deepgram.listen_url,
        PODIUM_LLM_PROVIDER="openai",
        PODIUM_OPENAI_API_KEY=cloud.openai.api_key,
        PODIUM_OPENAI_BASE_URL=f"{cloud.openai.url}/v1",
        PODIUM_TTS_PROVIDER="elevenlabs",
        PODIUM_ELEVENLABS_API_KEY=cloud.elevenlabs.api_key,
        PODIUM_ELEVENLABS_BASE_URL=cloud.elevenlabs.base_url,
    )
    yield proc
    proc.stop()  # before the offline worker starts taking this agent name's dispatches


@pytest.fixture(scope="module")
async def deck(control_plane: EphemeralStack) -> tuple[TenantKey, str]:
    owner = control_plane.create_tenant("cloud-pipeline")
    async with httpx.AsyncClient(base_url=control_plane.api_url, timeout=10) as api:
        resp = await api.post(
            "/v1/decks", headers=owner.headers, files={"file": ("acme.pptx", make_product_deck())}
        )
        assert resp.status_code == 202, resp.text
        deck_id = str(resp.json()["deck_id"])
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            state = (await api.get(f"/v1/decks/{deck_id}", headers=owner.headers)).json()
            if state["status"] in ("ready", "failed"):
                assert state["status"] == "ready", state
                return owner, deck_id
            await asyncio.sleep(0.2)
    raise AssertionError("the product deck was not ingested in 60 s")


async def _say_next_slide(
    api: httpx.AsyncClient, owner: TenantKey, deck_id: str, cloud: Cloud
) -> dict[str, Any]:
    """Join a new session, wait out the greeting, say "next slide" (Deepgram's fake transcribes
    it), and return once the slide is 2 and the agent's voice is heard after the move."""
    resp = await api.post(
        "/v1/sessions",
        headers=owner.headers,
        json={"deck_id": deck_id, "participant": {"identity": "ada", "name": "Ada"}},
    )
    assert resp.status_code == 201, resp.text
    session = resp.json()
    # Paused before anyone joins: this is about one turn, not the narration.
    paused = await api.post(
        f"/v1/sessions/{session['session_id']}/slide",
        headers={**owner.headers, "Idempotency-Key": "test-pause"},
        json={"action": "pause"},
    )
    assert paused.status_code == 200, paused.text
    samples, rate = espeak("Next slide, please.")
    room = rtc.Room()
    loop = asyncio.get_running_loop()
    listening: asyncio.Future[None] = loop.create_future()
    moved: asyncio.Future[None] = loop.create_future()
    answered: asyncio.Future[None] = loop.create_future()
    readers: list[asyncio.Task[None]] = []
    spoke = False

    def slide_index() -> int | None:
        index = json.loads(room.metadata or "{}").get("podium", {}).get("slide", {}).get("index")
        return int(index) if index is not None else None

    def on_attributes(changed: dict[str, str], _participant: rtc.Participant) -> None:
        nonlocal spoke
        state = changed.get("lk.agent.state")
        spoke = spoke or state == "speaking"
        if spoke and state == "listening" and not listening.done():
            listening.set_result(None)

    def on_metadata(_old: str, _new: str) -> None:
        if slide_index() == 2 and not moved.done():
            moved.set_result(None)

    async def read(track: rtc.Track) -> None:
        stream = rtc.AudioStream(track)
        try:
            async for event in stream:
                if moved.done() and frame_rms(event.frame) >= 300 and not answered.done():
                    answered.set_result(None)
        finally:
            await stream.aclose()

    def on_track(track: rtc.Track, *_: object) -> None:
        if track.kind == rtc.TrackKind.KIND_AUDIO:
            readers.append(asyncio.create_task(read(track)))

    room.on("participant_attributes_changed", on_attributes)
    room.on("room_metadata_changed", on_metadata)
    room.on("track_subscribed", on_track)
    source = rtc.AudioSource(rate, 1)
    try:
        await room.connect(session["livekit_url"], session["token"])
        assert slide_index() == 1
        track = rtc.LocalAudioTrack.create_audio_track("mic", source)
        await room.local_participant.publish_track(
            track, rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
        )
        await within(listening, 60, "the agent never finished greeting")
        # Deepgram's fake does not recognise speech: it transcribes the script against the
        # audio it receives, here half a second into the spoken words
        cloud.deepgram.script("Next slide, please.", after_audio_s=0.5)
        await speak(source, samples)
        await within(moved, 30, "the slide did not move to 2")
        await within(answered, 30, "the agent did not speak after the move")
    finally:
        for reader in readers:
            reader.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
        await room.disconnect()
        await api.post(f"/v1/sessions/{session['session_id']}/end", headers=owner.headers)
    state = await api.get(f"/v1/sessions/{session['session_id']}/slide", headers=owner.headers)
    assert (state.json()["index"], state.json()["changed_by"]) == (2, "agent")
    return dict(session)


async def test_cloud_providers_hear_navigate_and_speak(
    api: httpx.AsyncClient,
    deck: tuple[TenantKey, str],
    cloud: Cloud,
    cloud_worker: ManagedProcess,
) -> None:
    oai, eleven = cloud.openai, cloud.elevenlabs
    oai.llm.push_reply(tool_calls=[("next_slide", {})])
    oai.llm.push_reply(text="Here is slide two, the problem we solve.")
    before = len(oai.chat_requests)
    await _say_next_slide(api, *deck, cloud)

    chats = oai.chat_requests[before:]
    assert chats, "the OpenAI fake was never asked: did another worker take the session?"
    assert chats[0]["model"] == "gpt-4o-mini"
    assert chats[0]["messages"][-1] == {"role": "user", "content": "Next slide, please."}
    assert "next_slide" in [t["function"]["name"] for t in chats[0]["tools"]]
    assert chats[1]["messages"][-1]["role"] == "tool"
    assert "Here is slide two, the problem we solve." in eleven.spoken
    assert cloud.deepgram.connections  # the user was heard through Deepgram


async def test_when_the_model_fails_the_presenter_apologises_and_still_answers(
    api: httpx.AsyncClient,
    deck: tuple[TenantKey, str],
    cloud: Cloud,
    cloud_worker: ManagedProcess,
) -> None:
    oai, eleven = cloud.openai, cloud.elevenlabs
    oai.fail_next(status=500, times=100)
    spoken_before, asked_before = len(eleven.spoken), len(oai.chat_requests)
    try:
        await _say_next_slide(api, *deck, cloud)
    finally:
        oai.faults._failures.clear()  # leave the fake healthy for whoever is next

    assert len(oai.chat_requests) > asked_before  # the model was tried first
    apologies = [s for s in eleven.spoken[spoken_before:] if s.startswith(APOLOGY)]
    assert apologies, eleven.spoken[spoken_before:]
