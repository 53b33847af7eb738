"""The offline responder's next sentence, synthesized while the user's turn is still being
confirmed.

With the offline pipeline every answer takes two steps: the responder asks for a tool (a deck
search, a slide change), the framework runs it once the turn is confirmed, and the responder
speaks from its output. Preemptive generation runs the first step some 250 ms before the turn is
confirmed, and the deck search it asks for starts then (``prefetch.py``); but the second step
waits for the tool, and its first sentence then waits for Piper (~100 ms on two cores). The
responder is deterministic: once the search is back, or the slide a change will land on is known,
its next words are known as well. They are rehearsed: Piper synthesizes the first sentence now,
and the TTS request for it, when it comes, takes that synthesis (``PiperTTS.rehearse``).

Only with the offline responder: a cloud model's next words are not known before it says them,
and asking it twice would cost money. A wrong guess (a slide moved by someone else meanwhile, a
turn that goes on) costs one synthesis nobody uses; the job logs how many were made and used.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterable, AsyncIterator, Callable, Sequence
from typing import Any

from livekit.agents import llm, tokenize
from livekit.agents.voice.transcription.text_transforms import (
    TextTransforms,
    _apply_text_transforms,
)

from shared.intents import relative_target
from shared.schemas import DeckSearchResult

from .control_plane_client import ControlPlaneError, SessionApi
from .prefetch import SearchPrefetch, searches_in, tool_arguments
from .presenter import describe_hits, describe_state
from .responder import words_after
from .tts_local import PiperTTS

logger = logging.getLogger(__name__)

_NAVIGATION = ("next_slide", "previous_slide", "goto_slide")


async def first_sentence(text: str, transforms: Sequence[TextTransforms]) -> str:
    """The first sentence the framework will hand a non-streaming TTS for ``text``: the
    session's text transforms, then the sentence tokenizer it wraps such a TTS with."""

    async def whole() -> AsyncIterator[str]:
        yield text

    transformed = "".join([part async for part in _apply_text_transforms(whole(), transforms)])
    sentences = tokenize.blingfire.SentenceTokenizer(retain_format=True).tokenize(transformed)
    return sentences[0] if sentences else ""


class Rehearsal:
    """Rehearses the responder's next sentence after each of its steps that asks for a tool."""

    def __init__(
        self,
        *,
        voice: PiperTTS,
        searches: SearchPrefetch,
        deck: SessionApi,
        titles: dict[int, str | None],
        language: str = "en",
        transforms: Sequence[TextTransforms] = (),
        navigation_refused: Callable[[], str | None] | None = None,
    ) -> None:
        self._voice = voice
        self._searches = searches
        self._deck = deck
        self._titles = titles
        self._language = language
        self._transforms = transforms
        self._navigation_refused = navigation_refused
        self._task: asyncio.Task[None] | None = None

    async def watch(
        self, chat_ctx: llm.ChatContext, chunks: AsyncIterable[llm.ChatChunk | str | Any]
    ) -> AsyncIterator[llm.ChatChunk | str | Any]:
        """The model's output, unchanged; once it ends with one tool call, the answer that
        call leads to is rehearsed."""
        calls: list[llm.FunctionToolCall] = []
        try:
            async for chunk in chunks:
                if isinstance(chunk, llm.ChatChunk) and chunk.delta and chunk.delta.tool_calls:
                    calls.extend(chunk.delta.tool_calls)
                yield chunk
        finally:
            close = getattr(chunks, "aclose", None)
            if close is not None:
                await close()
        if len(calls) == 1:
            self._start(chat_ctx, calls[0])

    def _start(self, chat_ctx: llm.ChatContext, call: llm.FunctionToolCall) -> None:
        if self._task is not None:  # a newer step of the turn: the older guess is stale
            self._task.cancel()
        self._task = asyncio.create_task(self._rehearse(chat_ctx, call), name="rehearsal")
        self._task.add_done_callback(_logged)

    async def _rehearse(self, chat_ctx: llm.ChatContext, call: llm.FunctionToolCall) -> None:
        try:
            output = await self._output_of(call)
        except ControlPlaneError:
            return  # the tool will meet the same error and say so
        if output is None:
            return
        words = words_after(chat_ctx, call, output, self._language)
        if words is not None and (sentence := await first_sentence(words, self._transforms)):
            self._voice.rehearse(sentence)

    async def _output_of(self, call: llm.FunctionToolCall) -> str | None:
        """What ``call`` will return, when it can be known before it runs."""
        if call.name == "search_slides":
            result = await self._started_search(call)
            return None if result is None else describe_hits(result)
        if call.name == "current_slide":
            return describe_state(await self._deck.current_slide(), lead="Showing")
        if call.name not in _NAVIGATION:
            return None
        if self._navigation_refused is not None and self._navigation_refused() is not None:
            return None
        arguments = tool_arguments(call)
        if arguments is None:
            return None
        target: int | None = None
        if call.name == "goto_slide":
            number = arguments.get("slide_number")
            if isinstance(number, int):
                target = number
            else:
                found = await self._started_search(call)
                if found is None or not found.hits or not found.covered:
                    return None
                target = found.hits[0].slide_index
        state = await self._deck.current_slide()
        if target is None:
            steps = arguments.get("slides", 1)
            if not isinstance(steps, int) or steps < 1:
                return None
            steps = steps if call.name == "next_slide" else -steps
            target = relative_target(state.index, steps, state.count)
            if target == state.index:
                return None  # at the edge: the tool refuses
        if not 1 <= target <= state.count:
            return None
        landed = state.model_copy(update={"index": target, "title": self._titles.get(target)})
        return describe_state(landed)

    async def _started_search(self, call: llm.FunctionToolCall) -> DeckSearchResult | None:
        key = searches_in(call)
        task = None if key is None else self._searches.started(key[0], key[1], purpose=key[2])
        if task is None:
            return None
        return await asyncio.shield(task)  # the tool awaits the same search

    async def settled(self) -> None:
        """Until the latest rehearsal has been handed to the voice (or given up)."""
        if self._task is not None:
            await asyncio.gather(asyncio.shield(self._task), return_exceptions=True)

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        logger.info(
            "rehearsals",
            extra={"made": self._voice.rehearsals, "used": self._voice.rehearsals_used},
        )


def _logged(task: asyncio.Task[None]) -> None:
    """A rehearsal that failed only costs the time it would have saved."""
    if not task.cancelled() and (exc := task.exception()) is not None:
        logger.warning("a rehearsal failed", extra={"error": type(exc).__name__})
