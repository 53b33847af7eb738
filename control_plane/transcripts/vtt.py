"""WebVTT for a session's transcript: one cue per message, timed from the session's start."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

# A message whose speaking times were not measured gets a cue this long.
_DEFAULT_CUE = timedelta(seconds=2)


def _stamp(offset: timedelta) -> str:
    millis = max(int(offset.total_seconds() * 1000), 0)
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds, millis = divmod(rest, 1000)
    return f"{hours:02}:{minutes:02}:{seconds:02}.{millis:03}"


def _escape(text: str) -> str:
    # "-->" would end a cue's timing line, and a blank line would end the cue.
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return "\n".join(line for line in text.splitlines() if line.strip())


HEADER = "WEBVTT\n"


class Cues:
    """Writes a transcript's cues page by page (a long session's transcript is streamed, never
    held whole): ``zero`` is the transcript's time origin, and each cue starts no earlier than
    the one before it, across pages too."""

    def __init__(self, zero: datetime) -> None:
        self._zero = zero
        self._previous_start = timedelta(0)

    def write(self, lines: Sequence[Mapping[str, Any]]) -> str:
        out: list[str] = []
        for line in lines:
            started = line["started_at"] or line["created_at"]
            begin = max(started - self._zero, self._previous_start)
            ended = line["ended_at"]
            end = (
                ended - self._zero
                if ended is not None and ended > started
                else begin + _DEFAULT_CUE
            )
            if end <= begin:  # shifted after the previous cue, or its times were inconsistent
                end = begin + _DEFAULT_CUE
            speaker = "User" if line["role"] == "user" else "Presenter"
            # A blank line ends the previous cue (or the header).
            out.append(
                f"\n{line['seq']}\n{_stamp(begin)} --> {_stamp(end)}\n"
                f"<v {speaker}>{_escape(line['text'])}\n"
            )
            self._previous_start = begin
        return "".join(out)


def origin(*times: datetime | None) -> datetime | None:
    """Cue times count from the earliest of these: the session's start, its first line (one
    stored before the session was marked started begins earlier)."""
    return min((t for t in times if t is not None), default=None)


def render(session_start: datetime | None, lines: Sequence[Mapping[str, Any]]) -> str:
    """The whole document at once, for a transcript already in memory."""
    zero = origin(session_start, *(line["started_at"] or line["created_at"] for line in lines))
    return HEADER + (Cues(zero).write(lines) if zero is not None else "")
