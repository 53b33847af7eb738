"""Several nodes of everything, and one fault at a time: two livekit-server nodes in LiveKit's
multi-node mode, two control-plane replicas on one Postgres and Redis, two workers, each kind
behind one address (``shared/devstack/multinode.py``). Two sessions run across them, each with a
participant in a real room; slide changes are made by the integrator (through the balancer and
each replica), by the participants (their token) and by the presenter (asked aloud), and the
participants ask questions the presenter answers. Then, one at a time: a worker is SIGKILLed, a
control plane is SIGKILLed, the livekit node holding a room is SIGKILLed, Redis is flushed and
restarted empty, Postgres is restarted. After each, both sessions resume (the presenter answers
and a slide change reaches the room), and at the end every slide version a client was answered
200 for or saw in its room, and every answer a participant heard, is in Postgres.

The module runs its own stack: it kills processes no other test may depend on.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from redis.asyncio import Redis

from agent_worker.narration import RESUMED
from shared.devstack.multinode import MultiNodeStack
from shared.devstack.stack import TenantKey
from shared.settings import DEV_OPS_TOKEN
from tests.conftest import TEST_LOGS
from tests.e2e.audience import Audience
from tests.e2e.conftest import upload_ready
from tests.factories import make_product_deck

# Quarantined from 2026-12-07 (morning) to the evening: it failed when its phases ran faster
# than 60 s apart. A presenter lost again within 60 s of a re-dispatch was never sent again
# (the quiet period meant for the other signal about the same loss; resume.py now ends it
# once the new job reports), and a Postgres restart slower than the job silence period
# replaced every presenter (the internal alive route keeps the job that owns the session).

OPS = {"Authorization": f"Bearer {DEV_OPS_TOKEN}"}
QUESTION = "Is there an annual contract?"  # slide 4's notes answer it


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MultiNodeStack]:
    logs = Path(TEST_LOGS) / "multinode" if TEST_LOGS else None
    with MultiNodeStack(tmp_path_factory.mktemp("multinode"), nodes=2, logs=logs) as running:
        running.start_control_planes(2)
        for i in range(2):
            running.start_worker(f"mn-worker-{i}", PODIUM_HEARTBEAT_INTERVAL_SECONDS="1")
        yield running


@pytest.fixture
async def api(stack: MultiNodeStack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=stack.api_url, timeout=15) as client:
        yield client


@dataclass
class Live:
    """One session and what its participant was told and shown."""

    sid: str
    room: str
    token: str
    ada: Audience
    acked: set[int] = field(default_factory=set)  # versions answered 200
    answers: list[list[str]] = field(default_factory=list)  # what the presenter answered
    refused: list[str] = field(default_factory=list)  # answers other than 200, sent again


async def _change(
    api: httpx.AsyncClient, url: str, headers: dict[str, str], live: Live, seconds: float = 30
) -> int:
    """One slide change, sent again with the same key until it is answered 200."""
    key = uuid.uuid4().hex
    action = "next"
    deadline = time.monotonic() + seconds
    while True:
        try:
            resp = await api.post(
                url, headers={**headers, "Idempotency-Key": key}, json={"action": action}
            )
            if resp.status_code == 200:
                version = int(resp.json()["version"])
                live.acked.add(version)
                return version
            if resp.status_code == 409 and resp.json()["error"] == "no_next_slide":
                key, action = uuid.uuid4().hex, "first"  # the deck has 8 slides: start over
                continue
            assert resp.status_code in (502, 503), resp.text  # retryable, never a 500
            live.refused.append(str(resp.status_code))
        except httpx.TransportError as exc:
            live.refused.append(type(exc).__name__)
        assert time.monotonic() < deadline, f"no slide change was answered in {seconds} s"
        await asyncio.sleep(0.5)


async def _changes(
    stack: MultiNodeStack, api: httpx.AsyncClient, owner: TenantKey, live: Live
) -> None:
    """A change through the balancer, one through each replica, one by the participant; the
    room shows the last of them."""
    integrator = f"/v1/sessions/{live.sid}/slide"
    await _change(api, integrator, owner.headers, live)
    for i in range(len(stack.control_planes)):
        if stack.control_planes[i].alive():
            await _change(api, stack.replica_url(i) + integrator, owner.headers, live)
    last = await _change(
        api, "/v1/participant/slide", {"Authorization": f"Bearer {live.token}"}, live
    )
    await live.ada.until(
        lambda: live.ada.slide.get("version", 0) >= last, 30, "the room did not show the change"
    )


def _answers(ada: Audience, since: float) -> list[str]:
    """What the presenter said since, but for a new presenter's announcement that it is back."""
    return [line for line in ada.agent_said(since) if line != RESUMED]


