"""Graceful drain, end to end: SIGTERM a worker that holds a live session. It stops taking jobs
(readiness 503, the fleet view says draining), its session goes on — the presenter still
answers and moves the slide — new sessions go to another worker, and the process exits 0 once
its session ends.

The module runs its own stack (Postgres, Redis, livekit-server, control plane) so that no
other test's worker can take the sessions this test places on purpose.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from livekit import rtc

from shared.devstack.probe import frame_rms, listen_for_agent_voice
from shared.devstack.services import ManagedProcess, free_port
from shared.devstack.stack import EphemeralStack, TenantKey
from shared.settings import DEV_OPS_TOKEN
from tests.conftest import TEST_LOGS
from tests.e2e.speech import espeak, speak, within
from tests.factories import make_product_deck

OPS = {"Authorization": f"Bearer {DEV_OPS_TOKEN}"}


@dataclass
class Worker:
    name: str
    process: ManagedProcess
    ops_url: str

    def sigterm(self) -> None:
        """SIGTERM to the worker's main process only, as the kubelet sends it to PID 1."""
        assert self.process.proc is not None
        os.kill(self.process.proc.pid, signal.SIGTERM)

    def exit_code(self, timeout_s: float) -> int | None:
        assert self.process.proc is not None
        try:
            return self.process.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            return None


@pytest.fixture(scope="module")
def fleet_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EphemeralStack]:
    base = tmp_path_factory.mktemp("drain")
    logs = Path(TEST_LOGS) / "drain" if TEST_LOGS else None
    with EphemeralStack(base, logs=logs) as stack:
        stack.start_control_plane(PODIUM_METRICS_REFRESH_SECONDS="1")
        yield stack


def start_worker(stack: EphemeralStack, name: str) -> Worker:
    ops_port = free_port()
    proc = stack.start_worker(
        name,
        PODIUM_WORKER_NAME=name,
        PODIUM_OPS_PORT=str(ops_port),
        PODIUM_HEARTBEAT_INTERVAL_SECONDS="1",
        PODIUM_MAX_SESSIONS="2",
    )
    return Worker(name, proc, f"http://127.0.0.1:{ops_port}")


@pytest.fixture(scope="module")
async def owner(fleet_stack: EphemeralStack) -> tuple[TenantKey, str]:
    """A tenant and a ready deck, so the drained session runs the full voice loop."""
    tenant = fleet_stack.create_tenant("drain")
    async with httpx.AsyncClient(base_url=fleet_stack.api_url, timeout=10) as api:
        resp = await api.post(
            "/v1/decks", headers=tenant.headers, files={"file": ("acme.pptx", make_product_deck())}
        )
        assert resp.status_code == 202, resp.text
        deck_id = str(resp.json()["deck_id"])
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            deck = (await api.get(f"/v1/decks/{deck_id}", headers=tenant.headers)).json()
            if deck["status"] in ("ready", "failed"):
                assert deck["status"] == "ready", deck
                return tenant, deck_id
            await asyncio.sleep(0.2)
    raise AssertionError("the deck was not ingested in 60 s")


@pytest.fixture
async def api(fleet_stack: EphemeralStack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=fleet_stack.api_url, timeout=10) as client:
        yield client


async def fleet(api: httpx.AsyncClient) -> dict[str, dict[str, Any]]:
    resp = await api.get("/v1/fleet", headers=OPS)
    assert resp.status_code == 200, resp.text
    return {w["worker"]: w for w in resp.json()["workers"]}


