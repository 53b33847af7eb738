"""What a real session leaves behind: a full conversation through a real room produces an
ordered, complete transcript and turn log with the tools the presenter called and the framework's
stage timings — and stopping the control plane for 5 s mid-session loses no turn. Replaying the
recorded turns with the offline responder reproduces the tool calls the presenter made."""

from __future__ import annotations

import asyncio
import io
import signal
import time
from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID

import av
import httpx
import numpy as np
import pytest

from agent_worker.replay import run, same_tools
from shared.devstack.services import ManagedProcess
from shared.devstack.stack import EphemeralStack
from tests.e2e.audience import Audience
from tests.e2e.conftest import ProductDeck, Sessions
from tests.webhook_receiver import Receiver, serve_receiver

OUTAGE_S = 5.0


@pytest.fixture
async def hooks() -> AsyncIterator[Receiver]:
    """The integrator's webhook endpoint."""
    async with serve_receiver() as found:
        yield found


async def _turns(api: httpx.AsyncClient, sid: str, headers: dict[str, str]) -> list[Any]:
    resp = await api.get(f"/v1/sessions/{sid}/turns", headers=headers)
    assert resp.status_code == 200, resp.text
    items: list[Any] = resp.json()["items"]
    return items


async def test_a_session_yields_an_ordered_complete_turn_log_through_a_control_plane_outage(
    api: httpx.AsyncClient,
    product_deck: ProductDeck,
    new_session: Sessions,
    control_plane: EphemeralStack,
    worker: ManagedProcess,
    hooks: Receiver,
) -> None:
    owner = product_deck.owner.headers
    endpoint = await api.post(
        "/v1/webhooks/endpoints",
        headers=owner,
        json={"url": hooks.url, "events": ["transcript.ready"]},
    )
    assert endpoint.status_code == 201, endpoint.text
    secret = endpoint.json()["secret"]
    session = await new_session(product_deck.deck_id, paused=True)
    sid = session["session_id"]
    async with Audience(session["livekit_url"], session["token"]) as ada:
        await ada.until(
            lambda: any(s.startswith("Hello, Ada") for s in ada.agent_said()), 60, "no greeting"
        )
        await ada.until_silent(1.0, 30)

        # A question the deck clearly answers (slide 4's notes): this test is about the turn log,
        # not about where the coverage verdict draws its line on a misheard word.
        asked, _ = await ada.say("Is there an annual contract?")
        await ada.until(
            lambda: any("slide 4" in s for s in ada.agent_said(asked)), 30, "no pricing answer"
        )
        await ada.until_silent(1.0, 30)

        # The control plane goes away; the user keeps talking to the presenter meanwhile.
        proc = control_plane.api_process
        assert proc is not None
        proc.signal(signal.SIGKILL)
        proc.stop()
        down_at = time.perf_counter()
        asked, _ = await ada.say("Tell me about the team.")
        await ada.until(lambda: ada.agent_said(asked), 30, "no answer while it was down")
        await asyncio.sleep(max(0.0, OUTAGE_S - (time.perf_counter() - down_at)))
        control_plane.start_control_plane(60, **control_plane._api_overrides)
        await ada.until_silent(1.0, 30)

        asked, _ = await ada.say("Go to the next slide.")
        await ada.until(lambda: ada.slide["index"] == 2, 30, "next slide did not happen")
        await ada.until_silent(1.0, 30)

    ended = await api.post(f"/v1/sessions/{sid}/end", headers=owner)
    assert ended.status_code == 200, ended.text
    ended_at = time.monotonic()

    # The integrator hears the transcript is ready once the worker sent its last records —
    # well before the 30 s fallback — and then reads it whole.
    await hooks.until(lambda: any(e["data"]["session_id"] == sid for e in hooks.events(secret)), 20)
    print(f"\ntranscript.ready {time.monotonic() - ended_at:.1f} s after the end")
    assert time.monotonic() - ended_at < 15
    await api.delete(f"/v1/webhooks/endpoints/{endpoint.json()['endpoint_id']}", headers=owner)
    for _ in range(60):  # the worker sends its last records as its job ends
        if len(turns := await _turns(api, sid, owner)) >= 3:
            break
        await asyncio.sleep(0.5)
    print("\nturns:", *[(t["number"], t["user_text"], t["agent_text"]) for t in turns], sep="\n  ")
    asked_in_order = [t["user_text"] for t in turns if t["user_text"]]
    assert len(asked_in_order) == 3, asked_in_order
    assert "contract" in asked_in_order[0].lower()
    assert "team" in asked_in_order[1].lower()
    assert "next" in asked_in_order[2].lower()
    assert [t["number"] for t in turns] == list(range(1, len(turns) + 1))

    pricing, outage, navigation = (t for t in turns if t["user_text"])
    assert [c["name"] for c in pricing["tool_calls"]] == ["search_slides"]
    assert "Pricing" in (pricing["tool_calls"][0]["output"] or "")
    assert 0 <= pricing["tool_calls"][0]["duration"] < 5  # the deck search, timed
    assert "slide 4" in (pricing["agent_text"] or "")
    # The framework's stage timings and who served each stage.
    timing = pricing["timings"]
    for stage in ("end_of_turn_delay", "transcription_delay", "llm_ttft", "e2e_latency"):
        assert timing[stage] is not None and timing[stage] >= 0, (stage, timing)
    assert {c["stage"] for c in pricing["calls"]} >= {"llm", "tts"}
    assert all(c["request_id"] for c in pricing["calls"] if c["stage"] == "llm")
    assert "llm" in pricing["providers"]
    # Navigation records the tool and the slide before and after.
    assert [c["name"] for c in navigation["tool_calls"]] == ["next_slide"]
    assert (navigation["slide_before"], navigation["slide_after"]) == (1, 2)
    assert outage["agent_text"]

    transcript = (await api.get(f"/v1/sessions/{sid}/transcript", headers=owner)).json()
    users = [i["text"] for i in transcript["items"] if i["role"] == "user"]
    assert users == asked_in_order
    vtt = await api.get(f"/v1/sessions/{sid}/transcript?format=vtt", headers=owner)
    assert vtt.text.startswith("WEBVTT") and "<v User>" in vtt.text

    # Replay every recorded turn in text mode: the same tools, the same slide moves.
    out = io.StringIO()
    results = await run(
        UUID(sid),
        api_url=control_plane.api_url,
        api_key=product_deck.owner.api_key,
        turn_number=None,
        llm_spec="local",
        plot_path=None,
        out=out,
    )
    print(out.getvalue())
    assert "tool search_slides" in out.getvalue()  # the waterfall shows where time went
    assert [same_tools(turn, replayed) for turn, replayed in results] == [True] * len(turns)
    assert [r.slide_after for _, r in results][-1] == 2


