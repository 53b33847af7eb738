"""Re-driving one recorded turn through the presenter in text mode."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from livekit.agents import AgentSession, llm
from livekit.agents.metrics import LLMMetrics
from livekit.agents.voice.events import MetricsCollectedEvent
from livekit.agents.voice.run_result import (
    ChatMessageEvent,
    FunctionCallEvent,
    FunctionCallOutputEvent,
    RunResult,
)

from shared.schemas import StoredTurn

from ..presenter import Presenter
from .records import RecordedDeck


@dataclass
class Replayed:
    agent_text: str | None
    tool_calls: list[tuple[str, Any, str | None]]  # name, parsed arguments, output
    slide_after: int
    seconds: float
    llm_ttft: list[float] = field(default_factory=list)
    model: str = ""


def history_before(
    turn: StoredTurn, lines: list[dict[str, Any]], turns: list[StoredTurn]
) -> llm.ChatContext:
    """What the model had before the turn: the conversation up to the turn's user message (or
    its start, without one), with the tool calls and results of the turns before it, in time
    order."""
    cut = len(lines)
    if turn.user_text:
        matches = [
            i
            for i, line in enumerate(lines)
            if line["role"] == "user" and line["text"].strip() == turn.user_text.strip()
        ]
        if matches:
            cut = matches[0] if len(matches) == 1 else _nearest(matches, lines, turn)
    else:
        started = turn.started_at.timestamp()
        cut = next((i for i, line in enumerate(lines) if _at(line) > started), len(lines))
    entries: list[tuple[float, int, llm.ChatItem]] = [
        (
            _at(line),
            0,
            llm.ChatMessage(
                role=line["role"],
                content=[line["text"]],
                id=line["item_id"],
                interrupted=line["interrupted"],
            ),
        )
        for line in lines[:cut]
    ]
    for earlier in turns:
        if earlier.number >= turn.number:
            continue
        for call in earlier.tool_calls:
            if call.output is None or call.started_at is None:
                continue  # a call without its result cannot be shown to a model
            done = call.started_at + (call.duration or 0.0)
            entries.append(
                (
                    call.started_at,
                    1,
                    llm.FunctionCall(
                        call_id=call.call_id, name=call.name, arguments=call.arguments
                    ),
                )
            )
            entries.append(
                (
                    done,
                    2,
                    llm.FunctionCallOutput(
                        call_id=call.call_id,
                        name=call.name,
                        output=call.output,
                        is_error=call.is_error,
                    ),
                )
            )
    entries.sort(key=lambda entry: (entry[0], entry[1]))
    return llm.ChatContext([item for _, _, item in entries])


def _at(line: dict[str, Any]) -> float:
    return datetime.fromisoformat(line["started_at"] or line["created_at"]).timestamp()


def _nearest(matches: list[int], lines: list[dict[str, Any]], turn: StoredTurn) -> int:
    return min(matches, key=lambda i: abs(_at(lines[i]) - turn.started_at.timestamp()))


async def replay_turn(
    turn: StoredTurn, chat: llm.ChatContext, deck: RecordedDeck, model: llm.LLM[Any]
) -> Replayed:
    ttft: list[float] = []

    def on_metrics(event: MetricsCollectedEvent) -> None:
        if isinstance(event.metrics, LLMMetrics) and event.metrics.ttft >= 0:
            ttft.append(event.metrics.ttft)

    async with AgentSession[None](llm=model) as session:
        session.on("metrics_collected", on_metrics)
        await session.start(Presenter(deck=deck, chat_ctx=chat))
        started = time.perf_counter()
        result: RunResult[None] = await session.run(user_input=turn.user_text or "")
        seconds = time.perf_counter() - started
    said: list[str] = []
    calls: dict[str, tuple[str, Any, str | None]] = {}
    for event in result.events:
        if isinstance(event, ChatMessageEvent) and event.item.role == "assistant":
            said.append(event.item.text_content or "")
        elif isinstance(event, FunctionCallEvent):
            calls[event.item.call_id] = (
                event.item.name,
                parse_arguments(event.item.arguments),
                None,
            )
        elif isinstance(event, FunctionCallOutputEvent) and event.item.call_id in calls:
            name, args, _ = calls[event.item.call_id]
            calls[event.item.call_id] = (name, args, event.item.output)
    return Replayed(
        agent_text=" ".join(s for s in said if s).strip() or None,
        tool_calls=list(calls.values()),
        slide_after=deck.index,
        seconds=seconds,
        llm_ttft=ttft,
        model=f"{model.provider}/{model.model}",
    )


def parse_arguments(raw: str) -> Any:
    try:
        return json.loads(raw) if raw else {}
    except ValueError:
        return raw


def same_tools(turn: StoredTurn, replayed: Replayed) -> bool:
    recorded = [(c.name, parse_arguments(c.arguments)) for c in turn.tool_calls]
    return recorded == [(name, args) for name, args, _ in replayed.tool_calls]
