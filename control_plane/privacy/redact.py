"""Redaction of what a worker sends, before it is stored (and so before any export, webhook,
replay or resume reads it): the conversation, the turn log and escalations.

Detection is CPU-bound (milliseconds a sentence), so a batch is redacted in one thread hop.
The live model is not affected: it heard the words during the session; only what is kept
afterwards is redacted.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from control_plane.metrics import REDACTIONS
from shared.redaction import Mode, Redacted, redact, word_spans
from shared.schemas import ConversationMessage, EscalationRequest, ToolCallRecord, TurnRecord

# Word timings are the recogniser's guess: widen each span so a word's edges are silent too.
PAD_S = 0.2


@dataclass(frozen=True)
class Span:
    """Where personal data was spoken (Unix times), to silence in the recording."""

    start: float
    end: float
    entities: tuple[str, ...]


def _text(value: str, mode: Mode) -> str:
    return _counted(redact(value, mode)).text


def _counted(found: Redacted) -> Redacted:
    for finding in found.findings:
        REDACTIONS.labels(finding.entity).inc()
    return found


def _optional(value: str | None, mode: Mode) -> str | None:
    return None if value is None else _text(value, mode)


async def messages(items: list[ConversationMessage], mode: Mode) -> list[ConversationMessage]:
    if mode == "off":
        return items

    def run() -> list[ConversationMessage]:
        return [m.model_copy(update={"text": _text(m.text, mode)}) for m in items]

    return await asyncio.to_thread(run)


async def turns(items: list[TurnRecord], mode: Mode) -> tuple[list[TurnRecord], list[Span]]:
    """Each turn with the user's and the model's words, tool arguments and results redacted;
    and the spans of the user's audio that held what was found."""
    if mode == "off":
        return items, []

    def run() -> tuple[list[TurnRecord], list[Span]]:
        spans: list[Span] = []
        out: list[TurnRecord] = []
        for turn in items:
            update: dict[str, object] = {
                "agent_text": _optional(turn.agent_text, mode),
                "tool_calls": [_tool_call(c, mode) for c in turn.tool_calls],
            }
            if turn.user_text is not None:
                found = _counted(redact(turn.user_text, mode))
                update["user_text"] = found.text
                if found.findings and turn.user_words:
                    words = [(w.word, w.start, w.end) for w in turn.user_words]
                    spans.extend(
                        Span(start - PAD_S, end + PAD_S, (finding.entity,))
                        for finding in found.findings
                        for start, end in word_spans(turn.user_text, [finding], words)
                    )
            out.append(turn.model_copy(update=update))
        return out, spans

    return await asyncio.to_thread(run)


def _tool_call(call: ToolCallRecord, mode: Mode) -> ToolCallRecord:
    return call.model_copy(
        update={"arguments": _text(call.arguments, mode), "output": _optional(call.output, mode)}
    )


async def escalation(request: EscalationRequest, mode: Mode) -> EscalationRequest:
    if mode == "off":
        return request

    def run() -> EscalationRequest:
        return request.model_copy(
            update={
                "reason": _text(request.reason, mode),
                "last_question": _optional(request.last_question, mode),
                "attempted_answer": _optional(request.attempted_answer, mode),
            }
        )

    return await asyncio.to_thread(run)
