"""Deck searches started as soon as the model asks for them, before the framework runs the tool.

The framework runs a tool only once the turn is confirmed: with preemptive generation the model
has often asked for ``search_slides`` hundreds of milliseconds earlier, while the end of the
user's turn was still being confirmed. A search only reads the deck, so it is started the moment
the model's tool call streams out (``watch``), and the tool awaits that request instead of
sending its own: its round trip to the control plane (and the query's embedding there) leaves
the time between the user's last word and the presenter's answer. Slide changes have effects and
still wait for the turn.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterable, AsyncIterator
from typing import Any, Literal

from livekit.agents import llm

from shared.schemas import DeckSearchResult

from .control_plane_client import ControlPlaneError, SessionApi

logger = logging.getLogger(__name__)

Purpose = Literal["answer", "navigate"]
_Key = tuple[str, int, Purpose]

KEEP = 8  # searches kept for a tool call still to come (a discarded generation's too)
FRESH_S = 30.0  # a kept search older than this is asked again


def tool_arguments(call: llm.FunctionToolCall) -> dict[str, Any] | None:
    """The arguments a tool call streamed out with; None when they are not a JSON object."""
    try:
        arguments = json.loads(call.arguments or "{}")
    except ValueError:
        return None
    return arguments if isinstance(arguments, dict) else None


def searches_in(call: llm.FunctionToolCall) -> _Key | None:
    """The search a tool call will make (see Presenter.search_slides and goto_slide)."""
    if call.name not in ("search_slides", "goto_slide"):
        return None
    arguments = tool_arguments(call)
    if arguments is None:
        return None
    if call.name == "search_slides" and isinstance(query := arguments.get("query"), str):
        return (query, 3, "answer")
    topic = arguments.get("topic")
    if call.name == "goto_slide" and arguments.get("slide_number") is None and topic:
        return (str(topic), 1, "navigate") if isinstance(topic, str) else None
    return None


class SearchPrefetch:
    """The session's searches in flight or just done, by query; owns their tasks."""

    def __init__(self, deck: SessionApi) -> None:
        self._deck = deck
        self._searches: OrderedDict[_Key, tuple[float, asyncio.Task[DeckSearchResult]]] = (
            OrderedDict()
        )

    async def watch(
        self, chunks: AsyncIterable[llm.ChatChunk | str | Any]
    ) -> AsyncIterator[llm.ChatChunk | str | Any]:
        """The model's output, unchanged; each deck search it asks for is started at once."""
        try:
            async for chunk in chunks:
                if isinstance(chunk, llm.ChatChunk) and chunk.delta and chunk.delta.tool_calls:
                    for call in chunk.delta.tool_calls:
                        if (key := searches_in(call)) is not None:
                            self._start(key)
                yield chunk
        finally:  # the framework closing this stream closes the model's
            close = getattr(chunks, "aclose", None)
            if close is not None:
                await close()

    async def search(
        self, query: str, k: int = 3, *, purpose: Purpose = "answer"
    ) -> DeckSearchResult:
        """The result of the search started for this query, else a new one. A prefetch that
        failed is not the answer: the search is asked again, and its error is the tool's."""
        key = (query, k, purpose)
        kept = self._searches.pop(key, None)
        if kept is not None and time.monotonic() - kept[0] <= FRESH_S:
            try:
                return await kept[1]  # a barge-in cancelling the tool cancels the search too
            except ControlPlaneError:
                pass
        return await self._deck.search(query, k, purpose=purpose)

    def started(
        self, query: str, k: int = 3, *, purpose: Purpose = "answer"
    ) -> asyncio.Task[DeckSearchResult] | None:
        """The search started for this query, left for the tool (None if there is none)."""
        kept = self._searches.get((query, k, purpose))
        if kept is None or time.monotonic() - kept[0] > FRESH_S:
            return None
        return kept[1]

    async def aclose(self) -> None:
        tasks = [task for _, task in self._searches.values()]
        self._searches.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _start(self, key: _Key) -> None:
        kept = self._searches.get(key)
        if kept is not None and time.monotonic() - kept[0] <= FRESH_S:
            self._searches.move_to_end(key)
            return
        query, k, purpose = key
        task = asyncio.create_task(
            self._deck.search(query, k, purpose=purpose), name="prefetch_search"
        )
        task.add_done_callback(_retrieve)
        self._searches[key] = (time.monotonic(), task)
        while len(self._searches) > KEEP:
            _, (_, oldest) = self._searches.popitem(last=False)
            oldest.cancel()


def _retrieve(task: asyncio.Task[DeckSearchResult]) -> None:
    """A prefetch nobody awaited must not log 'exception never retrieved'."""
    if not task.cancelled() and (exc := task.exception()) is not None:
        logger.info("a prefetched search failed", extra={"error": type(exc).__name__})
