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
from dataclasses import dataclass
from typing import Any

from livekit.agents import APIConnectOptions, llm, utils
from livekit.agents.llm import ChatChunk, ChoiceDelta, FunctionToolCall
from livekit.agents.types import DEFAULT_API_CONNECT_OPTIONS, NOT_GIVEN, NotGivenOr

from shared.intents import DOESNT_COVER, Reply, ToolRequest, answer_text, intent_for
from shared.languages import phrase

from .audience import speaker_of
from .presenter import NO_MATCH, NOT_COVERED, SEARCH_HIT_LINE

MODEL_NAME = "podium-offline-responder"


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


_NOW_ON = re.compile(r"^Now on slide (?P<index>\d+) of (?P<total>\d+): (?P<title>.*)\.$")


def _in_language(output: str, language: str) -> str:
    """A navigation tool's confirmation in the session's language (the tools answer in English,
    which a cloud model reads and rephrases; the offline responder speaks it as it is)."""
    if language != "en" and (match := _NOW_ON.match(output)) is not None:
        return phrase(language, "now_on", **match.groupdict())
    return output


def reply_for(chat_ctx: llm.ChatContext, language: str = "en") -> Reply:
    """The next step of the current turn, from what the chat holds after the user's last words;
    what it says starts with the speaker's name when the model is told who spoke (a room with
    several people: "[Ada] what does it cost?"). ``language``: the session's, for the
    navigation rules and the sentences spoken."""
    name, reply = _unnamed_reply(chat_ctx, language)
    if name is None or not isinstance(reply, str) or not reply:
        return reply
    lead = (
        reply if reply.startswith("I ") or reply.startswith("I'") else reply[:1].lower() + reply[1:]
    )
    return f"{name}, {lead}"


def words_after(
    chat_ctx: llm.ChatContext, call: FunctionToolCall, output: str, language: str = "en"
) -> str | None:
    """What the responder will say once ``call`` (made by it for the turn in ``chat_ctx``)
    returns ``output``: its next step, known before the tool has run (``rehearsal.py``)."""
    after = chat_ctx.copy()
    after.items.append(
        llm.FunctionCall(call_id=call.call_id, name=call.name, arguments=call.arguments)
    )
    after.items.append(
        llm.FunctionCallOutput(call_id=call.call_id, name=call.name, output=output, is_error=False)
    )
    reply = reply_for(after, language)
    return reply if isinstance(reply, str) and reply else None


def _unnamed_reply(chat_ctx: llm.ChatContext, language: str) -> tuple[str | None, Reply]:
    items = chat_ctx.items
    last_user = None
    for position, item in enumerate(items):
        if isinstance(item, llm.ChatMessage) and item.role == "user":
            last_user, utterance = position, item.text_content or ""
    if last_user is None:
        return None, ""  # nothing was said: nothing to answer
    name, utterance = speaker_of(utterance)
    outputs = [i for i in items[last_user + 1 :] if isinstance(i, llm.FunctionCallOutput)]
    if not outputs:
        return name, intent_for(utterance, language)
    output = outputs[-1]
    if output.is_error or output.name != "search_slides":
        # a navigation result ("Now on slide 4 of 8: Pricing.") or refusal
        return name, _in_language(output.output, language)
    hits = parse_hits(output.output)
    if not hits or output.output == NO_MATCH or NOT_COVERED in output.output:
        return name, DOESNT_COVER if language == "en" else phrase(language, "doesnt_cover")
    best = hits[0]  # the control plane's ranking, which the verdict is about
    return name, answer_text(best.index, best.title, best.snippet, language)


class OfflineResponder(llm.LLM[Any]):
    def __init__(self, language: str = "en") -> None:
        super().__init__()
        self._language = language

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
        reply = reply_for(chat_ctx, self._language)
        available = set(llm.ToolContext(tools or []).function_tools)
        if isinstance(reply, ToolRequest) and reply.name not in available:
            key = "doesnt_cover" if reply.name == "search_slides" else "cannot"
            reply = phrase(self._language, key)
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
