"""What the presenter would do with a question, without a session: the same intent rules as the
offline responder (``shared.intents``), the same deck search and coverage verdict the worker's
tools get from the control plane, and the same slide arithmetic as its navigation tools."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from control_plane.decks.search import Purpose, SearchOutcome
from shared.evaluation import Action, EvalQuestion, EvalResult
from shared.intents import DOESNT_COVER, ToolRequest, answer_text, intent_for, relative_target
from shared.languages import phrase

SearchFn = Callable[[str, Purpose, int], Awaitable[SearchOutcome]]
TOP_K = 5


async def evaluate_question(
    question: EvalQuestion, slides: int, search: SearchFn, language: str = "en"
) -> EvalResult:
    """``language``: the deck's; questions are read with that language's rules."""
    started = time.perf_counter()
    action, tool, slide, say, rank, confidence = await _act(question, slides, search, language)
    gold = set(question.slides)
    correct: bool | None = None
    if question.expect == "answer":
        correct = action == "answer" and slide in gold
    elif question.expect == "navigate":
        correct = action == "navigate" and slide in gold
    elif question.expect == "decline":
        correct = action == "decline"
    return EvalResult(
        question=question.question,
        id=question.id,
        expect=question.expect,
        slides=question.slides,
        from_slide=question.from_slide,
        tags=question.tags,
        action=action,
        tool=tool,
        slide=slide,
        say=say,
        correct=correct,
        rank=rank,
        confidence=confidence,
        ms=round((time.perf_counter() - started) * 1000, 2),
    )


async def _act(
    question: EvalQuestion, count: int, search: SearchFn, language: str = "en"
) -> tuple[Action, str | None, int | None, str, int | None, float | None]:
    intent = intent_for(question.question, language)
    if not isinstance(intent, ToolRequest):
        return "other", None, None, intent, None, None
    name, args = intent.name, intent.arguments
    here = min(question.from_slide, count)
    if name == "search_slides":
        found = await search(args["query"], "answer", TOP_K)
        order = [s.slide_index for s in found.slides]
        rank = next((i for i, s in enumerate(order, 1) if s in question.slides), None)
        if not found.slides or not found.covered:
            doesnt_cover = DOESNT_COVER if language == "en" else phrase(language, "doesnt_cover")
            return "decline", name, None, doesnt_cover, rank, found.confidence
        best = found.slides[0]
        say = answer_text(best.slide_index, best.title, best.snippet, language)
        return "answer", name, best.slide_index, say, rank, found.confidence
    if name == "goto_slide" and args.get("topic"):
        found = await search(args["topic"], "navigate", 1)
        if not found.slides or not found.covered:
            say = f"No slide is about {args['topic']}."
            return "refuse", name, None, say, None, found.confidence
        target = found.slides[0].slide_index
        return "navigate", name, target, _now_on(target, count), None, found.confidence
    if name == "goto_slide":
        target = int(args["slide_number"])
        if not 1 <= target <= count:
            say = f"Slide {target} is out of range: this deck has slides 1 to {count}."
            return "refuse", name, None, say, None, None
        return "navigate", name, target, _now_on(target, count), None, None
    if name in ("next_slide", "previous_slide"):
        steps = int(args.get("slides", 1)) * (1 if name == "next_slide" else -1)
        target = relative_target(here, steps, count)
        if target == here:
            edge = "last" if steps > 0 else "first"
            return "refuse", name, None, f"Already on the {edge} slide.", None, None
        return "navigate", name, target, _now_on(target, count), None, None
    if name == "last_slide":
        return "navigate", name, count, _now_on(count, count), None, None
    if name == "current_slide":
        return "other", name, here, f"Showing slide {here} of {count}.", None, None
    return "other", name, None, "", None, None


def _now_on(index: int, count: int) -> str:
    return f"Now on slide {index} of {count}."
