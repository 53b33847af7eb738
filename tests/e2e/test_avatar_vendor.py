"""A vendor avatar in a real LiveKit room: the real ``livekit-plugins-bey`` against a local
Beyond Presence (tests/fakes/bey_server.py) whose avatar joins the room as Bey's does.

The agent side runs in the framework's fake job context (the plugins read the job's identity),
with a real ``AgentSession`` speaking prerecorded audio: no models needed."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from livekit import api, rtc
from livekit.agents import Agent, AgentSession, utils
from livekit.agents.testing import fake_job_context
from livekit.agents.voice import room_io
from livekit.agents.voice.avatar import AvatarSession, DataStreamAudioOutput
from livekit.agents.voice.room_io import ATTRIBUTE_PUBLISH_ON_BEHALF

from agent_worker.avatar.vendors import (
    VendorAvatarError,
    VendorAvatarSettings,
    start_vendor_avatar,
)
from shared.devstack.stack import EphemeralStack
from tests.fakes._audio import tone
from tests.fakes.bey_server import BeyFake, Mode

AGENT = "podium-agent"
AVATAR = "bey-avatar-agent"  # the plugin's participant identity
SPEECH_RATE = 24000


@dataclass
class Agentside:
    room: rtc.Room
    session: AgentSession[None]
    fake: BeyFake
    settings: VendorAvatarSettings


def _token(stack: EphemeralStack, room: str, identity: str, *, agent: bool = False) -> str:
    # The room is the test's own: the token may create it (the stack's LiveKit does not on join).
    grant = api.VideoGrants(room_join=True, room_create=True, room=room)
    token = api.AccessToken(stack.livekit.api_key, stack.livekit.api_secret)
    token = token.with_identity(identity).with_grants(grant)
    return (token.with_kind("agent") if agent else token).to_jwt()


@asynccontextmanager
async def agent_side(
    stack: EphemeralStack, room_name: str, mode: Mode, *, join_timeout_s: float = 10.0
) -> AsyncIterator[Agentside]:
    token = _token(stack, room_name, AGENT, agent=True)
    room = rtc.Room()
    async with BeyFake(mode=mode) as fake, utils.http_context.open():
        await room.connect(stack.livekit.url, token)
        try:
            with fake_job_context(room=room, agent_identity=AGENT) as job:
                # The fake job carries no token, and the plugin reads the agent's identity
                # from the job token's claims, as a worker's job has them.
                job._info.token = token
                try:
                    async with AgentSession[None]() as session:
                        settings = VendorAvatarSettings(
                            bey_api_key=fake.api_key,
                            bey_api_url=fake.url,
                            avatar_join_timeout_seconds=join_timeout_s,
                        )
                        yield Agentside(room, session, fake, settings)
                finally:
                    # a worker removes the job's scratch directory at shutdown; a fake job
                    # never shuts down
                    job._tempdir.cleanup()
        finally:
            await room.disconnect()


async def start(stack: EphemeralStack, side: Agentside) -> AvatarSession[Any]:
    return await start_vendor_avatar(
        "bey",
        side.settings,
        side.session,
        side.room,
        livekit_url=stack.livekit.url,
        livekit_api_key=stack.livekit.api_key,
        livekit_api_secret=stack.livekit.api_secret,
    )


async def speech(seconds: float) -> AsyncIterator[rtc.AudioFrame]:
    pcm = tone(seconds, SPEECH_RATE)
    step = SPEECH_RATE // 50  # 20 ms frames, as a TTS yields them
    for i in range(0, len(pcm), step):
        piece = pcm[i : i + step]
        yield rtc.AudioFrame(piece.tobytes(), SPEECH_RATE, 1, len(piece))


async def test_the_avatar_joins_shows_video_to_a_client_and_plays_the_agents_speech(
    stack: EphemeralStack,
) -> None:
    room_name = f"avatar-{uuid.uuid4().hex[:8]}"
    client = rtc.Room()
    avatar_video: asyncio.Future[rtc.RemoteVideoTrack] = asyncio.Future()

    @client.on("track_subscribed")
    def _on_track(
        track: rtc.Track, _pub: rtc.RemoteTrackPublication, who: rtc.RemoteParticipant
    ) -> None:
        mine = who.identity == AVATAR and not avatar_video.done()
        if isinstance(track, rtc.RemoteVideoTrack) and mine:
            avatar_video.set_result(track)

    await client.connect(stack.livekit.url, _token(stack, room_name, "ada"))
    try:
        async with agent_side(stack, room_name, "serve") as side:
            avatar = await start(stack, side)
            assert isinstance(side.session.output.audio, DataStreamAudioOutput)
            [request] = side.fake.requests
            assert request.body["transport"] == "livekit"
            assert request.body["url"] == stack.livekit.url
            # The avatar joined as the plugin's participant, publishing on the agent's behalf.
            joined = side.room.remote_participants[AVATAR]
            assert joined.attributes[ATTRIBUTE_PUBLISH_ON_BEHALF] == AGENT

            # A user in the room sees the avatar's video.
            track = await asyncio.wait_for(avatar_video, 10)
            stream = rtc.VideoStream(track)
            try:
                first = await asyncio.wait_for(anext(aiter(stream)), 10)
                assert (first.frame.width, first.frame.height) == (320, 180)
            finally:
                await stream.aclose()

            # The agent's speech goes to the avatar, which reports it played to the end.
            await side.session.start(
                Agent(instructions="Present the deck."),
                room=side.room,
                room_options=room_io.RoomOptions(audio_input=False, text_input=False),
            )
            handle = side.session.say("Welcome to the deck.", audio=speech(1.0))
            await asyncio.wait_for(handle.wait_for_playout(), 15)
            assert not handle.interrupted
            [heard] = side.fake.avatars
            assert heard.audio_s == pytest.approx(1.0, abs=0.15)
            assert heard.segments_ended == 1

            # A barge-in clears the avatar's buffered speech at once.
            handle = side.session.say("Our pricing has three tiers.", audio=speech(4.0))
            await asyncio.wait_for(heard.speaking.wait(), 5)
            await asyncio.sleep(0.5)  # mid-sentence
            side.session.interrupt()
            await asyncio.wait_for(handle.wait_for_playout(), 5)
            assert handle.interrupted
            assert heard.interrupted == 1
            assert heard.segments_ended == 1
            await side.session.aclose()
            await avatar.aclose()
    finally:
        await client.disconnect()


async def test_a_vendor_that_refuses_fails_fast_and_leaves_the_session_unrouted(
    stack: EphemeralStack,
) -> None:
    async with agent_side(stack, f"avatar-{uuid.uuid4().hex[:8]}", "fail") as side:
        began = time.monotonic()
        with pytest.raises(VendorAvatarError, match=r"^bey: its API answered 500"):
            await start(stack, side)
        assert time.monotonic() - began < 3
        assert side.session.output.audio is None
        assert len(side.fake.requests) == 2  # one retry, then give up
        assert AVATAR not in side.room.remote_participants


@pytest.mark.parametrize(
    ("mode", "reason"),
    [
        ("hang", "its API did not answer within 2 s"),
        ("ghost", "the avatar did not join the room within 2 s"),
    ],
)
async def test_a_vendor_that_never_shows_up_times_out_at_the_join_deadline(
    stack: EphemeralStack, mode: Mode, reason: str
) -> None:
    async with agent_side(stack, f"avatar-{uuid.uuid4().hex[:8]}", mode, join_timeout_s=2) as side:
        began = time.monotonic()
        with pytest.raises(VendorAvatarError, match=f"^bey: {reason}$"):
            await start(stack, side)
        assert 1.9 < time.monotonic() - began < 4
        assert side.session.output.audio is None
        assert len(side.fake.requests) == 1
