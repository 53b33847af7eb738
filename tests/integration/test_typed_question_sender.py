"""A viewer's typed question reaches the presenter before the viewer does: livekit-server
forwards data at once but announces a participant who publishes nothing in batches (every 3 s
in 1.13). The question waits for its sender and is answered; a sender never announced (a hidden
participant) is dropped after a bounded wait, with a log line."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, ClassVar

import pytest
from livekit import rtc
from livekit.agents import AgentSession, llm

from agent_worker import audience
from agent_worker.audience import CHAT_TOPIC, Floor, TypedQuestions
from shared.devstack.stack import EphemeralStack
from shared.schemas import ROLE_ATTRIBUTE
from tests.rooms import new_room, room_token


class RecordingSession(AgentSession[None]):
    """The framework's session with its speech replaced by a record of what was asked."""

    def __init__(self) -> None:
        super().__init__()
        self.replies: asyncio.Queue[str] = asyncio.Queue()

    def interrupt(self, *, force: bool = False) -> asyncio.Future[None]:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    def generate_reply(self, *, user_input: Any = None, **_: Any) -> Any:
        assert isinstance(user_input, llm.ChatMessage)
        self.replies.put_nowait(user_input.text_content or "")


class Watched(TypedQuestions):
    """Notes whether each stream's sender was already known when its stream arrived."""

    known_on_arrival: ClassVar[list[bool]] = []

    def _on_stream(self, reader: rtc.TextStreamReader, identity: str) -> None:
        self.known_on_arrival.append(identity in self._room.remote_participants)
        super()._on_stream(reader, identity)


def _token(
    stack: EphemeralStack, room: str, identity: str, *, publish: bool, hidden: bool = False
) -> str:
    role = "participant" if publish else "viewer"
    return room_token(
        stack,
        room,
        identity,
        name=identity.title(),
        attributes={ROLE_ATTRIBUTE: role},
        can_publish=publish,
        hidden=hidden,
    )


async def _presenter(
    stack: EphemeralStack, name: str, session: RecordingSession
) -> tuple[rtc.Room, rtc.Room, TypedQuestions]:
    """Ada (in the room first, as the session's participant) and the presenter's room."""
    ada, presenter = rtc.Room(), rtc.Room()
    await ada.connect(stack.livekit.url, _token(stack, name, "ada", publish=True))
    await presenter.connect(stack.livekit.url, _token(stack, name, "presenter", publish=True))
    # those in the room before the presenter come with its join: Ada is known at once
    floor = Floor(presenter, presenter.remote_participants["ada"])
    questions = Watched(presenter, session, floor)
    questions.ready()
    return ada, presenter, questions


async def test_viewers_questions_sent_the_moment_they_join_are_answered(
    stack: EphemeralStack,
) -> None:
    name = await new_room(stack, "typed")
    session = RecordingSession()
    Watched.known_on_arrival = []
    ada, presenter, questions = await _presenter(stack, name, session)
    viewers = [rtc.Room() for _ in range(3)]
    try:
        for i, viewer in enumerate(viewers):
            await viewer.connect(stack.livekit.url, _token(stack, name, f"vic{i}", publish=False))
            await viewer.local_participant.send_text(f"Question {i}?", topic=CHAT_TOPIC)
        answered = {await asyncio.wait_for(session.replies.get(), 20) for _ in viewers}
        assert answered == {"Question 0?", "Question 1?", "Question 2?"}
        # the race this guards against happened (a 3 s batch window; three chances)
        assert False in Watched.known_on_arrival, Watched.known_on_arrival
    finally:
        await questions.aclose()
        for room in (*viewers, ada, presenter):
            await room.disconnect()


async def test_a_question_from_a_sender_never_announced_is_dropped_with_a_log_line(
    stack: EphemeralStack, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(audience, "SENDER_WAIT_SECONDS", 1.0)
    name = await new_room(stack, "typed")
    session = RecordingSession()
    ada, presenter, questions = await _presenter(stack, name, session)
    ghost = rtc.Room()
    try:
        with caplog.at_level(logging.INFO, logger="agent_worker.audience"):
            await ghost.connect(
                stack.livekit.url, _token(stack, name, "ghost", publish=False, hidden=True)
            )
            await ghost.local_participant.send_text("Anyone there?", topic=CHAT_TOPIC)
            for _ in range(100):
                if "typed question dropped" in caplog.text:
                    break
                await asyncio.sleep(0.1)
        assert "typed question dropped: sender not announced" in caplog.text
        assert session.replies.empty()
    finally:
        await questions.aclose()
        for room in (ghost, ada, presenter):
            await room.disconnect()
