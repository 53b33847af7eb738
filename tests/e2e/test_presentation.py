"""Presentation mode through a real room, the way a user lives it: the presenter narrates the
deck and moves the slide itself, stops talking the moment the user speaks up, answers from the
deck, offers to carry on and resumes where it stopped; the API's pause and resume; and a worker
killed mid-session, after which another worker picks the session up where it was."""

from __future__ import annotations

import asyncio
import re
import signal
import time
from collections.abc import Iterator

import httpx
import pytest

from agent_worker.narration import OFFER, RESUMED
from shared.devstack.services import ManagedProcess
from shared.devstack.stack import EphemeralStack, logged
from tests.e2e.audience import Audience
from tests.e2e.conftest import ProductDeck, Sessions

# Slide 2's narration, sentence by sentence (tests/factories.py PRODUCT_DECK).
SLIDE_2 = "Slide 2: The problem."
SLIDE_2_NOTES = "Most of our customers used to spend two days a week building reports by hand."
# How soon the agent's voice must stop once the user speaks (VAD onset + interruption minimum
# + one audio frame buffer), with room for a busy CI box.
BARGE_IN_BOUND_S = 1.2


def _said(lines: list[str], pattern: str) -> bool:
    return any(re.search(pattern, line) for line in lines)


async def test_the_presenter_narrates_yields_to_a_question_and_carries_on(
    api: httpx.AsyncClient, product_deck: ProductDeck, new_session: Sessions, worker: ManagedProcess
) -> None:
    session = await new_session(product_deck.deck_id)
    owner = product_deck.owner.headers
    spoken = ("How much does it cost?", "Yes please.")
    async with Audience(session["livekit_url"], session["token"], script=spoken) as ada:
        assert ada.slide["index"] == 1

        # Greeting, then slide 1, then the presenter moves to slide 2 itself and narrates it
        # only once every client was shown slide 2.
        await ada.until(lambda: _said(ada.agent_said(), r"^Hello, Ada"), 60, "no greeting")
        await ada.until(lambda: ada.slide["index"] == 2, 60, "the presenter never advanced")
        moved_at = ada.slides[-1][0]
        assert ada.slide["changed_by"] == "agent"
        await ada.until(lambda: SLIDE_2 in ada.agent_said(), 30, "slide 2 was not narrated")
        assert "Slide 1: Acme Analytics." in ada.agent_said()
        slide_2_line = next(line for line in ada.lines if line.text == SLIDE_2)
        assert slide_2_line.opened > moved_at  # spoken about only after the change was shown

        # Barge in while the notes sentence plays: the agent's voice stops within the bound.
        await ada.until(lambda: ada.voiced and ada.voiced[-1] > moved_at + 1.0, 30, "no notes")
        asked, done = await ada.say("How much does it cost?")
        assert ada.audible_between(asked - 0.5, asked)  # it was talking when the user began
        heard_after = [t for t in ada.voiced if asked + BARGE_IN_BOUND_S <= t < done]
        assert not heard_after, (
            f"the agent kept talking {heard_after[-1] - asked:.2f} s into the user's question"
        )
        answer = await ada.until(
            lambda: next(
                (s for s in ada.agent_said(asked) if s.startswith("That's on slide 4, Pricing.")),
                None,
            ),
            30,
            "the question was not answered from the pricing slide",
        )
        assert "49 dollars" in answer
        await ada.until(lambda: OFFER in ada.agent_said(asked), 30, "no offer to carry on")
        assert ada.slide["index"] == 2  # answering did not move the slide

        # "Yes please": narration resumes with the sentence the question cut, then slide 3.
        yes, _ = await ada.say("Yes please.")
        await ada.until(lambda: SLIDE_2_NOTES in ada.agent_said(yes), 30, "no resume on slide 2")
        await ada.until(lambda: ada.slide["index"] == 3, 60, "the presentation did not go on")

        # The API pauses it: the presenter falls silent and the slide stays; resume goes on.
        paused = await api.post(
            f"/v1/sessions/{session['session_id']}/slide",
            headers={**owner, "Idempotency-Key": "pause-1"},
            json={"action": "pause"},
        )
        assert paused.status_code == 200, paused.text
        await ada.until(lambda: ada.slide["paused"], 5, "the pause was not pushed")
        pause_at = ada.slides[-1][0]
        await asyncio.sleep(4)
        assert not ada.audible_between(pause_at + BARGE_IN_BOUND_S, time.perf_counter())
        assert (ada.slide["index"], ada.slide["paused"]) == (3, True)
        resumed = await api.post(
            f"/v1/sessions/{session['session_id']}/slide",
            headers={**owner, "Idempotency-Key": "resume-1"},
            json={"action": "resume"},
        )
        assert resumed.status_code == 200, resumed.text
        await ada.until(lambda: ada.slide["index"] == 4, 60, "no narration after resume")

    transitions = await api.get(f"/v1/sessions/{session['session_id']}/transitions", headers=owner)
    moves = [
        (t["action"], t["to_index"], t["actor"])
        for t in transitions.json()["items"]
        if t["action"] != "start"
    ]
    assert moves[:5] == [
        ("next", 2, "agent"),
        ("next", 3, "agent"),
        ("pause", 3, "api"),
        ("resume", 3, "api"),
        ("next", 4, "agent"),
    ], moves
    print("\nagent said:", *ada.agent_said(), sep="\n  ")


