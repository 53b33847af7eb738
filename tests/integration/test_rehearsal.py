"""The offline responder's next sentence is synthesized before the tool it asked for has run,
and the TTS request the framework then makes for it is answered from that synthesis: against a
real control plane (Postgres, pgvector, the embedder), a real deck and Piper's own server."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID

import httpx
from livekit.agents import llm, tts
from livekit.agents.voice.agent_session import DEFAULT_TTS_TEXT_TRANSFORMS
from livekit.agents.voice.transcription.text_transforms import _apply_text_transforms

from agent_worker.control_plane_client import ControlPlaneClient, SessionApi
from agent_worker.piper_process import piper_server
from agent_worker.prefetch import SearchPrefetch
from agent_worker.presenter import Presenter, describe_hits, describe_state
from agent_worker.rehearsal import Rehearsal
from agent_worker.responder import OfflineResponder
from agent_worker.tts_local import EspeakTTS, PiperTTS
from shared.devstack.stack import EphemeralStack
from tests.e2e.conftest import upload_ready
from tests.factories import make_product_deck


def _asked(said: str) -> llm.ChatContext:
    chat = llm.ChatContext.empty()
    chat.add_message(role="user", content=said)
    return chat


async def _first_step(
    chat: llm.ChatContext, searches: SearchPrefetch, rehearsal: Rehearsal
) -> llm.FunctionToolCall:
    """The responder's first step as the presenter's LLM node passes it on: its tool call."""
    calls: list[llm.FunctionToolCall] = []
    async with OfflineResponder().chat(chat_ctx=chat, tools=Presenter().tools) as stream:
        async for chunk in rehearsal.watch(chat, searches.watch(stream)):
            if isinstance(chunk, llm.ChatChunk) and chunk.delta and chunk.delta.tool_calls:
                calls.extend(chunk.delta.tool_calls)
    assert len(calls) == 1
    return calls[0]


async def _second_step(chat: llm.ChatContext, call: llm.FunctionToolCall, output: str) -> str:
    """The responder's words once the tool has answered ``output``."""
    chat = chat.copy()
    chat.items.append(
        llm.FunctionCall(call_id=call.call_id, name=call.name, arguments=call.arguments)
    )
    chat.items.append(
        llm.FunctionCallOutput(call_id=call.call_id, name=call.name, output=output, is_error=False)
    )
    async with OfflineResponder().chat(chat_ctx=chat) as stream:
        return "".join([chunk.delta.content async for chunk in stream if chunk.delta.content])


async def _spoken(speech: tts.TTS[Any], text: str) -> int:
    """Speak ``text`` the way the framework does with the worker's voices: its text transforms,
    then a fallback chain that wraps each non-streaming engine with its sentence tokenizer.
    Returns the samples heard."""

    async def whole() -> AsyncIterator[str]:
        yield text

    samples = 0
    async with speech.stream() as stream:
        async for part in _apply_text_transforms(whole(), DEFAULT_TTS_TEXT_TRANSFORMS):
            stream.push_text(part)
        stream.end_input()
        async for audio in stream:
            samples += audio.frame.samples_per_channel
    return samples


async def test_the_answer_is_spoken_from_its_rehearsal(
    control_plane: EphemeralStack, api: httpx.AsyncClient
) -> None:
    owner = control_plane.create_tenant("rehearsal")
    deck_id = await upload_ready(api, owner, "acme.pptx", make_product_deck())
    created = await api.post("/v1/sessions", headers=owner.headers, json={"deck_id": deck_id})
    assert created.status_code == 201, created.text
    session = created.json()
    credential = await control_plane.worker_credential(session["room"])
    async with (
        piper_server() as piper_url,
        ControlPlaneClient(control_plane.api_url, timeout_seconds=10) as client,
    ):
        deck: SessionApi = client.for_session(session["session_id"], credential)
        context = await client.get_session_context(UUID(session["session_id"]), credential)
        espeak = shutil.which("espeak-ng")
        assert espeak is not None
        voice = PiperTTS(base_url=piper_url)
        speech = tts.FallbackAdapter([voice, EspeakTTS(binary=espeak)])  # the worker's chain
        searches = SearchPrefetch(deck)
        rehearsal = Rehearsal(
            voice=voice,
            searches=searches,
            deck=deck,
            titles={entry.index: entry.title for entry in context.outline},
            transforms=DEFAULT_TTS_TEXT_TRANSFORMS,
        )
        try:
            # A question: the words come from the search the first step started.
            question = _asked("How much does it cost?")
            call = await _first_step(question, searches, rehearsal)
            await rehearsal.settled()
            assert voice.rehearsals == 1
            output = describe_hits(await searches.search("How much does it cost?"))
            answer = await _second_step(question, call, output)
            assert answer.startswith("That's on slide")
            assert await _spoken(speech, answer) > 0
            assert voice.rehearsals_used == 1  # its first sentence was the rehearsed one

            # A slide change: the words name the slide it will land on, known from the outline.
            forward = _asked("Next slide, please.")
            call = await _first_step(forward, searches, rehearsal)
            await rehearsal.settled()
            assert voice.rehearsals == 2
            moved = await deck.change_slide("next", idempotency_key="rehearsal-1")
            said = await _second_step(forward, call, describe_state(moved))
            assert said == describe_state(moved)
            await _spoken(speech, said)
            assert voice.rehearsals_used == 2

            # A wrong guess (someone else moved the slides meanwhile) is not spoken.
            call = await _first_step(forward, searches, rehearsal)
            await rehearsal.settled()
            assert voice.rehearsals == 3
            await deck.change_slide("next", idempotency_key="rehearsal-2")
            moved = await deck.change_slide("next", idempotency_key="rehearsal-3")
            said = await _second_step(forward, call, describe_state(moved))
            assert await _spoken(speech, said) > 0
            assert voice.rehearsals_used == 2
        finally:
            await rehearsal.aclose()
            await searches.aclose()
            await speech.aclose()
            await voice.aclose()
            await api.post(f"/v1/sessions/{session['session_id']}/end", headers=owner.headers)