async def eventually(check: Any, seconds: float, failure: str) -> Any:
    """Poll an async ``check`` until it returns something truthy."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if result := await check():
            return result
        await asyncio.sleep(0.2)
    raise AssertionError(f"{failure} within {seconds} s")


class Participant:
    """Ada in a session's room: hears the agent, sees the slide, speaks through a mic track."""

    def __init__(self) -> None:
        self.room = rtc.Room()
        loop = asyncio.get_running_loop()
        self.greeted: asyncio.Future[None] = loop.create_future()
        self.voice_at: list[float] = []
        self._spoke = False
        self.states: list[tuple[float, str]] = []  # the agent's lk.agent.state, for failures
        self._readers: list[asyncio.Task[None]] = []
        self.room.on("participant_attributes_changed", self._on_attributes)
        self.room.on("track_subscribed", self._on_track)

    def slide_index(self) -> int | None:
        meta = json.loads(self.room.metadata or "{}")
        index = meta.get("podium", {}).get("slide", {}).get("index")
        return int(index) if index is not None else None

    def agent_identities(self) -> list[str]:
        return [
            p.identity
            for p in self.room.remote_participants.values()
            if p.kind == rtc.ParticipantKind.PARTICIPANT_KIND_AGENT
        ]

    def _on_attributes(self, changed: dict[str, str], _: rtc.Participant) -> None:
        state = changed.get("lk.agent.state")
        if state is not None:
            self.states.append((time.perf_counter(), state))
        self._spoke = self._spoke or state == "speaking"
        if self._spoke and state == "listening" and not self.greeted.done():
            self.greeted.set_result(None)

    def _on_track(self, track: rtc.Track, *_: object) -> None:
        if track.kind == rtc.TrackKind.KIND_AUDIO:
            self._readers.append(asyncio.create_task(self._read(track)))

    async def _read(self, track: rtc.Track) -> None:
        stream = rtc.AudioStream(track)
        try:
            async for event in stream:
                if frame_rms(event.frame) >= 300:
                    self.voice_at.append(time.perf_counter())
        finally:
            await stream.aclose()

    async def join(self, session: dict[str, Any], rate: int) -> rtc.AudioSource:
        await self.room.connect(session["livekit_url"], session["token"])
        source = rtc.AudioSource(rate, 1)
        track = rtc.LocalAudioTrack.create_audio_track("mic", source)
        await self.room.local_participant.publish_track(
            track, rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
        )
        return source

    async def leave(self) -> None:
        for reader in self._readers:
            reader.cancel()
        await asyncio.gather(*self._readers, return_exceptions=True)
        await self.room.disconnect()


