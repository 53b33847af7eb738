"""Analytics' pure parts: how a declined question is recognised in the presenter's own words
(pinned to the worker's constants), time per slide with pauses apart, who asked for a move,
and content gaps grouped by similarity."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import numpy as np
import pytest

from agent_worker.presenter import describe_hits
from control_plane.analytics import declines
from control_plane.analytics.gaps import content_gaps
from control_plane.analytics.schemas import Question
from control_plane.analytics.timeline import Timeline, Transition, navigation_kind
from control_plane.decks.embeddings import EmbeddingError, Vectors
from shared.intents import DOESNT_COVER, answer_text
from shared.schemas import DeckSearchHit, DeckSearchResult

pytestmark = pytest.mark.unit

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
HIT = DeckSearchHit(slide_index=4, title="Pricing", score=0.7, snippet="Starter Team Enterprise")


def _turn(output: str | None, answer: str) -> dict[str, Any]:
    calls = []
    if output is not None:
        calls = [{"name": "search_slides", "arguments": '{"query": "q"}', "output": output}]
    return {"user_text": "q", "agent_text": answer, "tool_calls": calls}


@pytest.mark.parametrize(
    ("output", "answer", "declined"),
    [
        (describe_hits(DeckSearchResult(hits=[HIT], covered=False)), DOESNT_COVER, True),
        # The verdict decides even when a model answered anyway.
        (describe_hits(DeckSearchResult(hits=[HIT], covered=False)), "Slide 4 has it.", True),
        (describe_hits(DeckSearchResult(hits=[])), DOESNT_COVER, True),
        (
            describe_hits(DeckSearchResult(hits=[HIT], covered=True)),
            answer_text(4, "Pricing", "x"),
            False,
        ),
        # A model that declines without searching, in its own words.
        (None, "Sorry, the deck does not cover integrations.", True),
        (None, "Now on slide 4 of 8: Pricing.", False),
    ],
)
def test_a_declined_question_is_recognised_from_the_presenters_records(
    output: str | None, answer: str, declined: bool
) -> None:
    assert declines.is_declined(_turn(output, answer)) is declined


def _at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def _t(seconds: float, to: int, *, paused: bool = False, action: str = "next",
       actor: str = "agent", key: str = "narration-v1") -> Transition:  # fmt: skip
    return Transition(_at(seconds), action, None, to, paused, actor, key)


def test_time_per_slide_counts_paused_time_apart_and_only_inside_the_window() -> None:
    timeline = Timeline(
        [
            _t(0, 1, action="start", actor="api", key="start"),
            _t(30, 2),
            _t(50, 2, paused=True, action="pause"),
            _t(80, 2, action="resume"),
            _t(100, 3),
        ]
    )
    # Joined 10 s after the start; ended at 130 s.
    assert timeline.dwell(_at(10), _at(130)) == {1: (20.0, 0.0), 2: (40.0, 30.0), 3: (30.0, 0.0)}
    assert timeline.slide_at(_at(99)) == 2 and timeline.slide_at(_at(100)) == 3
    assert timeline.slide_at(_at(-5)) == 1


def test_who_asked_for_a_move() -> None:
    assert navigation_kind(_t(1, 2)) is None  # the narration's own
    assert navigation_kind(_t(1, 4, action="goto", key="tool-call_1")) == "voice"
    assert (
        navigation_kind(_t(1, 1, action="previous", actor="participant:ada", key="k")) == "listener"
    )
    assert navigation_kind(_t(1, 8, action="last", actor="api", key="k")) == "api"
    assert navigation_kind(_t(1, 2, action="pause", actor="api", key="k")) is None


class _Axes:
    """Each text's vector is the axis its first word names: texts sharing it are identical."""

    model, dimension = "axes", 8

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail

    async def embed(self, texts: Sequence[str]) -> Vectors:
        if self.fail:
            raise EmbeddingError("provider down")
        axes = {"salesforce": 0, "weather": 1, "sso": 2}
        rows = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for i, text in enumerate(texts):
            rows[i, axes.get(text.split()[0].lower(), 7)] = 1.0
        return rows


def _q(text: str, slide: int, session: Any = None) -> Question:
    return Question(
        session_id=session or uuid4(), turn=1, at=T0, slide_index=slide, text=text, declined=True
    )


async def test_content_gaps_group_similar_questions_most_asked_first() -> None:
    a, b = uuid4(), uuid4()
    asked = [
        _q("weather today?", 2, a),
        _q("salesforce integration?", 4, a),
        _q("Salesforce sync?", 2, b),
        _q("salesforce integration?", 3, b),
        _q("", 3, b),  # words dropped by the data policy: nothing to group
    ]
    gaps = await content_gaps(_Axes(), asked)
    assert [(g.count, g.examples, g.sessions, g.slides) for g in gaps] == [
        (3, ["salesforce integration?", "Salesforce sync?"], [a, b], [2, 3, 4]),
        (1, ["weather today?"], [a], [2]),
    ]
    assert json.loads(gaps[0].model_dump_json())["question"] == "salesforce integration?"


async def test_content_gaps_fall_back_to_the_same_words_when_the_embedder_fails() -> None:
    gaps = await content_gaps(
        _Axes(fail=True), [_q("Salesforce?", 1), _q("salesforce? ", 2), _q("SSO?", 1)]
    )
    assert [g.count for g in gaps] == [2, 1]


async def test_each_wording_is_embedded_once() -> None:
    calls: list[list[str]] = []

    class Counting(_Axes):
        model = "counting"

        async def embed(self, texts: Sequence[str]) -> Vectors:
            calls.append(list(texts))
            return await super().embed(texts)

    asked = [
        _q("salesforce integration?", 1),
        _q("salesforce integration?", 2),
        _q("sso please", 1),
    ]
    first = await content_gaps(Counting(), asked)
    again = await content_gaps(Counting(), [*asked, _q("weather today", 3)])
    assert calls == [["salesforce integration?", "sso please"], ["weather today"]]
    assert [g.count for g in first] == [2, 1] and [g.count for g in again] == [2, 1, 1]
