"""Presentation mode: the presenter narrates the deck slide by slide, and yields to the room.

The narrator speaks a slide's script (its speaker notes, else its text) one sentence at a time
through the session, so an interruption costs at most the sentence it cut and the presentation
resumes from there. When a slide's script is done it asks the control plane for the next slide,
with the version it narrated as the expected version, and only speaks about the new slide once
the control plane confirmed the change (a participant who moved the slide meanwhile wins).

It never talks over anyone: before each sentence it waits until the user is quiet and the
agent has nothing else to say. Its state:

- ``presenting``: narrating.
- ``held``: the user spoke up. The agent answers through the normal voice loop; then, if the
  slide moved meanwhile (the user asked for it), narration goes on from the new slide; else it
  offers once to continue and waits for ``resume``. A sound that turned out not to be a turn
  (nothing transcribed) resumes narration by itself.
- ``paused``: the slide state says paused (a tool, a participant or the API paused it).
- ``finished``: the last slide was narrated; ``resume`` presents on from the slide shown.

Pause and slide changes made by anyone reach it through the room metadata, as every client sees
them, so it reacts the same way whoever acted.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
from collections.abc import Callable
from typing import Any, Literal

from livekit.agents import AgentSession, llm
from livekit.agents.voice import SpeechHandle
from livekit.agents.voice.events import (
    AgentStateChangedEvent,
    ConversationItemAddedEvent,
    UserStateChangedEvent,
)
from pydantic import ValidationError

from shared.languages import phrase
from shared.schemas import SlideContent, SlideState

from .control_plane_client import ControlPlaneError, ControlPlaneRefused, SessionApi

logger = logging.getLogger(__name__)

Status = Literal["presenting", "held", "paused", "finished"]

OFFER = "Shall I carry on with the presentation?"
END = "That was the last slide. I'm happy to take any questions."
RESUMED = "Sorry, I lost my connection for a moment. I'm back."

# After the user stops talking, how long to leave for their turn to be transcribed and
# answered before narration goes on (a cough or a "hm" is not a turn).
SETTLE_SECONDS = 1.0
# A barge-in that produced no user turn this long after the user went quiet was a false alarm:
# carry on. Longer than the longest end-of-turn wait (1.5 s) plus a transcription.
FALSE_ALARM_SECONDS = 2.5

_POLL_SECONDS = 0.05

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def narration_script(content: SlideContent, language: str = "en") -> list[str]:
    """What the presenter says about a slide, sentence by sentence: a lead naming the slide,
    then its speaker notes — or, for a slide without notes, its text read as sentences."""
    lead = (
        phrase(language, "lead", index=content.index, title=content.title)
        if content.title
        else phrase(language, "lead_untitled", index=content.index)
    )
    body = content.notes or ". ".join(
        line.strip().rstrip(".") for line in content.text.splitlines() if line.strip()
    )
    body = " ".join(body.split())
    if content.title and content.notes is None and body.startswith(content.title):
        body = body[len(content.title) :].lstrip(" .")
    sentences = [s for s in _SENTENCE_END.split(body) if s]
    if sentences and not sentences[-1].endswith((".", "!", "?")):
        sentences[-1] += "."
    return [lead, *sentences]


def slide_state_in(room_metadata: str) -> SlideState | None:
    """The slide state the control plane pushed into the room's metadata, if any."""
    try:
        return SlideState.model_validate(json.loads(room_metadata)["podium"]["slide"])
    except (ValueError, KeyError, TypeError, ValidationError):
        return None