async def _ask(live: Live, text: str = QUESTION) -> None:
    ada = live.ada
    for attempt in (1, 2):
        await ada.until_silent(1.0, 60)
        asked, _ = await ada.say(text)
        try:
            await ada.until(partial(_answers, ada, asked), 45, "the presenter did not answer")
            break
        except AssertionError:
            # Only a presenter replaced while it listened (a loaded machine can keep a job
            # from reporting for the silence period) may miss the question: ask it again.
            if attempt == 2 or RESUMED not in ada.agent_said(asked):
                raise
    await ada.until_silent(1.0, 60)
    live.answers.append(_answers(ada, asked))


async def _resumes(
    stack: MultiNodeStack, api: httpx.AsyncClient, owner: TenantKey, sessions: list[Live]
) -> None:
    """Both sessions go on: slide changes reach the rooms and the presenters answer."""
    for live in sessions:
        await _changes(stack, api, owner, live)
    await asyncio.gather(*(_ask(live) for live in sessions))


async def _holder(api: httpx.AsyncClient, stack: MultiNodeStack, room: str) -> int:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        resp = await api.get("/v1/fleet", headers=OPS)
        if resp.status_code == 200:
            for w in resp.json()["workers"]:
                if room in w["rooms"]:
                    return next(i for i, p in enumerate(stack.workers) if p.name == w["worker"])
        await asyncio.sleep(0.5)
    raise AssertionError(f"no worker lists {room}")


async def _room_node(stack: MultiNodeStack, room: str) -> int:
    """The livekit node the room lives on, from LiveKit's own routing table in its Redis."""
    redis = Redis.from_url(stack.livekit_redis.url())
    try:
        raw = await redis.hget("room_node_map", room)
        node_id = raw.decode() if isinstance(raw, bytes) else ""
    finally:
        await redis.aclose()
    assert node_id, f"LiveKit has no node for {room}"
    return next(
        i
        for i, n in enumerate(stack.nodes)
        if f'"nodeID": "{node_id}"' in n.process.log_path.read_text()
    )


def _refusals(sessions: list[Live]) -> str:
    """The calls refused so far (answered 503, or no connection), each sent again."""
    return str(dict(Counter(code for live in sessions for code in live.refused)))


def _said(ada: Audience, start: str, since: float = 0.0) -> bool:
    return any(line.startswith(start) for line in ada.agent_said(since))


def _flat(text: str | None) -> str:
    return " ".join((text or "").split())


def _unstored(answers: list[list[str]], turns: list[dict[str, Any]]) -> list[list[str]]:
    """The heard answers no stored turn holds, each turn standing for one answer only (the
    same question gets the same words, so seven identical answers need seven turns)."""
    unused = [_flat(t.get("agent_text")) for t in turns]
    missing = []
    for heard in answers:
        match = next(
            (i for i, text in enumerate(unused) if any(_flat(line) in text for line in heard)),
            None,
        )
        if match is None:
            missing.append(heard)
        else:
            del unused[match]
    return missing