async def test_sigterm_drains_a_worker_without_cutting_its_session(
    fleet_stack: EphemeralStack, owner: tuple[TenantKey, str], api: httpx.AsyncClient
) -> None:
    tenant, deck_id = owner
    workers = [start_worker(fleet_stack, "drain-a"), start_worker(fleet_stack, "drain-b")]
    async with httpx.AsyncClient(timeout=2) as probe:
        for w in workers:
            # readiness waits for a warm job process: a session needs no cold start
            await eventually(
                lambda w=w: _status(probe, f"{w.ops_url}/readyz", 200),
                60,
                f"{w.name} never became ready (warm)",
            )
        view = await eventually(
            lambda: _all_ready(api, [w.name for w in workers]), 10, "no ready heartbeats"
        )
        assert all(view[w.name]["idle_processes"] >= 1 for w in workers)

        # Session 1, with Ada in the room and the greeting done. Presentation paused, so the
        # slide only moves when Ada asks: a turn the presenter must take.
        resp = await api.post(
            "/v1/sessions",
            headers=tenant.headers,
            json={"deck_id": deck_id, "participant": {"identity": "ada", "name": "Ada"}},
        )
        assert resp.status_code == 201, resp.text
        first = resp.json()
        pause = await api.post(
            f"/v1/sessions/{first['session_id']}/slide",
            headers={**tenant.headers, "Idempotency-Key": "drain-pause"},
            json={"action": "pause"},
        )
        assert pause.status_code == 200, pause.text
        samples, rate = espeak("Next slide, please.")
        ada = Participant()
        source = await ada.join(first, rate)
        second: dict[str, Any] | None = None
        try:
            await within(ada.greeted, 60, "the agent never finished greeting")

            async def holder_of_session_1() -> str | None:
                view = await fleet(api)
                return next((n for n, w in view.items() if first["room"] in w["rooms"]), None)

            held_by = await eventually(holder_of_session_1, 10, "no worker reported session 1")
            x = next(w for w in workers if w.name == held_by)  # the worker we drain
            y = next(w for w in workers if w.name != held_by)  # the one that stays
            agents_before = ada.agent_identities()
            assert len(agents_before) == 1
            serving = (await probe.get(f"{x.ops_url}/metrics")).text
            assert _sample(serving, "podium_worker_active_jobs") == 1
            assert _sample(serving, "podium_worker_draining") == 0
            assert _sample(serving, "podium_worker_load") == 0.5  # 1 of 2 slots

            # --- SIGTERM the worker that holds session 1 ---
            signalled_at = time.perf_counter()
            x.sigterm()
            await eventually(
                lambda: _status(probe, f"{x.ops_url}/readyz", 503), 3, "readiness did not fail"
            )
            draining = await eventually(
                lambda: _draining(api, x.name), 5, "the fleet view did not show it draining"
            )
            assert first["room"] in draining["rooms"]
            not_ready_s = time.perf_counter() - signalled_at
            drained = (await probe.get(f"{x.ops_url}/metrics")).text
            assert _sample(drained, "podium_worker_draining") == 1
            assert _sample(drained, "podium_worker_active_jobs") == 1

            # Session 1 goes on: the draining worker's presenter hears Ada, thinks and answers
            # her, the same agent throughout, and logs the turn. (Whether Whisper makes out
            # "next slide" from espeak on a loaded box is the voice loop's business, not the
            # drain's: the slide is reported, not required.)
            assert ada.slide_index() == 1
            said_at = time.perf_counter()
            await speak(source, samples)
            try:
                await eventually(
                    _async(lambda: any(t > said_at and st == "thinking" for t, st in ada.states)),
                    30,
                    "the draining worker's presenter did not take Ada's turn",
                )
                await eventually(
                    _async(lambda: any(t > said_at for t in ada.voice_at)),
                    30,
                    "the draining worker's presenter did not answer",
                )
            except AssertionError as exc:
                states = [(round(t - said_at, 2), st) for t, st in ada.states]
                raise AssertionError(f"{exc}; agent states since speech: {states}") from None

            async def logged_turn() -> dict[str, Any] | None:
                page = await api.get(
                    f"/v1/sessions/{first['session_id']}/turns", headers=tenant.headers
                )
                assert page.status_code == 200, page.text
                return next((t for t in page.json()["items"] if t.get("user_text")), None)

            heard_turn = await eventually(logged_turn, 20, "the turn was not logged")
            assert x.process.alive()
            assert ada.agent_identities() == agents_before

            # New sessions go to the other worker meanwhile.
            t0 = time.perf_counter()
            resp = await api.post(
                "/v1/sessions", headers=tenant.headers, json={"participant": {"name": "Bo"}}
            )
            assert resp.status_code == 201, resp.text
            second = resp.json()
            heard = await listen_for_agent_voice(
                second["livekit_url"], second["token"], timeout_s=30, started_at=t0
            )

            async def y_holds_it() -> dict[str, dict[str, Any]] | None:
                view = await fleet(api)
                return view if second["room"] in view[y.name]["rooms"] else None

            view = await eventually(y_holds_it, 5, "the other worker did not report session 2")
            assert second["room"] not in view[x.name]["rooms"]
            assert x.process.alive()
            assert ada.agent_identities() == agents_before
        finally:
            await ada.leave()

    # The session ends naturally: then, and only then, the drained worker exits — with 0.
    ended_at = time.perf_counter()
    ended = await api.post(f"/v1/sessions/{first['session_id']}/end", headers=tenant.headers)
    assert ended.status_code == 200, ended.text
    code = await asyncio.to_thread(x.exit_code, 60)
    assert code == 0, f"{x.name} exited with {code}; see {x.process.log_path}"
    exit_s = time.perf_counter() - ended_at
    log = x.process.log_path.read_text()
    assert "drained, no jobs running" in log
    assert "drain timed out" not in log
    assert x.name not in await fleet(api)  # it said goodbye instead of ageing out

    # The control plane saw both joins (session created -> agent joined).
    async def joins_counted() -> bool:
        text = (await api.get("/metrics")).text
        return (_sample(text, "podium_session_join_seconds_count") or 0) >= 2

    await eventually(joins_counted, 10, "the join-time histogram did not count both joins")

    # ...and the latency of Ada's turn, from the turn log the draining worker sent.
    async def turn_timed() -> float | None:
        text = (await api.get("/metrics")).text
        count = _sample(text, "podium_turn_latency_seconds_count") or 0
        return (_sample(text, "podium_turn_latency_seconds_sum") or 0) / count if count else None

    turn_latency_s = await eventually(turn_timed, 20, "no turn latency from the turn log")

    # The other worker kept serving throughout.
    assert y.process.alive()
    assert second is not None
    await api.post(f"/v1/sessions/{second['session_id']}/end", headers=tenant.headers)
    print(
        f"\ndrain: readiness 503 and fleet 'draining' {not_ready_s:.2f} s after SIGTERM; "
        f"session 2 on the other worker heard after {heard.first_voice_s:.2f} s; "
        f"the drained worker exited {exit_s:.2f} s after session 1 ended; mean turn latency "
        f"(worker-measured, from the turn log) {turn_latency_s:.2f} s; the draining presenter "
        f"heard {heard_turn['user_text']!r}, slide {heard_turn.get('slide_before')} -> "
        f"{heard_turn.get('slide_after')}"
    )


async def _status(probe: httpx.AsyncClient, url: str, code: int) -> bool:
    return (await probe.get(url)).status_code == code


async def _all_ready(api: httpx.AsyncClient, names: list[str]) -> dict[str, dict[str, Any]] | None:
    view = await fleet(api)
    ok = all(n in view and not view[n]["draining"] and view[n]["livekit_worker_id"] for n in names)
    return view if ok else None


def _sample(text: str, name: str) -> float | None:
    match = re.search(rf"^{re.escape(name)} ([0-9.e+-]+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else None


async def _draining(api: httpx.AsyncClient, name: str) -> dict[str, Any] | None:
    me = (await fleet(api)).get(name)
    return me if me is not None and me["draining"] else None


def _async(check: Any) -> Any:
    async def wrapped() -> Any:
        return check()

    return wrapped
