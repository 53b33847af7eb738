"""The presenter: what the agent is told to be and do in the room, and the tools it acts with.

The tools hold no slide state: each one asks the control plane, which owns the session's slide
and tells every participant. A tool call's id is its slide change's ``Idempotency-Key``, so a
call the framework retries (or a barge-in cancels after the request landed) moves the slide
at most once.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from livekit.agents import Agent, RunContext, ToolError, function_tool

from shared.schemas import DeckSearchResult, SlideAction, SlideState

from .control_plane_client import (
    ControlPlaneError,
    ControlPlaneRefused,
    SessionApi,
    SessionNotFoundError,
)

logger = logging.getLogger(__name__)

INSTRUCTIONS = (
    "You are Podium, a friendly presenter walking an audience through a slide deck. "
    "Speak in short, clear sentences and stay on the current slide unless asked. "
    "Change slides only with your tools; never claim a slide changed unless a tool said so. "
    "Answer questions only from the deck: call search_slides, then answer from what it found "
    "and say which slide the answer is on. When the deck does not cover the question, say so "
    "plainly and do not guess."
)

# How search results are written for the model; the offline responder reads the same lines.
SEARCH_HIT_LINE = re.compile(
    r"^Slide (?P<index>\d+) \((?P<title>.*)\), relevance (?P<score>-?[0-9.]+): (?P<snippet>.*)$"
)
NO_MATCH = "No slide matches that."


def describe_state(state: SlideState, lead: str = "Now on") -> str:
    """'Now on slide 4 of 8: Pricing.' — what a navigation tool tells the model."""
    title = f": {state.title}" if state.title else ""
    return f"{lead} slide {state.index} of {state.count}{title}."


def describe_hits(result: DeckSearchResult) -> str:
    if not result.hits:
        return NO_MATCH
    return "\n".join(
        f"Slide {h.slide_index} ({h.title or 'untitled'}), relevance {h.score:.3f}: "
        + " ".join(h.snippet.split())
        for h in result.hits
    )


class Presenter(Agent):
    def __init__(self, deck: SessionApi | None = None) -> None:
        super().__init__(instructions=INSTRUCTIONS)
        self._deck = deck  # None: a session created without a deck, where the tools refuse

    @function_tool()
    async def next_slide(self, context: RunContext[Any]) -> str:
        """Move the presentation to the next slide."""
        return await self._change(context, "next")

    @function_tool()
    async def previous_slide(self, context: RunContext[Any]) -> str:
        """Move the presentation back to the previous slide."""
        return await self._change(context, "previous")

    @function_tool()
    async def goto_slide(self, context: RunContext[Any], slide_number: int) -> str:
        """Show a given slide.

        Args:
            slide_number: The slide to show, counting from 1.
        """
        return await self._change(context, "goto", slide_number)

    @function_tool()
    async def last_slide(self, context: RunContext[Any]) -> str:
        """Jump to the deck's last slide."""
        return await self._change(context, "last")

    @function_tool()
    async def search_slides(self, query: str) -> str:
        """Find the slides that answer a question or cover a topic, best match first.

        Args:
            query: The user's question or the topic, in their words.
        """
        deck = self._require_deck()
        try:
            return describe_hits(await deck.search(query))
        except ControlPlaneError as exc:
            raise _tool_error(exc) from exc

    @function_tool()
    async def current_slide(self) -> str:
        """Say which slide is showing now."""
        deck = self._require_deck()
        try:
            state = await deck.current_slide()
        except ControlPlaneError as exc:
            raise _tool_error(exc) from exc
        return describe_state(state, lead="Showing")

    async def _change(
        self, context: RunContext[Any], action: SlideAction, index: int | None = None
    ) -> str:
        deck = self._require_deck()
        try:
            state = await deck.change_slide(
                action,
                index,
                idempotency_key=f"tool-{context.function_call.call_id}",
                reason="presenter tool",
            )
        except ControlPlaneError as exc:
            raise _tool_error(exc) from exc
        return describe_state(state)

    def _require_deck(self) -> SessionApi:
        if self._deck is None:
            raise ToolError("This session has no slides.")
        return self._deck


def _tool_error(exc: ControlPlaneError) -> ToolError:
    """What the model reads when the control plane said no, or could not be reached."""
    if isinstance(exc, ControlPlaneRefused):
        return ToolError(exc.message)
    if isinstance(exc, SessionNotFoundError):
        return ToolError("This session is over.")
    logger.warning(
        "presenter tool could not reach the control plane", extra={"status": exc.status_code}
    )
    return ToolError("The slides could not be reached just now; try again in a moment.")
