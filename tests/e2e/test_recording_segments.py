"""A recorded session on the real stack (control plane, livekit-server, two workers with 3 s
segments): recording segments arrive while the session runs, not only at its end; when the
presenting worker is SIGKILLed and another picks the session up, the segments stored before the
kill are still listed, unchanged, and the new job's follow them — each a playable stereo file."""

from __future__ import annotations

import asyncio
import io
import signal
import time
from collections.abc import Iterator
from typing import Any

import av
import httpx
import numpy as np
import pytest

from agent_worker.narration import RESUMED
from shared.devstack.services import ManagedProcess
from shared.devstack.stack import EphemeralStack, logged
from tests.e2e.audience import Audience
from tests.e2e.conftest import ProductDeck

SEGMENT_S = 3


@pytest.fixture
def recording_workers(
    control_plane: EphemeralStack, worker: ManagedProcess
) -> Iterator[list[ManagedProcess]]:
    """Two workers cutting 3 s segments; the shared worker (60 s) is away meanwhile, so one
    of these takes the session."""
    worker.stop()
    started = [
        control_plane.start_worker(
            name=f"recording-worker-{i}", PODIUM_RECORDING_SEGMENT_SECONDS=str(SEGMENT_S)
        )
        for i in range(2)
    ]
    yield started
    for proc in started:
        proc.stop()
    control_plane.revive_worker(worker)  # later tests use the shared worker


async def _segments(api: httpx.AsyncClient, sid: str, headers: dict[str, str]) -> list[Any]:
    listed = await api.get(f"/v1/sessions/{sid}/recording", headers=headers)
    assert listed.status_code == 200, listed.text
    items: list[Any] = listed.json()["items"]
    return items


def _decode(audio: bytes) -> np.ndarray:
    with av.open(io.BytesIO(audio), mode="r") as container:
        frames = [f.to_ndarray() for f in container.decode(audio=0)]
    return np.concatenate(frames, axis=1)


async def test_segments_arrive_during_the_session_and_survive_the_loss_of_its_worker(
    api: httpx.AsyncClient,
    product_deck: ProductDeck,
    control_plane: EphemeralStack,
    recording_workers: list[ManagedProcess],
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
    async with Audience(session["livekit_url"], session["token"]) as ada:
        await ada.until(
            lambda: any(s.startswith("Hello, Ada") for s in ada.agent_said()), 60, "no greeting"
        )
        # The presenter narrates; segments are stored while it does.
        deadline = time.monotonic() + 30
        while len(before := await _segments(api, sid, owner)) < 2:
            assert time.monotonic() < deadline, f"no segments during the session: {before}"
            await asyncio.sleep(0.5)
        holder = next(w for w in recording_workers if logged(w.log_path, sid, 0))
        before = await _segments(api, sid, owner)
        holder.signal(signal.SIGKILL)  # the whole process group: server and job processes
        holder.stop()
        await ada.until(
            lambda: next((line for line in ada.lines if line.text == RESUMED), None),
            60,
            "no worker picked the session up",
        )
        deadline = time.monotonic() + 30
        while len(after := await _segments(api, sid, owner)) < len(before) + 2:
            assert time.monotonic() < deadline, f"the new job's segments did not follow: {after}"
            await asyncio.sleep(0.5)
    ended = await api.post(f"/v1/sessions/{sid}/end", headers=owner)
    assert ended.status_code == 200, ended.text

    after = await _segments(api, sid, owner)
    print(
        f"\n{len(before)} segments before the kill, {len(after)} in all:",
        *[(s["seq"], s["started_at"], s["duration_s"], s["bytes"]) for s in after],
        sep="\n  ",
    )
    assert [s["seq"] for s in after] == list(range(len(after)))
    keep = ("seq", "started_at", "duration_s", "bytes")
    assert [{k: s[k] for k in keep} for s in after[: len(before)]] == [
        {k: s[k] for k in keep} for s in before
    ], "the earlier job's segments changed"
    starts = [s["started_at"] for s in after]
    assert starts == sorted(starts)
    # The new job started after the last segment the killed one stored.
    assert after[len(before)]["started_at"] >= before[-1]["started_at"] + before[-1]["duration_s"]
    for segment in (after[0], after[len(before)]):
        audio = await api.get(segment["url"])  # the signed link, no API key
        assert (audio.status_code, audio.content[:4]) == (200, b"OggS")
        samples = _decode(audio.content)
        assert samples.shape[0] == 2
        assert samples.shape[1] / 48_000 == pytest.approx(segment["duration_s"], abs=0.05)
