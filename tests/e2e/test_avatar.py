"""The presenter's face through a real room, as a viewer's client decodes it: the local avatar's
video arrives from the agent, its mouth moves while the agent speaks and stays shut while it is
silent, and it shuts soon after the user interrupts; a tenant that turns the avatar off gets an
audio-only presenter that still talks, and its clients are told; a face that breaks mid-sentence
leaves the voice playing; a worker configured for a vendor (the real Beyond Presence plugin
against a local Beyond Presence) shows the vendor's avatar, and the local one when the vendor
fails. A plain LiveKit client, with none of the join page's code, gets the face too: one that
takes every track, and one that takes only the video."""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from livekit import api, rtc
from livekit.agents import Agent, AgentSession
from livekit.agents.testing import fake_job_context
from livekit.agents.voice import room_io
from livekit.agents.voice.room_io import ATTRIBUTE_PUBLISH_ON_BEHALF
from livekit.protocol.models import TrackType

from agent_worker.avatar import presence
from agent_worker.avatar.face import FaceRenderer, Pose
from agent_worker.avatar.presence import AUDIO_ONLY, AVATAR_ATTRIBUTE, attach_avatar
from shared.devstack.probe import SPEECH_RMS, frame_rms
from shared.devstack.services import ManagedProcess
from shared.devstack.stack import EphemeralStack, TenantKey
from shared.schemas import AvatarStyle
from shared.settings import WorkerSettings
from tests.e2e.audience import MOUTH_OPEN, Audience, Seen
from tests.e2e.conftest import ProductDeck, Sessions
from tests.fakes._audio import tone
from tests.fakes.bey_server import BeyFake

# From the user's first word to the presenter's mouth staying shut: the barge-in bound of
# test_presentation (VAD onset + the interruption minimum + buffers) and two video frames.
MOUTH_SHUT_BOUND_S = 1.3
QUIET_S = 0.3  # the mouth counts as shut once it stayed shut this long


def _agent_identity(ada: Audience) -> str | None:
    """The presenter (a vendor's avatar is an agent participant too, publishing on its behalf)."""
    agents = [
        p
        for p in ada.room.remote_participants.values()
        if p.kind == rtc.ParticipantKind.PARTICIPANT_KIND_AGENT
        and ATTRIBUTE_PUBLISH_ON_BEHALF not in p.attributes
    ]
    return agents[0].identity if agents else None


def _shut_from(frames: list[Seen], since: float) -> float | None:
    """When the mouth closed for good (for QUIET_S at least) after ``since``."""
    shut_at: float | None = None
    for frame in frames:
        if frame.at < since:
            continue
        if frame.mouth > MOUTH_OPEN:
            shut_at = None
        elif shut_at is None:
            shut_at = frame.at
        elif frame.at - shut_at >= QUIET_S:
            return shut_at
    return None


async def test_the_face_speaks_with_the_voice_and_shuts_when_interrupted(
    product_deck: ProductDeck, new_session: Sessions, worker: ManagedProcess
) -> None:
    session = await new_session(product_deck.deck_id)
    question = ("How much does it cost?",)
    async with Audience(
        session["livekit_url"], session["token"], watch=True, script=question
    ) as ada:
        await ada.until(lambda: len(ada.frames) > 50, 60, "no presenter video")
        agent = _agent_identity(ada)
        assert agent is not None
        assert {frame.identity for frame in ada.frames} == {agent}  # published as the agent
        assert (ada.frames[-1].width, ada.frames[-1].height) == (640, 360)
        assert ada.room.remote_participants[agent].attributes[AVATAR_ATTRIBUTE] == "local"

        # The greeting and the first slide: the mouth moves while the voice is heard.
        await ada.until(lambda: ada.slide["index"] == 2, 60, "the presenter never advanced")
        spoken = [f for f in ada.frames if ada.audible_between(f.at - 0.1, f.at + 0.1)]
        assert len(spoken) > 50
        open_share = sum(f.mouth > MOUTH_OPEN for f in spoken) / len(spoken)
        assert open_share > 0.4, f"the mouth was open in only {open_share:.0%} of spoken frames"
        assert len({round(f.mouth, 3) for f in spoken}) > 5  # it moves, not a fixed picture

        # ~25 frames a second while it talks (the synchroniser paces them)
        window = [f.at for f in ada.frames[-100:]]
        fps = (len(window) - 1) / (window[-1] - window[0])
        assert 20 <= fps <= 31, fps

        # Barge in while it narrates: voice and mouth stop, soon.
        await ada.until(lambda: ada.voiced and ada.voiced[-1] > ada.slides[-1][0] + 1, 30, "mute")
        asked, done = await ada.say("How much does it cost?")
        assert ada.audible_between(asked - 0.5, asked)
        shut = await ada.until(lambda: _shut_from(ada.frames, asked), 10, "the mouth kept moving")
        assert shut - asked <= MOUTH_SHUT_BOUND_S, f"the mouth shut {shut - asked:.2f} s in"

        # The answer, the offer, then nothing to say: the mouth stays shut while frames flow.
        await ada.until(
            lambda: any("Shall I carry on" in s for s in ada.agent_said(done)), 30, "offer"
        )
        quiet_from = await ada.until_silent(1.0, 15)
        await asyncio.sleep(1.0)
        silent = [f for f in ada.frames if f.at > quiet_from + 0.3]
        assert len(silent) >= 20  # idle frames keep coming (blinks and sway)
        assert max(f.mouth for f in silent) <= MOUTH_OPEN, statistics.mean(f.mouth for f in silent)