async def test_a_recorded_session_leaves_both_voices_in_storage(
    api: httpx.AsyncClient,
    product_deck: ProductDeck,
    control_plane: EphemeralStack,
    worker: ManagedProcess,
) -> None:
    owner = product_deck.owner.headers
    created = await api.post(
        "/v1/sessions",
        headers=owner,
        json={
            "deck_id": product_deck.deck_id,
            "record": True,
            "participant": {"identity": "ada", "name": "Ada"},
        },
    )
    assert created.status_code == 201, created.text
    session = created.json()
    sid = session["session_id"]
    paused = await api.post(
        f"/v1/sessions/{sid}/slide",
        headers={**owner, "Idempotency-Key": "rec-pause"},
        json={"action": "pause"},
    )
    assert paused.status_code == 200
    async with Audience(session["livekit_url"], session["token"]) as ada:
        await ada.until(
            lambda: any(s.startswith("Hello, Ada") for s in ada.agent_said()), 60, "no greeting"
        )
        await ada.until_silent(1.0, 30)
        asked, _ = await ada.say("How much does it cost?")
        await ada.until(lambda: ada.agent_said(asked), 30, "no answer")
        await ada.until_silent(1.0, 30)
    ended = await api.post(f"/v1/sessions/{sid}/end", headers=owner)
    assert ended.status_code == 200

    for _ in range(60):  # the last segment is uploaded as the presenter's job ends
        listed = await api.get(f"/v1/sessions/{sid}/recording", headers=owner)
        assert listed.status_code == 200, listed.text
        if listed.json()["items"]:
            break
        await asyncio.sleep(0.5)
    segments = listed.json()["items"]
    assert segments, "no recording"
    assert (await api.get(f"/v1/sessions/{sid}", headers=owner)).json()["recording_url"]

    frames: list[np.ndarray] = []
    for segment in segments:
        audio = await api.get(
            f"/v1/sessions/{sid}/recording/segments/{segment['seq']}", headers=owner
        )
        assert (audio.status_code, audio.content[:4]) == (200, b"OggS")
        with av.open(io.BytesIO(audio.content), mode="r") as container:
            frames += [f.to_ndarray() for f in container.decode(audio=0)]
            rate = container.streams.audio[0].rate
    samples = np.concatenate(frames, axis=1).astype(np.float64)  # planar: channels x samples
    seconds = samples.shape[1] / rate
    rms = np.sqrt(np.mean(samples**2, axis=1))
    print(f"\nrecording: {len(segments)} segments, {seconds:.1f} s, channel RMS {rms}")
    assert samples.shape[0] == 2 and seconds > 4
    assert all(level > 0.005 for level in rms), rms  # the user and the presenter both heard