@pytest.fixture
def spare_worker(control_plane: EphemeralStack, worker: ManagedProcess) -> Iterator[ManagedProcess]:
    """A second worker, so a session whose worker dies has somewhere to go."""
    spare = control_plane.start_worker(name="spare-worker")
    yield spare
    spare.stop()


async def test_a_session_survives_the_loss_of_its_worker(
    api: httpx.AsyncClient,
    product_deck: ProductDeck,
    new_session: Sessions,
    control_plane: EphemeralStack,
    worker: ManagedProcess,
    spare_worker: ManagedProcess,
) -> None:
    session = await new_session(product_deck.deck_id)
    sid = session["session_id"]
    async with Audience(session["livekit_url"], session["token"]) as ada:
        await ada.until(lambda: ada.slide["index"] == 2, 60, "the presenter never advanced")
        await ada.until(lambda: SLIDE_2 in ada.agent_said(), 30, "slide 2 was not narrated")
        holder = next(w for w in (worker, spare_worker) if logged(w.log_path, sid, 0))
        holder.signal(signal.SIGKILL)  # the whole process group: server and job processes
        killed_at = time.perf_counter()
        holder.stop()

        back = await ada.until(
            lambda: next((line for line in ada.lines if line.text == RESUMED), None),
            60,
            "no worker picked the session up",
        )
        gap = back.opened - killed_at
        print(f"\nanother worker spoke {gap:.1f} s after the first was killed")
        # The job's silence (6 s) is noticed long before LiveKit drops the dead agent (~20 s).
        assert gap < 15
        # It carries on from the stored slide: never back to slide 1, on to slide 3.
        await ada.until(lambda: ada.slide["index"] == 3, 60, "the resumed presenter stalled")
        assert all(state["index"] >= 2 for at, state in ada.slides if at > killed_at)

        # The stored conversation spans both workers: an escalation carries all of it.
        asked, _ = await ada.say("I want to speak to a real person.")
        await ada.until(
            lambda: _said(ada.agent_said(asked), "colleague"), 30, "the escalation was not heard"
        )
    if holder is worker:
        control_plane.revive_worker(worker)  # later tests use the shared worker

    escalations = await api.get(
        f"/v1/sessions/{sid}/escalations", headers=product_deck.owner.headers
    )
    assert escalations.status_code == 200, escalations.text
    [record] = escalations.json()["items"]
    said = [line["text"] for line in record["transcript"]]
    assert said[0].startswith("Hello, Ada"), said  # from the first worker
    assert RESUMED in said  # from the second
    assert "real person" in (record["last_question"] or "").lower()
    assert record["slide_index"] >= 2
