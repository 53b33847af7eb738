"""Usage reconciles with what the providers saw: a real session on the cloud pipeline's fakes
(Deepgram, OpenAI, ElevenLabs, each a local server speaking its protocol) greets, hears "next
slide", moves and answers; then GET /v1/usage for that session holds the tokens the OpenAI fake
reported, the characters the ElevenLabs fake was sent, the audio the Deepgram fake received
(within the connection's lifetime, which Deepgram bills and the plugin reports), the presenter's
and the participant's minutes, and the local avatar's."""

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

from shared.devstack.probe import frame_rms
from shared.devstack.services import ManagedProcess
from shared.devstack.stack import EphemeralStack, TenantKey
from tests.e2e.conftest import upload_ready
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


@pytest.fixture(scope="module")
def cloud_worker(
    control_plane: EphemeralStack, cloud: Cloud, worker: ManagedProcess
) -> Iterator[ManagedProcess]:
    worker.stop()  # one worker per agent name: the session must reach this one
    proc = control_plane.start_worker(
        name="usage-worker",
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
    proc.stop()
    control_plane.revive_worker(worker)


@dataclass(frozen=True)
class Seen:
    """What the fakes had received before the session: the session's share is what follows."""

    usage: int
    requests: int
    audio_s: float


def _seen(cloud: Cloud) -> Seen:
    return Seen(
        len(cloud.openai.usage_reported),
        len(cloud.elevenlabs.requests),
        cloud.deepgram.audio_received_s,
    )


def _characters_sent(cloud: Cloud, before: Seen) -> tuple[int, int]:
    """Characters of text the ElevenLabs fake was sent to speak: over HTTP (the greeting, one
    request a sentence) and over its websocket (replies; each context's opening packet, a lone
    space carrying the voice settings, is not text to speak). And how many of the websocket's
    texts there were: the plugin ends each with a space of its own (the API wants one)."""
    total = separators = 0
    for request in cloud.elevenlabs.requests[before.requests :]:
        if request.path.endswith("/stream"):
            total += len(request.body["text"])
        for data in request.messages:
            if isinstance(data, dict) and "voice_settings" not in data and data.get("text"):
                total += len(data["text"])
                separators += 1
    return total, separators


async def _run_session(api: httpx.AsyncClient, owner: TenantKey, deck_id: str, cloud: Cloud) -> str:
    resp = await api.post(
        "/v1/sessions",
        headers=owner.headers,
        json={"deck_id": deck_id, "participant": {"identity": "ada", "name": "Ada"}},
    )
    assert resp.status_code == 201, resp.text
    session = resp.json()
    sid = session["session_id"]
    paused = await api.post(
        f"/v1/sessions/{sid}/slide",
        headers={**owner.headers, "Idempotency-Key": "usage-pause"},
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

    def on_attributes(changed: dict[str, str], _participant: rtc.Participant) -> None:
        nonlocal spoke
        state = changed.get("lk.agent.state")
        spoke = spoke or state == "speaking"
        if spoke and state == "listening" and not listening.done():
            listening.set_result(None)

    def on_metadata(_old: str, new: str) -> None:
        index = json.loads(new or "{}").get("podium", {}).get("slide", {}).get("index")
        if index == 2 and not moved.done():
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
        track = rtc.LocalAudioTrack.create_audio_track("mic", source)
        await room.local_participant.publish_track(
            track, rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
        )
        await within(listening, 60, "the agent never finished greeting")
        cloud.deepgram.script("Next slide, please.", after_audio_s=0.5)
        await speak(source, samples)
        await within(moved, 30, "the slide did not move to 2")
        await within(answered, 30, "the agent did not speak after the move")
        await listening_again(room)
    finally:
        for reader in readers:
            reader.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
        await room.disconnect()
        await api.post(f"/v1/sessions/{sid}/end", headers=owner.headers)
    return str(sid)


async def listening_again(room: rtc.Room, timeout_s: float = 20) -> None:
    """The presenter finished its answer (nothing left half-spoken to count)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        states = [p.attributes.get("lk.agent.state") for p in room.remote_participants.values()]
        if "listening" in states:
            return
        await asyncio.sleep(0.1)


async def _session_usage(
    api: httpx.AsyncClient, owner: TenantKey, sid: str, ready: Any
) -> dict[str, Any]:
    """The session's usage once the job's last report is in (it is sent as the job leaves)."""
    deadline = time.monotonic() + 30
    while True:
        resp = await api.get("/v1/usage", headers=owner.headers, params={"group_by": "session"})
        assert resp.status_code == 200, resp.text
        found = [s["usage"] for s in resp.json()["sessions"] if s["session_id"] == sid]
        if found and ready(found[0]):
            return dict(found[0])
        assert time.monotonic() < deadline, found
        await asyncio.sleep(0.5)


async def test_usage_reconciles_with_what_the_providers_received(
    api: httpx.AsyncClient,
    control_plane: EphemeralStack,
    cloud: Cloud,
    cloud_worker: ManagedProcess,
) -> None:
    owner = control_plane.create_tenant("usage-metering")
    deck_id = await upload_ready(api, owner, "acme.pptx", make_product_deck())
    oai = cloud.openai
    oai.llm.push_reply(tool_calls=[("next_slide", {})])
    oai.llm.push_reply(text="Here is slide two, the problem we solve.")
    before = _seen(cloud)

    sid = await _run_session(api, owner, deck_id, cloud)
    # the job's final report arrives as it leaves: wait for the room's end and the presenter's
    # departure to be counted, then read again so late provider metrics are in too
    usage = await _session_usage(
        api, owner, sid, lambda u: "agent" in u["participant_minutes"] and u["tts_characters"]
    )
    await asyncio.sleep(3)
    usage = await _session_usage(api, owner, sid, lambda u: True)

    reported = oai.usage_reported[before.usage :]
    assert reported, "the OpenAI fake reported no usage: did another worker take the session?"
    expected_tokens: dict[str, dict[str, int]] = {}
    for model, prompt, completion in reported:
        tokens = expected_tokens.setdefault(model, {"input": 0, "output": 0})
        tokens["input"] += prompt
        tokens["output"] += completion
    characters, separators = _characters_sent(cloud, before)
    audio_s = cloud.deepgram.audio_received_s - before.audio_s
    print(
        "reconciliation:",
        json.dumps(
            {
                "metered": usage,
                "openai_reported": expected_tokens,
                "elevenlabs_characters_sent": characters,
                "elevenlabs_separators": separators,
                "deepgram_audio_s_received": round(audio_s, 3),
            }
        ),
    )

    assert usage["llm_tokens"] == expected_tokens
    # The framework counts the text it asked for; the plugin sent it with one space after each
    # piece it streamed (its own separator, not the presenter's words).
    assert usage["tts_characters"] == {"ElevenLabs": characters - separators}
    assert separators >= 1  # the reply went over the websocket
    # Deepgram bills a live connection's whole lifetime, and the plugin reports it so: the
    # audio received plus the connection's opening and closing. The mic streams continuously
    # (silence too), so the two differ by about a second, not by how much was said.
    stt = usage["stt_audio_seconds"]["Deepgram"]
    assert audio_s > 1.0
    assert audio_s - 0.25 <= stt <= audio_s + 2.5, (stt, audio_s)
    people = usage["participant_minutes"]
    assert people["participant"] > 0 and people["agent"] > 0
    assert usage["session_minutes"] >= people["participant"]
    # the presenter shows Podium's own face; it is counted while the agent is in the room
    assert 0 < usage["avatar_minutes"]["local"] <= people["agent"] + 2 / 60