async def test_sessions_across_nodes_survive_one_fault_at_a_time(
    stack: MultiNodeStack, api: httpx.AsyncClient
) -> None:
    began = time.monotonic()
    owner = stack.create_tenant("multinode")
    deck_id = await upload_ready(api, owner, "acme.pptx", make_product_deck())
    sessions: list[Live] = []
    timeline: list[str] = []
    try:
        for i, name in enumerate(("ada", "bea")):
            created = await api.post(
                f"{stack.replica_url(i)}/v1/sessions",  # one session through each replica
                headers=owner.headers,
                json={"deck_id": deck_id, "participant": {"identity": name, "name": name}},
            )
            assert created.status_code == 201, created.text
            s = created.json()
            assert s["livekit_url"] == stack.livekit_url
            live = Live(
                s["session_id"], s["room"], s["token"], Audience(s["livekit_url"], s["token"])
            )
            sessions.append(live)
            paused = await api.post(
                f"/v1/sessions/{live.sid}/slide",
                headers={**owner.headers, "Idempotency-Key": uuid.uuid4().hex},
                json={"action": "pause"},
            )
            assert paused.status_code == 200, paused.text
            live.acked.add(int(paused.json()["version"]))
            await live.ada.__aenter__()
            # One at a time, so LiveKit sees the first worker's load when it places the second.
            await live.ada.until(partial(_said, live.ada, "Hello"), 90, "no greeting")
            await _holder(api, stack, live.room)
        placement = [
            (await _holder(api, stack, live.room), await _room_node(stack, live.room))
            for live in sessions
        ]
        timeline.append(f"up {time.monotonic() - began:.0f} s; (worker, livekit node) {placement}")
        # The presenter moves the slide when asked.
        before = sessions[0].ada.slide["version"]
        await sessions[0].ada.say("Next slide, please.")
        await sessions[0].ada.until(
            lambda: sessions[0].ada.slide["version"] > before, 45, "the presenter moved no slide"
        )
        await _resumes(stack, api, owner, sessions)

        # 1. A worker dies (SIGKILL: its job processes and Piper with it).
        held = await _holder(api, stack, sessions[0].room)
        victim = stack.workers[held]
        on_victim = [live for live in sessions if await _holder(api, stack, live.room) == held]
        at, killed = time.monotonic(), time.perf_counter()
        stack.kill(victim)
        for live in on_victim:
            await live.ada.until(
                partial(_said, live.ada, RESUMED, killed), 90, "no presenter came back"
            )
        timeline.append(f"worker killed: presenter back after {time.monotonic() - at:.1f} s")
        timeline.append(f"  refused so far: {_refusals(sessions)}")
        await _resumes(stack, api, owner, sessions)
        revived = asyncio.create_task(asyncio.to_thread(stack.revive_worker, victim))

        # 2. A control plane dies; the other serves every call meanwhile.
        at = time.monotonic()
        stack.kill(stack.control_planes[0])
        await _resumes(stack, api, owner, sessions)
        await asyncio.to_thread(stack.restart_control_plane, 0)
        timeline.append(
            f"control plane killed: served by the other; back in {time.monotonic() - at:.1f} s"
        )
        timeline.append(f"  refused so far: {_refusals(sessions)}")
        await revived

        # 3. The livekit node holding the first room dies. Its clients join the room again on
        #    the other node; its presenter leaves and another is sent (job.py, resume.py).
        node = await _room_node(stack, sessions[0].room)
        on_node = [live for live in sessions if await _room_node(stack, live.room) == node]
        at, killed = time.monotonic(), time.perf_counter()
        stack.kill(stack.nodes[node].process)
        for live in on_node:
            await live.ada.until(
                partial(_said, live.ada, RESUMED, killed),
                90,
                "no presenter came back after the room's node died",
            )
        moved = await _room_node(stack, sessions[0].room)
        timeline.append(
            f"livekit node {node} killed ({len(on_node)} rooms on it): presenters back after "
            f"{time.monotonic() - at:.1f} s, the rooms now on node {moved}"
        )
        await _resumes(stack, api, owner, sessions)
        timeline.append(f"  refused so far: {_refusals(sessions)}")
        await asyncio.to_thread(stack.restart_node, node)

        # 4. Redis: flushed, then restarted (empty).
        redis = Redis.from_url(stack.redis.url())
        await redis.flushall()
        await redis.aclose()
        for live in sessions:  # acknowledged while Redis holds nothing
            await _changes(stack, api, owner, live)
        await asyncio.to_thread(stack.restart_redis)
        at = time.monotonic()
        await _resumes(stack, api, owner, sessions)
        timeline.append(f"redis flushed and restarted: resumed in {time.monotonic() - at:.1f} s")
        timeline.append(f"  refused so far: {_refusals(sessions)}")

        # 5. Postgres restarts; a question asked meanwhile is answered and its turn kept.
        await asyncio.to_thread(stack.postgres.stop)
        asking = asyncio.create_task(_ask(sessions[1]))
        changing = asyncio.create_task(
            _change(api, f"/v1/sessions/{sessions[0].sid}/slide", owner.headers, sessions[0], 60)
        )
        await asyncio.sleep(3)
        await asyncio.to_thread(stack.postgres.start)
        at = time.monotonic()
        await asyncio.gather(asking, changing)
        await _resumes(stack, api, owner, sessions)
        timeline.append(f"postgres restarted: resumed in {time.monotonic() - at:.1f} s")
        timeline.append(f"  refused so far: {_refusals(sessions)}")
    finally:
        print("\n" + "\n".join(timeline))
        for live in sessions:
            await live.ada.__aexit__()
    for live in sessions:
        ended = await api.post(f"/v1/sessions/{live.sid}/end", headers=owner.headers)
        assert ended.status_code == 200, ended.text

    # What the clients were answered and shown, against what Postgres holds.
    conn = await asyncpg.connect(stack.postgres.url())
    try:
        for live in sessions:
            stored = {
                r["version"]
                for r in await conn.fetch(
                    "SELECT version FROM slide_transitions WHERE session_id = $1",
                    uuid.UUID(live.sid),
                )
            }
            seen = {s["version"] for _, s in live.ada.slides}
            assert live.acked <= stored, f"acknowledged but lost: {live.acked - stored}"
            assert seen <= stored, f"shown but lost: {seen - stored}"
            deadline = time.monotonic() + 20
            while True:  # the last turns are sent as the jobs end
                turns = [
                    json.loads(r["record"])
                    for r in await conn.fetch(
                        "SELECT record FROM session_turns WHERE session_id = $1 ORDER BY number",
                        uuid.UUID(live.sid),
                    )
                ]
                missing = _unstored(live.answers, turns)
                if not missing or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.5)
            timeline.append(
                f"session {live.sid[:8]}: {len(live.acked)} changes acknowledged, {len(seen)} "
                f"versions shown, {len(stored)} stored; {len(live.answers)} answers heard, "
                f"{len(turns)} turns stored"
            )
            assert not missing, f"answers heard but no turn stored: {missing}"
    finally:
        await conn.close()
    print("\n" + "\n".join(timeline[-2:]) + f"\nmodule {time.monotonic() - began:.0f} s")