class Narrator:
    def __init__(
        self,
        session: AgentSession[Any],
        deck: SessionApi,
        *,
        clock: Callable[[], float] = time.monotonic,
        language: str = "en",
    ) -> None:
        self._session = session
        self._deck = deck
        self._language = language
        self._clock = clock
        self.status: Status = "paused"
        self._changed = asyncio.Event()  # anything the loop waits on changed
        self._scripts: dict[int, list[str]] = {}
        self._position: tuple[int, int] = (0, 0)  # (slide, next sentence)
        self._speaking: SpeechHandle | None = None
        self._seen_version = 0
        self._seen_index = 0
        self._user_turns = 0
        self._user_quiet_since = clock()
        self._held_turns = 0
        self._held_index = 0
        self._offered = False
        self._task: asyncio.Task[None] | None = None
        session.on("user_state_changed", self._on_user_state)
        session.on("agent_state_changed", self._on_agent_state)
        session.on("conversation_item_added", self._on_item)

    # -- commands (tools, room events) ------------------------------------------------------

    def start(self) -> None:
        """Present from the current slide; call once, after the greeting was queued."""
        self.status = "presenting"
        self._task = asyncio.create_task(self._run(), name="narrator")

    def resume(self) -> Status:
        """Go on presenting from where it stopped; after the last slide, from the slide shown
        now (the user went back to one), and just the closing line if that is the last."""
        if self.status != "presenting":
            self._set("presenting")
        return self.status

    def pause(self) -> None:
        if self.status != "finished":
            self._set("paused")
            self._stop_speaking()

    def on_slide_state(self, state: SlideState) -> None:
        """A slide state pushed to the room (newest wins), whoever changed it."""
        if state.version <= self._seen_version:
            return
        self._seen_version = state.version
        moved = state.index != self._seen_index
        self._seen_index = state.index
        if state.paused:
            self.pause()
        elif self.status == "paused":
            self._set("presenting")
        elif self.status == "held" and not moved and state.changed_by != "agent":
            self._set("presenting")  # a participant or the API pressed resume
        elif moved and self.status == "presenting" and self._position[0] != state.index:
            self._stop_speaking()  # someone else moved the slide: narrate that one instead
        self._changed.set()

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    # -- session events ---------------------------------------------------------------------

    def _on_user_state(self, event: UserStateChangedEvent) -> None:
        if event.new_state != "speaking":
            self._user_quiet_since = self._clock()
        elif self.status == "presenting":
            self._hold()
        self._changed.set()

    def _on_agent_state(self, _: AgentStateChangedEvent) -> None:
        self._changed.set()

    def _on_item(self, event: ConversationItemAddedEvent) -> None:
        if isinstance(event.item, llm.ChatMessage) and event.item.role == "user":
            if self.status == "presenting":
                self._hold()  # typed input, or a turn that began between sentences
            self._user_turns += 1
        self._changed.set()

    # -- the loop ---------------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            try:
                if self.status == "presenting":
                    await self._present_current_slide()
                elif self.status == "held":
                    await self._settle_hold()
                else:
                    await self._wait_for_change()
            except ControlPlaneError:
                logger.warning("narration could not reach the control plane", exc_info=True)
                await asyncio.sleep(1.0)
            except RuntimeError:
                logger.info("the session closed; narration stops")  # say() on a closed session
                return
            except Exception:
                logger.exception("narration step failed; trying again")
                await asyncio.sleep(1.0)

    async def _present_current_slide(self) -> None:
        state = await self._deck.current_slide()
        self.on_slide_state(state)
        if state.paused or self.status != "presenting":
            return
        script = await self._script(state.index)
        slide, sentence = self._position
        first = sentence if slide == state.index else 0
        for number in range(first, len(script)):
            await self._wait_for_quiet()
            if self.status != "presenting" or self._seen_index != state.index:
                return
            self._position = (state.index, number)
            handle = self._session.say(script[number])
            self._speaking = handle
            await handle
            self._speaking = None
            if handle.interrupted:
                return  # barge-in (now held), pause, or a slide change: the loop decides
            self._position = (state.index, number + 1)
        self._position = (state.index, len(script))
        if state.index >= state.count:
            await self._wait_for_quiet()
            if self.status == "presenting":
                self._session.say(phrase(self._language, "end"))
                self._set("finished")
            return
        try:
            moved = await self._deck.change_slide(
                "next",
                expected_version=state.version,
                idempotency_key=f"narration-v{state.version}",
                reason="presentation",
            )
        except ControlPlaneRefused as exc:
            if exc.code != "version_conflict":
                await asyncio.sleep(1.0)  # e.g. the session is ending: do not spin
            return  # the slide moved under us (version conflict): re-read and narrate that
        self._position = (moved.index, 0)
        self.on_slide_state(moved)

    async def _settle_hold(self) -> None:
        """The user spoke up: wait for their turn and the answer, then go on or offer to."""
        await self._wait_for_quiet()
        if self.status != "held":
            return
        if self._user_turns == self._held_turns:
            if self._clock() - self._user_quiet_since >= FALSE_ALARM_SECONDS:
                self._set("presenting")  # nothing was said after all
            else:
                await self._wait_for_change(at_most=0.25)
            return
        if self._seen_index != self._held_index:
            self._set("presenting")  # they moved the slide: present it
            return
        if not self._offered:
            self._offered = True
            self._session.say(phrase(self._language, "offer"))
        await self._wait_for_change()

    async def _wait_for_quiet(self) -> None:
        """Until the user has been quiet a moment and the agent has nothing queued to say."""
        while True:
            busy = (
                self._session.user_state == "speaking"
                or self._session.agent_state in ("thinking", "speaking")
                or self._session.current_speech is not None
            )
            quiet_for = self._clock() - self._user_quiet_since
            if not busy and quiet_for >= SETTLE_SECONDS:
                return
            # The session raises no event when its current speech is cleared: look again soon.
            await self._wait_for_change(
                at_most=_POLL_SECONDS if busy else SETTLE_SECONDS - quiet_for
            )

    async def _wait_for_change(self, at_most: float | None = None) -> None:
        self._changed.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), at_most)

    async def _script(self, index: int) -> list[str]:
        if index not in self._scripts:
            self._scripts[index] = narration_script(await self._deck.slide(index), self._language)
        return self._scripts[index]

    def _hold(self) -> None:
        self.status = "held"
        self._held_turns = self._user_turns
        self._held_index = self._seen_index
        self._offered = False
        self._changed.set()

    def _set(self, status: Status) -> None:
        self.status = status
        self._changed.set()

    def _stop_speaking(self) -> None:
        if self._speaking is not None and not self._speaking.done():
            self._speaking.interrupt()
