"""WebVTT for a session's transcript: one cue per message, timed from the session's start."""

from __future__ import annotations

from datetime import datetime, timedelta

import asyncpg

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


def render(origin: datetime | None, lines: list[asyncpg.Record]) -> str:
    out = ["WEBVTT", ""]
    if not lines:
        return "\n".join(out)
    start_of = [line["started_at"] or line["created_at"] for line in lines]
    zero = min([origin, *start_of] if origin else start_of)
    previous_start = timedelta(0)
    for line, started in zip(lines, start_of, strict=True):
        begin = max(started - zero, previous_start)
        ended = line["ended_at"]
        end = ended - zero if ended is not None and ended > started else begin + _DEFAULT_CUE
        if end <= begin:  # shifted after the previous cue, or its times were inconsistent
            end = begin + _DEFAULT_CUE
        speaker = "User" if line["role"] == "user" else "Presenter"
        out.append(str(line["seq"]))
        out.append(f"{_stamp(begin)} --> {_stamp(end)}")
        out.append(f"<v {speaker}>{_escape(line['text'])}")
        out.append("")
        previous_start = begin
    return "\n".join(out)
