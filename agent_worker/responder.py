"""The offline "LLM": a deterministic, deck-grounded responder, labelled
``podium-offline-responder`` wherever a model name shows (metrics, turn logs).

No language model small enough to ship offline answers a deck's questions correctly, so with no
LLM configured the presenter runs on rules instead. It reads the user's last words and answers
the way a real model would, through the same tools: a navigation request ("next slide", "go to
slide 3", "go back to the part about pricing") becomes the matching tool call; anything else is
treated as a question and searched in the deck. Once a tool's output is in the chat, it speaks
from it: the new slide, the best search hit ("That's on slide 4, Pricing. …"), or — when even
the best hit is weak — "The deck doesn't cover that." It never makes up an answer.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from livekit.agents import APIConnectOptions, llm, utils
from livekit.agents.llm import ChatChunk, ChoiceDelta, FunctionToolCall
from livekit.agents.types import DEFAULT_API_CONNECT_OPTIONS, NOT_GIVEN, NotGivenOr

from .presenter import MIN_RELEVANCE, NO_MATCH, SEARCH_HIT_LINE

MODEL_NAME = "podium-offline-responder"

# A search hit scoring below this does not answer the question (see presenter.py).
DEFAULT_MIN_SCORE = MIN_RELEVANCE

DOESNT_COVER = "The deck doesn't cover that."
DIDNT_CATCH = "Sorry, I didn't catch that."

_NUMBERS = {
    word: value
    for value, word in enumerate(
        [
            "one",
            "two",
            "three",
            "four",
            "five",
            "six",
            "seven",
            "eight",
            "nine",
            "ten",
            "eleven",
            "twelve",
            "thirteen",
            "fourteen",
            "fifteen",
            "sixteen",
            "seventeen",
            "eighteen",
            "nineteen",
            "twenty",
        ],
        start=1,
    )
} | {"first": 1, "second": 2, "third": 3}
_NUMBER = r"(?P<n>\d+|" + "|".join(_NUMBERS) + r")"
_GOTO = re.compile(rf"\b(?:slide|page)(?: number)? {_NUMBER}\b")
_FIRST = re.compile(
    r"\b(?:first slide|(?:to|from) the (?:beginning|start)|start over|from the top)\b"
)
_LAST = re.compile(r"\b(?:last slide|final slide|to the end)\b")
_TOPIC = re.compile(
    r"\b(?:(?:slide|part|section|bit|page|one)s? (?:about|on|covering|with)"
    r"|(?:go|jump|skip|take me|move|switch|flip)(?: back)? to)"
    r" (?P<topic>.+)$"
)
_TOPIC_LEAD = re.compile(
    r"^(?:the )?(?:(?:slide|part|section|bit|page|one)s? (?:about|on|covering|with|where) )?"
    r"(?:the )?"
)
_NOT_A_TOPIC = re.compile(r"^(?:next|previous|last|first|slide|page|start|beginning|end)\b")
# "side" and "slides": how Whisper tiny.en often hears "slide" (seen in our e2e runs).
_SLIDE = r"(?:slides?|sides?|one|page)"
_NEXT = re.compile(
    rf"\bnext {_SLIDE}\b|^(?:ok(?:ay)? |and |so )?next(?: please)?$"
    r"|\b(?:move on|go forward|skip (?:this|ahead))\b"
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
CARRY_ON_LATER = "Okay. Ask me anything, or say carry on when you're ready."
ASKED_FOR_A_PERSON = "The user asked to speak to a person."
_PREVIOUS = re.compile(
    rf"\bprevious {_SLIDE}\b|^(?:ok(?:ay)? )?(?:back|previous)(?: please)?$"
    r"|\b(?:go back|back up|one back)\b"
)
_CURRENT = re.compile(rf"\b(?:which|what) {_SLIDE} (?:is this|are we)\b|\bwhere are we\b")


@dataclass(frozen=True)
class ToolRequest:
    name: str
    arguments: dict[str, Any] = field(default_factory=dict)


Reply = ToolRequest | str


def _normalise(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s']", " ", text.lower()).split())


def _number(word: str) -> int:
    return int(word) if word.isdigit() else _NUMBERS[word]


def topic_of(utterance: str) -> str | None:
    """What the user wants to be shown ("go back to the part about pricing" → "pricing")."""
    match = _TOPIC.search(_normalise(utterance))
    if match is None:
        return None
    topic = _TOPIC_LEAD.sub("", match["topic"]).strip()
    return None if not topic or _NOT_A_TOPIC.match(topic) else topic


def intent_for(utterance: str) -> Reply:
    """The first step of a reply to what the user said: a tool to call, or words to say."""
    text = _normalise(utterance)
    if not text:
        return DIDNT_CATCH
    if match := _GOTO.search(text):
        return ToolRequest("goto_slide", {"slide_number": _number(match["n"])})
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


@dataclass(frozen=True)
class Hit:
    index: int
    title: str
    score: float
    snippet: str


def parse_hits(output: str) -> list[Hit]:
    hits = []
    for line in output.splitlines():
        if match := SEARCH_HIT_LINE.match(line.strip()):
            hits.append(
                Hit(int(match["index"]), match["title"], float(match["score"]), match["snippet"])
            )
    return hits


def _answer(hit: Hit) -> str:
    snippet = hit.snippet
    if snippet.lower().startswith(hit.title.lower() + ":"):  # chunks carry their slide's title
        snippet = snippet[len(hit.title) + 1 :].strip()
    # A short first sentence: the TTS speaks sentence by sentence, so the user hears the slide
    # number while the rest is still being synthesized.
    return f"That's on slide {hit.index}, {hit.title}. {snippet}"


def reply_for(chat_ctx: llm.ChatContext, *, min_score: float) -> Reply:
    """The next step of the current turn, from what the chat holds after the user's last words."""
    items = chat_ctx.items
    last_user = None
    for position, item in enumerate(items):
        if isinstance(item, llm.ChatMessage) and item.role == "user":
            last_user, utterance = position, item.text_content or ""
    if last_user is None:
        return ""  # nothing was said: nothing to answer
    outputs = [i for i in items[last_user + 1 :] if isinstance(i, llm.FunctionCallOutput)]
    if not outputs:
        return intent_for(utterance)
    output = outputs[-1]
    if output.is_error or output.name != "search_slides":
        return output.output  # a navigation result ("Now on slide 4 of 8: Pricing.") or refusal
    hits = parse_hits(output.output)
    best = max(hits, key=lambda h: h.score) if hits else None
    if best is None or best.score < min_score or output.output == NO_MATCH:
        return DOESNT_COVER
    return _answer(best)


