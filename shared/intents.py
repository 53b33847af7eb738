"""What a listener's words ask the presenter to do: move the slides, pause, resume, hand over to a
person, or answer a question from the deck.

The offline responder acts on these intents in sessions, and deck evaluations
(``POST /v1/decks/{id}/evaluations``, ``podium eval``) classify questions with the same function,
so an evaluation measures what a session would do. Deterministic rules, not a model: a spoken
navigation request is a small, closed language ("back two slides", "skip ahead to the wrap-up",
"show me slide four"), and getting it wrong moves the slide for everyone in the room.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from shared.languages import phrase

DOESNT_COVER = "The deck doesn't cover that."
DIDNT_CATCH = "Sorry, I didn't catch that."
CARRY_ON_LATER = "Okay. Ask me anything, or say carry on when you're ready."
ASKED_FOR_A_PERSON = "The user asked to speak to a person."

_NUMBER_WORDS = (
    "one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
    "sixteen seventeen eighteen nineteen twenty"
)
_NUMBERS = {word: value for value, word in enumerate(_NUMBER_WORDS.split(), start=1)} | {
    "a": 1,
    "an": 1,
    "a couple": 2,
    "a couple of": 2,
    "couple of": 2,
    "a few": 3,
}
_ORDINALS = {"first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6}
_ORDINALS |= {"seventh": 7, "eighth": 8, "ninth": 9, "tenth": 10}
_COUNT = (
    r"(?P<n>\d+|a couple(?: of)?|couple of|a few|"
    + "|".join(sorted((w for w in _NUMBERS if " " not in w), key=len, reverse=True))
    + ")"
)
_NUMBER = (
    r"(?P<n>\d+|" + "|".join(w for w in _NUMBERS if len(w) > 2) + "|" + "|".join(_ORDINALS) + ")"
)
# "side" and "slides": how Whisper tiny.en often hears "slide" (seen in our e2e runs).
_SLIDE = r"(?:slides?|sides?|pages?)"
_GOTO = re.compile(rf"\b(?:slide|side|page)(?: number)? {_NUMBER}\b(?! (?:slides?|back|ahead))")
_GOTO_ORDINAL = re.compile(
    r"\b(?:the )?(?P<n>" + "|".join(_ORDINALS) + rf") {_SLIDE}\b(?! (?:back|ago|before))"
)
_FIRST = re.compile(
    r"\b(?:first slide|(?:to|from|at) the (?:very )?(?:beginning|start|top)|start over"
    r"|from the top|title slide|opening slide|cover slide|(?:back )?to the start)\b"
)
_LAST = re.compile(
    r"\b(?:last slide|final slide|to the (?:very )?end|last page|final page|closing slide"
    r"|the very last one|the last one)\b"
)
# Relative moves of any size: "back two slides", "two slides back", "skip three ahead",
# "go forward one", "the next two slides". A bare count needs a verb of motion before it, so
# "they focus on one market" is no move.
_BACKWARD_WORDS = r"(?:back(?:wards?)?|earlier|before|previous|ago)"
_FORWARD_WORDS = r"(?:ahead|forwards?|on|onwards?|later|further|along)"
_STRICT_COUNT = re.sub(r"\|an?(?=[|)])", "", _COUNT)
_MOTION = r"(?:go|move|skip|jump|flip|head|step|take us|take me|scroll|advance|rewind|back up)"
_RELATIVE = [
    re.compile(
        rf"^(?:and |so |ok(?:ay)? )?(?P<dir>back|forward|ahead)(?: by)? {_COUNT}(?: please)?$"
    ),
    re.compile(rf"\b{_COUNT} (?:more )?{_SLIDE} (?P<dir>{_BACKWARD_WORDS}|{_FORWARD_WORDS})\b"),
    re.compile(
        # without "on": "what's on a slide about pricing" is a question
        rf"\b(?P<dir>back(?:wards?)?|ahead|forwards?) (?:by )?{_COUNT} (?:more )?{_SLIDE}\b"
    ),
    re.compile(rf"\b(?P<dir>previous|next|following) {_COUNT} {_SLIDE}\b"),
    re.compile(
        rf"\b(?P<verb>{_MOTION})(?: (?P<dir>{_BACKWARD_WORDS}|{_FORWARD_WORDS}))?(?: by)? "
        rf"{_STRICT_COUNT}(?: more)?(?: {_SLIDE})?"
        rf"(?: (?P<dir2>{_BACKWARD_WORDS}|{_FORWARD_WORDS}))?"
        r"(?= |$)(?! (?:of|to|about|on|percent|times|years?|months?|weeks?|days?)\b)"
    ),
]
_TOPIC = re.compile(
    r"\b(?:(?:slide|part|section|bit|page|one|chart|graph|diagram|table|grid|picture|photo"
    r"|image|screen)s? (?:about|on|covering|with|where|that|which|showing|for)"
    r"|(?:go|jump|skip|take (?:me|us)|bring (?:me|us)|move|switch|flip|get|head|return|turn)"
    r"(?: (?:back|ahead|forward|right|straight|on))? (?:to|over to)"
    r"|(?:show|display|pull up|bring up|put up)(?: (?:me|us))?(?: again)?"
    r"|(?:open|find) (?:me|us)"
    r"|(?:see|look at|revisit|view)(?: again)?"
    r"|^(?:and |so |ok(?:ay)? )?(?:back|straight|right) to"
    r"|^(?:(?:can|could) (?:you|we) )?(?:go |jump |get )?(?:back )?(?:to )?(?:the (?:part|bit|slide"
    r"|page|point) )?(?:where|when|in which) (?:you|we|they|he|she) (?:were |was )?"
    r"(?:talked|talking|spoke|speaking|discussed|mentioned|covered|went over|explained)"
    r"(?: about| on)?"
    r"|^(?:(?:can|could) (?:you|we) )?(?:the (?:part|bit|slide|page|point) )?"
    r"(?:where|when|in which) (?=(?:you|we|they|he|she) )"
    r"|^(?:the|that) (?=(?:slide|page|bit|part|one|table|chart|graph|diagram|picture|photo|image"
    r"|screen|grid|list|map|timeline|demo|code|example|quote|section)s?\b))"
    r" ?(?P<topic>.+)$"
)
# What a topic request starts with that is not the topic itself.
_TOPIC_LEAD = re.compile(
    r"^(?:(?:the|that|this|your|our|those|these|a) )*"
    r"(?:(?:slide|part|section|bit|page|one|screen)s? "
    r"(?:about|on|covering|with|where|that|which|showing|for) )?"
    r"(?:(?:the|that|this|your|our|a) )?"
)
_TOPIC_TAIL = re.compile(
    r"(?: (?:again|please|slide|page|section|part|bit|one|for me|for us|now|real quick"
    r"|if you can|if you could|once more|thanks|thank you"
    r"|(?:can|could) (?:we|you|i) (?:see|show|look at|go to|get|have)(?: (?:that|it|this))?"
    r"(?: one| slide| again)*))+$"
)
# "put the price table back up", "bring his contact details up again"
_PUT_UP = re.compile(
    r"^(?:(?:can|could) you |please )?(?:put|bring|pull|throw) (?P<topic>.+?) (?:back )?up"
    r"(?: again)?(?: please)?$"
)
_NOT_A_TOPIC = re.compile(
    r"^(?:next|previous|last|first|slide|page|start|beginning|end|top|it|that|this|"
    r"me|us|what|how|why|who|when|whether|if)\b"
)
_ABOUT = re.compile(r"\b(?:about|on|covering|where|with|showing) (?:how|what|why|who|when)\b")
# A question that names a slide kind is still a question ("what does the chart show?"); a
# topic request is an imperative or a request to see.
_QUESTION_START = re.compile(
    r"^(?:what|how|why|who|when|which|is|are|does|do|did|can you explain|explain|tell me)\b"
)
_NEXT = re.compile(
    rf"\bnext (?:{_SLIDE}|one)\b|^(?:ok(?:ay)? |and |so |alright )?next(?: one)?(?: please)?$"
    r"|\b(?:move on|go forward|go ahead to the next|skip (?:this|ahead)|keep moving)\b"
)
_PREVIOUS = re.compile(
    rf"\bprevious (?:{_SLIDE}|one)\b|^(?:ok(?:ay)? )?(?:back|previous)(?: one)?(?: please)?$"
    r"|\b(?:go back|back up|one back|the one before|slide before)\b"
)
_RESUME = re.compile(
    r"^(?:yes|yeah|yep|sure|ok|okay|please do|go ahead|please)(?: (?:please|sure|thanks))*$"
    r"|^(?:(?:yes|yeah|ok|okay|sure|please|so|and|let's)(?: please)? )*"
    r"(?:continue|carry on|go on|keep going|resume|proceed)(?: please| then)?$"
)
_DECLINE = re.compile(r"^(?:no|nope|not yet|not now|no thanks|no thank you)$")
_PAUSE = re.compile(
    r"^(?:(?:ok|okay|please|sorry|can you|could you|let's)(?: please)? )*"
    r"(?:pause|stop|wait|hold on|hang on|stop (?:the presentation|presenting)"
    r"|wait a (?:second|moment|minute)|give me a (?:second|moment|minute)"
    r"|pause (?:the presentation|for a (?:second|moment|minute)|here|there))"
    r"(?: (?:a second|a moment|please|for a (?:second|moment|minute)))*$"
)
_ESCALATE = re.compile(
    r"\b(?:talk|speak|chat|connect|transfer|put) (?:me )?(?:to|with|through to) "
    r"(?:a |an |the |some |your )?(?:human|real person|person|someone|somebody|sales"
    r"|representative|colleague|agent)\b"
    r"|\b(?:get|want|need) (?:me )?(?:a |an )?(?:human|real person|representative)\b"
)
_CURRENT = re.compile(rf"\b(?:which|what) {_SLIDE} (?:is this|are we)\b|\bwhere are we\b")


@dataclass(frozen=True)
class ToolRequest:
    name: str
    arguments: dict[str, Any] = field(default_factory=dict)


Reply = ToolRequest | str


def normalise(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s']", " ", text.lower().replace("-", " ")).split())


def _count(word: str) -> int:
    if word.isdigit():
        return int(word)
    return _NUMBERS.get(word) or _ORDINALS.get(word) or 1


def topic_of(utterance: str) -> str | None:
    """What the user wants to be shown ("go back to the part about pricing" → "pricing")."""
    text = normalise(utterance)
    if (put := _PUT_UP.match(text)) is not None:
        return _TOPIC_LEAD.sub("", put["topic"]).strip() or None
    if _QUESTION_START.match(text):
        return None
    match = _TOPIC.search(text)
    if match is None:
        return None
    topic = _TOPIC_TAIL.sub("", _TOPIC_LEAD.sub("", match["topic"])).strip()
    if not topic or (_NOT_A_TOPIC.match(topic) and not _ABOUT.search(text)):
        return None
    return topic


def relative_move(text: str) -> int | None:
    """Slides to move by: +3 for "skip three ahead", -2 for "two slides back"; None when the
    words ask for no counted move."""
    for pattern in _RELATIVE:
        if (match := pattern.search(text)) is None:
            continue
        words = match.groupdict()
        direction = words.get("dir2") or words.get("dir") or ""
        if not direction:
            direction = "back" if words.get("verb") in ("rewind", "back up") else "ahead"
        n = _count(match["n"])
        backward = re.fullmatch(_BACKWARD_WORDS, direction) is not None
        return -n if backward else n
    return None


def intent_for(utterance: str, language: str = "en") -> Reply:
    """The first step of a reply to what the user said: a tool to call, or words to say.
    ``language``: the session's; Spanish has rules of its own, other languages search."""
    if language == "es":
        from shared import intents_es  # it imports this module's types

        return intents_es.intent_for(utterance)
    if language != "en":
        return ToolRequest("search_slides", {"query": utterance.strip()})
    text = normalise(utterance)
    if not text:
        return DIDNT_CATCH
    if _PUT_UP.match(text) and (topic := topic_of(utterance)):
        return ToolRequest("goto_slide", {"topic": topic})
    if (steps := relative_move(text)) is not None:
        if steps > 1:
            return ToolRequest("next_slide", {"slides": steps})
        if steps < -1:
            return ToolRequest("previous_slide", {"slides": -steps})
        return ToolRequest("next_slide" if steps > 0 else "previous_slide")
    if match := _GOTO.search(text) or _GOTO_ORDINAL.search(text):
        return ToolRequest("goto_slide", {"slide_number": _count(match["n"])})
    if _FIRST.search(text):
        return ToolRequest("goto_slide", {"slide_number": 1})
    if _LAST.search(text):
        return ToolRequest("last_slide")
    if _ESCALATE.search(text):
        return ToolRequest("escalate_to_human", {"reason": ASKED_FOR_A_PERSON})
    if topic := topic_of(utterance):
        return ToolRequest("goto_slide", {"topic": topic})
    if _NEXT.search(text):
        return ToolRequest("next_slide")
    if _PREVIOUS.search(text):
        return ToolRequest("previous_slide")
    if _CURRENT.search(text):
        return ToolRequest("current_slide")
    if _PAUSE.search(text):
        return ToolRequest("pause_presentation")
    if _RESUME.search(text):
        return ToolRequest("resume_presentation")
    if _DECLINE.match(text):
        return CARRY_ON_LATER
    return ToolRequest("search_slides", {"query": utterance.strip()})


def relative_target(current: int, steps: int, count: int) -> int:
    """The slide ``steps`` away from ``current`` in a deck of ``count``, kept inside the deck."""
    return max(1, min(count, current + steps))


def answer_text(index: int, title: str | None, snippet: str, language: str = "en") -> str:
    """What the presenter says when the deck answers: the slide first, then what it says."""
    if title and snippet.lower().startswith(title.lower() + ":"):  # chunks carry their title
        snippet = snippet[len(title) + 1 :].strip()
    # A short first sentence: the TTS speaks sentence by sentence, so the user hears the slide
    # number while the rest is still being synthesized.
    if language != "en":
        key = "answer" if title else "answer_untitled"
        return phrase(language, key, index=index, title=title, snippet=snippet)
    return f"That's on slide {index}, {title or 'untitled'}. {snippet}"
