"""One session's analytics from its records: pure functions, no I/O.

Time per slide walks the slide transitions over the session's presence window: from the
presenter joining (``started_at``) to the end (``ended_at``; for a session ended for silence,
its last activity, so the idle wait is not counted as attention; a live session: now). Paused
time is counted apart (``paused_seconds``), not as time on the slide.
"""

from __future__ import annotations

import bisect
import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from control_plane.analytics import declines
from control_plane.analytics.schemas import (
    Escalation,
    Interruption,
    Navigation,
    NavigationKind,
    Question,
    SessionSummary,
)

MOVES = frozenset({"next", "previous", "goto", "first", "last"})


@dataclass(frozen=True)
class Transition:
    at: datetime
    action: str
    from_index: int | None
    to_index: int
    paused: bool
    actor: str
    idempotency_key: str


def navigation_kind(t: Transition) -> NavigationKind | None:
    """Who asked for a move; None for the narration's own moves, starts, pauses, resumes."""
    if t.action not in MOVES:
        return None
    if t.actor.startswith("participant:"):
        return "listener"
    if t.actor == "api":
        return "api"
    # The narrator's moves carry 'narration-v<version>' keys; the tools' 'tool-<call id>'.
    return None if t.idempotency_key.startswith("narration-") else "voice"


def session_window(row: Any, now: datetime) -> tuple[datetime | None, datetime]:
    """(from, to) of the time the session had an audience."""
    end: datetime = row["ended_at"] or now
    if row["end_reason"] == "idle_timeout" and row["last_activity_at"] is not None:
        end = min(end, row["last_activity_at"])
    start: datetime | None = row["started_at"]
    if start is not None and end < start:
        end = start
    return start, end


@dataclass
class SlideTally:
    seconds: float = 0.0
    paused_seconds: float = 0.0
    visits: int = 0
    questions: int = 0
    declined: int = 0
    interruptions: int = 0
    navigation_requests: int = 0
    reached: int = 0
    drop_offs: int = 0


@dataclass
class SessionFacts:
    """Everything one session contributes, per slide and in lists."""

    summary: SessionSummary
    slides: dict[int, SlideTally] = field(default_factory=dict)
    questions: list[Question] = field(default_factory=list)
    navigation: list[Navigation] = field(default_factory=list)
    interruptions: list[Interruption] = field(default_factory=list)
    escalations: list[Escalation] = field(default_factory=list)


class Timeline:
    """Which slide showed when, from a session's transitions (in version order)."""

    def __init__(self, transitions: list[Transition]) -> None:
        self._transitions = transitions
        self._times = [t.at for t in transitions]

    def slide_at(self, at: datetime) -> int | None:
        i = bisect.bisect_right(self._times, at) - 1
        if i < 0:
            return self._transitions[0].to_index if self._transitions else None
        return self._transitions[i].to_index

    def dwell(self, start: datetime, end: datetime) -> dict[int, tuple[float, float]]:
        """Slide → (seconds shown unpaused, seconds paused) within [start, end]."""
        found: dict[int, tuple[float, float]] = {}
        for i, t in enumerate(self._transitions):
            until = self._times[i + 1] if i + 1 < len(self._times) else end
            seconds = (min(until, end) - max(t.at, start)).total_seconds()
            if seconds <= 0:
                continue
            shown, paused = found.get(t.to_index, (0.0, 0.0))
            found[t.to_index] = (shown, paused + seconds) if t.paused else (shown + seconds, paused)
        return found


def session_facts(
    row: Any,
    slide_count: int,
    transitions: list[Transition],
    turns: list[Any],
    interrupted_at: list[datetime],
    escalations: list[Any],
    now: datetime,
) -> SessionFacts:
    sid: UUID = row["id"]
    timeline = Timeline(transitions)
    start, end = session_window(row, now)
    tallies: dict[int, SlideTally] = {}

    def tally(index: int | None) -> SlideTally | None:
        if index is None:
            return None
        return tallies.setdefault(index, SlideTally())

    if start is not None:
        for index, (shown, paused) in timeline.dwell(start, end).items():
            slide = tally(index)
            assert slide is not None
            slide.seconds, slide.paused_seconds = shown, paused
    previous: int | None = None
    for t in transitions:
        if t.to_index != previous and (slide := tally(t.to_index)):
            slide.visits += 1
        previous = t.to_index
    for index in {t.to_index for t in transitions}:
        if slide := tally(index):
            slide.reached = 1

    questions = [_question(sid, turn, timeline) for turn in turns]
    for q in questions:
        if slide := tally(q.slide_index):
            slide.questions += 1
            slide.declined += q.declined
    navigation = []
    for t in transitions:
        kind = navigation_kind(t)
        if kind is not None:
            navigation.append(
                Navigation(
                    session_id=sid,
                    at=t.at,
                    action=t.action,
                    from_index=t.from_index,
                    to_index=t.to_index,
                    by=kind,
                )
            )
            if slide := tally(t.to_index):
                slide.navigation_requests += 1
    interruptions = [
        Interruption(session_id=sid, at=at, slide_index=timeline.slide_at(at))
        for at in interrupted_at
    ]
    for i in interruptions:
        if slide := tally(i.slide_index):
            slide.interruptions += 1
    escalated = [
        Escalation(
            session_id=sid,
            at=e["created_at"],
            reason=e["reason"],
            slide_index=e["slide_index"] or timeline.slide_at(e["created_at"]),
        )
        for e in escalations
    ]

    max_slide = max((t.to_index for t in transitions), default=None)
    drop_off = None
    if row["status"] == "ended" and transitions:
        last_shown = timeline.slide_at(end)
        if last_shown is not None and last_shown < slide_count:
            drop_off = last_shown
            if slide := tally(drop_off):
                slide.drop_offs = 1
    summary = SessionSummary(
        session_id=sid,
        status=row["status"],
        created_at=row["created_at"],
        started_at=row["started_at"],
        ended_at=row["ended_at"],
        end_reason=row["end_reason"],
        length_seconds=(end - start).total_seconds() if start is not None else 0.0,
        max_slide=max_slide,
        completion=round(max_slide / slide_count, 4) if max_slide and slide_count else None,
        drop_off_slide=drop_off,
        questions=len(questions),
        declined=sum(q.declined for q in questions),
        interruptions=len(interruptions),
        navigation_requests=len(navigation),
        escalations=len(escalated),
    )
    return SessionFacts(summary, tallies, questions, navigation, interruptions, escalated)


def _question(sid: UUID, turn: Any, timeline: Timeline) -> Question:
    record: dict[str, Any] = turn["record"]
    text = (record.get("user_text") or "").strip()
    if not text:  # words dropped by the data policy: the search query is the model's version
        for call in declines.search_calls(record):
            text = _query(call.get("arguments"))
            if text:
                break
    before = record.get("slide_before")
    return Question(
        session_id=sid,
        turn=turn["number"],
        at=turn["started_at"],
        slide_index=before if isinstance(before, int) else timeline.slide_at(turn["started_at"]),
        text=text,
        declined=declines.is_declined(record),
    )


def _query(arguments: Any) -> str:
    try:
        parsed = json.loads(arguments) if isinstance(arguments, str) else None
    except ValueError:
        return ""
    query = parsed.get("query") if isinstance(parsed, dict) else None
    return query.strip() if isinstance(query, str) else ""


def reasons(escalations: list[Escalation]) -> dict[str, int]:
    return dict(Counter(e.reason for e in escalations).most_common())
