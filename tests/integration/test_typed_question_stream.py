"""A typed question is read from its LiveKit text stream up to the length the presenter takes
(500 characters): a longer stream is cut there and not held whole in memory."""

from __future__ import annotations

import asyncio

from livekit import rtc

from agent_worker.audience import CHAT_TOPIC, MAX_QUESTION_CHARS, read_question
from shared.devstack.stack import EphemeralStack
from tests.rooms import new_room, room_token


async def test_a_question_is_read_up_to_its_limit_and_the_rest_is_not_kept(
    stack: EphemeralStack,
) -> None:
    name = await new_room(stack, "typed")
    asker, presenter = rtc.Room(), rtc.Room()
    read: asyncio.Queue[str] = asyncio.Queue()

    async def keep(reader: rtc.TextStreamReader) -> None:
        read.put_nowait(await read_question(reader))

    tasks: set[asyncio.Task[None]] = set()

    def handler(reader: rtc.TextStreamReader, _identity: str) -> None:
        task = asyncio.get_running_loop().create_task(keep(reader))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    presenter.register_text_stream_handler(CHAT_TOPIC, handler)
    await presenter.connect(stack.livekit.url, room_token(stack, name, "presenter"))
    try:
        await asker.connect(stack.livekit.url, room_token(stack, name, "vic"))
        await asker.local_participant.send_text("Is there an annual contract?", topic=CHAT_TOPIC)
        assert await asyncio.wait_for(read.get(), 20) == "Is there an annual contract?"

        # a 200 kB question, in many chunks: read as far as the limit and one more character
        writer = await asker.local_participant.stream_text(topic=CHAT_TOPIC)
        for _ in range(200):
            await writer.write("x" * 1000)
        await writer.aclose()
        long = await asyncio.wait_for(read.get(), 20)
        assert len(long) == MAX_QUESTION_CHARS + 1

        # and the reader still answers the next question whole
        await asker.local_participant.send_text("And the price?", topic=CHAT_TOPIC)
        assert await asyncio.wait_for(read.get(), 20) == "And the price?"
    finally:
        await asker.disconnect()
        await presenter.disconnect()