async def test_an_audio_only_tenant_hears_the_presenter_without_a_face(
    api: httpx.AsyncClient, product_deck: ProductDeck, new_session: Sessions, worker: ManagedProcess
) -> None:
    owner = product_deck.owner.headers
    off = await api.put("/v1/tenant/avatar", headers=owner, json={"enabled": False})
    assert off.status_code == 200, off.text
    try:
        session = await new_session(product_deck.deck_id, paused=True)
        async with Audience(session["livekit_url"], session["token"], watch=True) as ada:
            await ada.until(lambda: bool(ada.agent_said()), 60, "no greeting")
            agent = _agent_identity(ada)
            assert agent is not None
            attributes = ada.room.remote_participants[agent].attributes
            assert attributes[AVATAR_ATTRIBUTE] == AUDIO_ONLY
            assert ada.voiced  # the voice arrived through the room's audio output
            assert not ada.frames
    finally:
        await api.put("/v1/tenant/avatar", headers=owner, json={})


class BareClient:
    """A client written straight against the LiveKit SDK, as an integrator would: the room's
    default options (every track subscribed as it is published) or, with ``video_only``, one
    that subscribes to video and nothing else. No microphone, none of Audience's code. It notes
    who published what it subscribed to, who was heard first and the video frames it decoded."""

    def __init__(self, *, video_only: bool = False) -> None:
        self.room = rtc.Room()
        self.video_only = video_only
        self.subscribed: list[tuple[str, rtc.TrackKind.ValueType, rtc.TrackSource.ValueType]] = []
        self.first_voice: str | None = None  # the identity heard first
        self.video_frames: dict[str, int] = {}
        self._tasks: list[asyncio.Task[None]] = []

    async def join(self, url: str, token: str) -> None:
        self.room.on("track_published", self._on_published)
        self.room.on("track_subscribed", self._on_subscribed)
        await self.room.connect(url, token, rtc.RoomOptions(auto_subscribe=not self.video_only))

    async def until(self, check: Callable[[], object], seconds: float, failure: str) -> None:
        deadline = time.perf_counter() + seconds
        while not check():
            assert time.perf_counter() < deadline, (
                f"{failure} within {seconds} s: {self.subscribed}"
            )
            await asyncio.sleep(0.05)

    async def leave(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.room.disconnect()

    def _on_published(
        self, publication: rtc.RemoteTrackPublication, _: rtc.RemoteParticipant
    ) -> None:
        if self.video_only and publication.kind == rtc.TrackKind.KIND_VIDEO:
            publication.set_subscribed(True)

    def _on_subscribed(
        self,
        track: rtc.Track,
        publication: rtc.RemoteTrackPublication,
        participant: rtc.RemoteParticipant,
    ) -> None:
        self.subscribed.append((participant.identity, track.kind, publication.source))
        if track.kind == rtc.TrackKind.KIND_AUDIO:
            self._tasks.append(asyncio.create_task(self._listen(track, participant.identity)))
        else:
            self._tasks.append(asyncio.create_task(self._watch(track, participant.identity)))

    async def _listen(self, track: rtc.Track, identity: str) -> None:
        async for event in rtc.AudioStream(track):
            if frame_rms(event.frame) >= SPEECH_RMS:
                self.first_voice = identity
                return

    async def _watch(self, track: rtc.Track, identity: str) -> None:
        async for _ in rtc.VideoStream(track):
            self.video_frames[identity] = self.video_frames.get(identity, 0) + 1


async def _deckless_session(api: httpx.AsyncClient, tenant: TenantKey) -> dict[str, Any]:
    """What a new tenant's first call creates: a session with no deck."""
    resp = await api.post("/v1/sessions", headers=tenant.headers, json={})
    assert resp.status_code == 201, resp.text
    return dict(resp.json())


async def _streams_of(stack: EphemeralStack, room: str, identity: str) -> dict[int, str]:
    """The stream each of a participant's tracks is in, by track type, as LiveKit has it."""
    async with api.LiveKitAPI(
        stack.livekit.url, stack.livekit.api_key, stack.livekit.api_secret
    ) as livekit:
        listed = await livekit.room.list_participants(api.ListParticipantsRequest(room=room))
    (participant,) = [p for p in listed.participants if p.identity == identity]
    return {track.type: track.stream for track in participant.tracks}


async def test_a_plain_sdk_client_gets_the_presenters_face_with_its_voice(
    api: httpx.AsyncClient, tenant: TenantKey, worker: ManagedProcess, control_plane: EphemeralStack
) -> None:
    session = await _deckless_session(api, tenant)
    client = BareClient()
    try:
        await client.join(session["livekit_url"], session["token"])
        await client.until(lambda: client.first_voice, 60, "the presenter was not heard")
        presenter = client.first_voice
        assert presenter is not None
        # The face comes from the participant that speaks, as its camera, and frames arrive.
        # How soon after the voice is measured (scripts/bench_join.py), not asserted here.
        await client.until(
            lambda: client.video_frames.get(presenter, 0) > 10, 20, "no video from the presenter"
        )
        camera = (presenter, rtc.TrackKind.KIND_VIDEO, rtc.TrackSource.SOURCE_CAMERA)
        assert camera in client.subscribed
        assert {identity for identity, _, _ in client.subscribed} == {presenter}
        # Voice and face in streams of their own: a receiver does not hold the voice back
        # until the video can show it (the face leaves the job in step with the voice).
        streams = await _streams_of(control_plane, client.room.name, presenter)
        assert streams == {
            TrackType.AUDIO: presence.VOICE_STREAM,
            TrackType.VIDEO: presence.FACE_STREAM,
        }
    finally:
        await client.leave()
        await api.post(f"/v1/sessions/{session['session_id']}/end", headers=tenant.headers)


async def test_a_client_that_takes_only_the_video_still_gets_the_face(
    api: httpx.AsyncClient, tenant: TenantKey, worker: ManagedProcess
) -> None:
    """Nobody subscribes to the voice, and the face is published and drawn all the same (the
    framework's runner published it only once the voice had a listener)."""
    session = await _deckless_session(api, tenant)
    client = BareClient(video_only=True)
    try:
        await client.join(session["livekit_url"], session["token"])
        await client.until(lambda: sum(client.video_frames.values()) > 10, 60, "no video")
        assert all(kind == rtc.TrackKind.KIND_VIDEO for _, kind, _ in client.subscribed)
    finally:
        await client.leave()
        await api.post(f"/v1/sessions/{session['session_id']}/end", headers=tenant.headers)


@pytest.fixture
async def bey_worker(
    control_plane: EphemeralStack, worker: ManagedProcess
) -> AsyncIterator[tuple[BeyFake, ManagedProcess]]:
    """The shared worker's place taken by one configured for Beyond Presence (the fake)."""
    async with BeyFake(mode="serve") as bey:
        worker.stop()
        proc = control_plane.start_worker(
            name="bey-worker",
            PODIUM_AVATAR_PROVIDER="bey",
            PODIUM_BEY_API_KEY=bey.api_key,
            PODIUM_BEY_API_URL=bey.url,
            PODIUM_AVATAR_JOIN_TIMEOUT_SECONDS="5",
        )
        try:
            yield bey, proc
        finally:
            proc.stop()
            control_plane.revive_worker(worker)


async def test_a_vendor_avatar_presents_and_a_failed_vendor_falls_back_to_the_local_one(
    control_plane: EphemeralStack,
    product_deck: ProductDeck,
    new_session: Sessions,
    bey_worker: tuple[BeyFake, ManagedProcess],
) -> None:
    bey, _ = bey_worker

    async def greeted(ada: Audience, mode: str) -> str:
        """Wait for the greeting and the presenter's video; the presenter, showing ``mode``."""
        await ada.until(lambda: bool(ada.agent_said()), 60, f"no greeting ({mode})")
        await ada.until(lambda: len(ada.frames) > 10, 10, f"no video ({mode})")
        await ada.until(lambda: bool(ada.voiced), 10, f"the presenter was not heard ({mode})")
        agent = _agent_identity(ada)
        assert agent is not None
        assert ada.room.remote_participants[agent].attributes[AVATAR_ATTRIBUTE] == mode
        return agent

    session = await new_session(product_deck.deck_id, paused=True)
    async with Audience(session["livekit_url"], session["token"], watch=True) as ada:
        await greeted(ada, "vendor:bey")
        assert {frame.identity for frame in ada.frames} == {bey.avatars[0].identity}
        assert bey.avatars[0].audio_s > 0.5  # the agent's voice went through the vendor

    bey.mode = "fail"
    session = await new_session(product_deck.deck_id, paused=True)
    async with Audience(session["livekit_url"], session["token"], watch=True) as ada:
        agent = await greeted(ada, "local")
        assert {frame.identity for frame in ada.frames} == {agent}

    # The vendor's avatar drops out mid-presentation: the local face takes over, the voice goes on.
    bey.mode = "serve"
    session = await new_session(product_deck.deck_id)
    async with Audience(session["livekit_url"], session["token"], watch=True) as ada:
        agent = await greeted(ada, "vendor:bey")
        vendor_avatar = bey.avatars[-1].identity
        async with api.LiveKitAPI(
            control_plane.livekit.url,
            control_plane.livekit.api_key,
            control_plane.livekit.api_secret,
        ) as livekit:
            await livekit.room.remove_participant(
                api.RoomParticipantIdentity(room=ada.room.name, identity=vendor_avatar)
            )
        lost = time.perf_counter()
        await ada.until(
            lambda: ada.room.remote_participants[agent].attributes.get(AVATAR_ATTRIBUTE) == "local",
            10,
            "the local face did not take over",
        )
        await ada.until(
            lambda: sum(f.identity == agent for f in ada.frames) > 25, 10, "no local video"
        )
        await ada.until(lambda: ada.voiced[-1] > lost + 1.0, 30, "the presenter fell silent")


class _BreaksMidSentence(FaceRenderer):
    """A face whose drawing fails after 2 s of frames (a bug, a corrupt style)."""

    frames_left = 50

    def rgba(self, pose: Pose) -> bytes:
        _BreaksMidSentence.frames_left -= 1
        if _BreaksMidSentence.frames_left < 0:
            raise RuntimeError("the face could not be drawn")
        return super().rgba(pose)


async def _speech(seconds: float, rate: int = 24_000) -> AsyncIterator[rtc.AudioFrame]:
    pcm = tone(seconds, rate)
    for i in range(0, len(pcm), rate // 50):
        piece = pcm[i : i + rate // 50]
        yield rtc.AudioFrame(piece.tobytes(), rate, 1, len(piece))


def _token(stack: EphemeralStack, room: str, identity: str, *, agent: bool = False) -> str:
    token = api.AccessToken(stack.livekit.api_key, stack.livekit.api_secret).with_identity(identity)
    # The room is the test's own: the token may create it (the stack's LiveKit does not on join).
    token = token.with_grants(
        api.VideoGrants(room_join=True, room_create=True, room=room, can_update_own_metadata=agent)
    )
    return (token.with_kind("agent") if agent else token).to_jwt()


async def test_a_face_that_breaks_mid_sentence_leaves_the_voice_and_tells_the_clients(
    stack: EphemeralStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The agent runs in the framework's fake job context with a real session and the real
    avatar path; only the renderer is swapped for one that fails."""
    monkeypatch.setattr(presence, "FaceRenderer", _BreaksMidSentence)
    monkeypatch.setattr(_BreaksMidSentence, "frames_left", 50)
    room_name = f"avatar-{uuid.uuid4().hex[:8]}"
    agent_room = rtc.Room()
    async with Audience(stack.livekit.url, _token(stack, room_name, "ada"), watch=True) as ada:
        await agent_room.connect(
            stack.livekit.url, _token(stack, room_name, "presenter", agent=True)
        )
        try:
            with fake_job_context(room=agent_room, agent_identity="presenter") as job:
                try:
                    async with AgentSession[None]() as session:
                        avatar = await attach_avatar(job, session, WorkerSettings(), AvatarStyle())
                        assert avatar.mode == "local"
                        await session.start(
                            Agent(instructions="Present."),
                            room=agent_room,
                            room_options=room_io.RoomOptions(
                                audio_input=False, text_input=False, audio_output=False
                            ),
                        )
                        handle = session.say("A long sentence.", audio=_speech(5.0))

                        def told_audio_only() -> float | None:
                            agent = ada.room.remote_participants.get("presenter")
                            said = agent.attributes.get(AVATAR_ATTRIBUTE) if agent else None
                            return time.perf_counter() if said == AUDIO_ONLY else None

                        broke = await ada.until(
                            told_audio_only, 15, "the clients were not told the face failed"
                        )
                        assert ada.frames  # there was a face before
                        presenter = ada.room.remote_participants["presenter"]
                        await ada.until(
                            lambda: all(
                                p.kind != rtc.TrackKind.KIND_VIDEO
                                for p in presenter.track_publications.values()
                            ),
                            5,
                            "the frozen face was not taken away",
                        )
                        await asyncio.wait_for(handle.wait_for_playout(), 15)
                        assert not handle.interrupted
                        assert ada.voiced[-1] > broke + 1.0  # the voice went on after the face
                        await session.aclose()
                        assert avatar.runner is not None
                        await avatar.runner.aclose()
                finally:
                    job._tempdir.cleanup()  # a fake job never shuts down to remove it
        finally:
            await agent_room.disconnect()
