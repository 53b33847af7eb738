"""Deck evaluations: questions a team expects its audience to ask, what the presenter would do
with each, and how often that is right.

``POST /v1/decks/{id}/evaluations`` answers one batch; ``podium eval`` sends a file in batches and
summarises them all with :func:`summarise`, so the API and the CLI count the same way.
"""

from __future__ import annotations

import statistics
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.schemas import NO_NUL

Expect = Literal["answer", "navigate", "decline"]
Action = Literal["answer", "navigate", "decline", "refuse", "other"]
MAX_QUESTIONS = 200  # per request; podium eval sends bigger files in batches


class EvalQuestion(BaseModel):
    """One line of a questions file."""

    model_config = ConfigDict(extra="forbid")

    question: str = Field(min_length=1, max_length=500, pattern=NO_NUL)
    expect: Expect | None = Field(
        default=None,
        description="'answer': a slide answers it; 'navigate': the listener asks to be shown a "
        "slide; 'decline': the deck does not cover it. Leave out to only see what happens.",
    )
    slides: list[int] = Field(
        default_factory=list,
        max_length=50,
        description="With 'answer', every slide (from 1) that answers it; with 'navigate', the "
        "slides it may land on.",
    )
    from_slide: int = Field(
        default=1, ge=1, le=10_000, description="The slide showing when it is asked."
    )
    id: str | None = Field(default=None, max_length=100, pattern=NO_NUL)
    tags: list[str] = Field(default_factory=list, max_length=20)


class EvalRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    questions: list[EvalQuestion] = Field(min_length=1, max_length=MAX_QUESTIONS)


class EvalResult(BaseModel):
    question: str
    id: str | None
    expect: Expect | None
    slides: list[int]
    from_slide: int
    tags: list[str]
    action: Action = Field(
        description="What the presenter would do: answer from a slide, navigate to one, decline "
        "('the deck doesn't cover that'), refuse a move it cannot make, or something else "
        "(pause, resume, hand over to a person)."
    )
    tool: str | None = Field(description="The tool it would call, if any.")
    slide: int | None = Field(description="The slide it would cite or show.")
    say: str = Field(description="What it would say (the offline presenter's words).")
    correct: bool | None = Field(description="Whether that matches 'expect' (null without one).")
    rank: int | None = Field(
        description="For 'answer': where the first answering slide ranks in the deck search "
        "(1 is first; null when not in the top 5)."
    )
    confidence: float | None = Field(description="The search's confidence that a slide answers.")
    ms: float = Field(description="Time the control plane took for this question.")


class KindSummary(BaseModel):
    n: int
    correct: float | None = Field(description="Share of questions of this kind handled right.")


class EvalSummary(BaseModel):
    questions: int
    answer: KindSummary
    hit_at_1: float | None = Field(
        description="Answerable questions answered from an answering slide (= answer.correct)."
    )
    hit_at_3: float | None = Field(description="... an answering slide in the search's top 3.")
    answered: float | None = Field(description="Answerable questions not declined.")
    navigate: KindSummary
    decline: KindSummary
    ms_p50: float
    ms_p95: float


class EvalReport(BaseModel):
    deck_id: str
    results: list[EvalResult]
    summary: EvalSummary


def _share(flags: list[bool]) -> float | None:
    return sum(flags) / len(flags) if flags else None


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[round(q * 100) - 1]


def summarise(results: list[EvalResult]) -> EvalSummary:
    answer = [r for r in results if r.expect == "answer"]
    navigate = [r for r in results if r.expect == "navigate"]
    decline = [r for r in results if r.expect == "decline"]
    hit1 = _share([bool(r.correct) for r in answer])
    ms = [r.ms for r in results]
    return EvalSummary(
        questions=len(results),
        answer=KindSummary(n=len(answer), correct=hit1),
        hit_at_1=hit1,
        hit_at_3=_share([r.rank is not None and r.rank <= 3 for r in answer]),
        answered=_share([r.action == "answer" for r in answer]),
        navigate=KindSummary(n=len(navigate), correct=_share([bool(r.correct) for r in navigate])),
        decline=KindSummary(n=len(decline), correct=_share([bool(r.correct) for r in decline])),
        ms_p50=round(_percentile(ms, 0.5), 2),
        ms_p95=round(_percentile(ms, 0.95), 2),
    )