class OfflineResponder(llm.LLM[Any]):
    def __init__(self, *, min_score: float = DEFAULT_MIN_SCORE) -> None:
        super().__init__()
        self._min_score = min_score

    @property
    def model(self) -> str:
        return MODEL_NAME

    @property
    def provider(self) -> str:
        return "podium"

    def chat(
        self,
        *,
        chat_ctx: llm.ChatContext,
        tools: list[llm.Tool] | None = None,
        conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS,
        parallel_tool_calls: NotGivenOr[bool] = NOT_GIVEN,
        tool_choice: NotGivenOr[llm.ToolChoice] = NOT_GIVEN,
        extra_kwargs: NotGivenOr[dict[str, Any]] = NOT_GIVEN,
    ) -> llm.LLMStream:
        reply = reply_for(chat_ctx, min_score=self._min_score)
        available = set(llm.ToolContext(tools or []).function_tools)
        if isinstance(reply, ToolRequest) and reply.name not in available:
            reply = DOESNT_COVER if reply.name == "search_slides" else "I can't do that here."
        return _ResponderStream(
            self, reply, chat_ctx=chat_ctx, tools=tools or [], conn_options=conn_options
        )


class _ResponderStream(llm.LLMStream):
    def __init__(
        self,
        responder: OfflineResponder,
        reply: Reply,
        *,
        chat_ctx: llm.ChatContext,
        tools: list[llm.Tool],
        conn_options: APIConnectOptions,
    ) -> None:
        super().__init__(responder, chat_ctx=chat_ctx, tools=tools, conn_options=conn_options)
        self._reply = reply

    async def _run(self) -> None:
        request_id = utils.shortuuid("offline_")
        if isinstance(self._reply, ToolRequest):
            call = FunctionToolCall(
                name=self._reply.name,
                arguments=json.dumps(self._reply.arguments),
                call_id=utils.shortuuid("call_"),
            )
            delta = ChoiceDelta(role="assistant", tool_calls=[call])
        elif self._reply:
            delta = ChoiceDelta(role="assistant", content=self._reply)
        else:
            return
        self._event_ch.send_nowait(ChatChunk(id=request_id, delta=delta))
