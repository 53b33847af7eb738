"""What integrators and engineers read off a session's records: webhook signatures that verify
only for the exact body, secret and a fresh timestamp; WebVTT cues in order with safe text; and
the replay waterfall measured from the end of the user's speech."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

from agent_worker.replay import render_waterfall, waterfall
from control_plane.transcripts import vtt
from control_plane.webhooks.signing import new_secret, signature, verify
from shared.schemas import StoredTurn


def test_a_signature_verifies_only_for_the_same_secret_body_and_a_fresh_timestamp() -> None:
    secret = new_secret()
    body = b'{"type":"session.ended","data":{"session_id":"x"}}'
    stamp = 1_800_000_000
    signed = signature(secret, stamp, body)
    assert signed.startswith("v1=") and len(signed) == 3 + 64
    assert verify(secret, str(stamp), body, signed, now=stamp + 10)
    # Several signatures (a secret being rotated) may be sent comma-separated.
    assert verify(secret, str(stamp), body, f"v1=00, {signed}", now=stamp)
    assert not verify(secret, str(stamp), body + b" ", signed, now=stamp)
    assert not verify(new_secret(), str(stamp), body, signed, now=stamp)
    assert not verify(secret, str(stamp + 1), body, signed, now=stamp)
    assert not verify(secret, str(stamp), body, signed, now=stamp + 301)  # replayed late
    assert not verify(secret, "yesterday", body, signed, now=stamp)


class _Line(dict[str, object]):
    pass


def _line(
    seq: int, role: str, text: str, start: float | None, end: float | None, stored: float = 0
) -> _Line:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    return _Line(
        seq=seq,
        role=role,
        text=text,
        started_at=t0 + timedelta(seconds=start) if start is not None else None,
        ended_at=t0 + timedelta(seconds=end) if end is not None else None,
        created_at=t0 + timedelta(seconds=stored or (end or 0) + 0.5),
    )


def test_webvtt_cues_are_ordered_timed_and_escaped() -> None:
    lines = [
        _line(1, "assistant", "Hello, Ada!", 0.0, 1.25),
        _line(2, "user", "a --> b <i>\n\nc", 3600 + 2.0, 3600 + 3.0),
        _line(3, "assistant", "No times measured", None, None, stored=3603.5),
        _line(4, "user", "Stored late, spoken early", 1.0, 1.5),
    ]
    out = vtt.render(datetime(2026, 1, 1, tzinfo=UTC), lines)
    cues = out.split("\n\n")
    assert cues[0] == "WEBVTT"
    assert cues[1] == "1\n00:00:00.000 --> 00:00:01.250\n<v Presenter>Hello, Ada!"
    # No raw "-->" or blank line inside a cue, and hours roll over.
    assert cues[2] == "2\n01:00:02.000 --> 01:00:03.000\n<v User>a --&gt; b &lt;i&gt;\nc"
    # A line without measured times is placed at its arrival, never before the previous cue.
    assert cues[3].startswith("3\n01:00:03.500 --> 01:00:05.500\n")
    # Cues never start before the previous one (players expect them in order).
    assert cues[4].startswith("4\n01:00:03.500 --> 01:00:05.500\n")
    assert vtt.render(None, []) == "WEBVTT\n"


def test_the_waterfall_starts_at_the_end_of_the_users_speech() -> None:
    now = datetime.now(UTC)
    turn = StoredTurn.model_validate(
        {
            "number": 1,
            "session_id": uuid4(),
            "turn_id": "speech_1",
            "started_at": now,
            "ended_at": now,
            "timings": {
                "user_stopped_at": 1000.0,
                "end_of_turn_delay": 0.5,
                "transcription_delay": 0.25,
                "e2e_latency": 1.0,
            },
            "tool_calls": [
                {
                    "call_id": "c1",
                    "name": "search_slides",
                    "arguments": "{}",
                    "started_at": 1000.7,
                    "duration": 0.1,
                }
            ],
            "calls": [
                {"stage": "stt", "model": "whisper", "started_at": 999.9, "duration": 0.3},
                {
                    "stage": "llm",
                    "model": "m",
                    "started_at": 1000.5,
                    "duration": 0.2,
                    "first_output": 0.05,
                },
            ],
        }
    )
    bars = {b.label: b for b in waterfall(turn)}
    assert (bars["end of turn (EOU)"].start, bars["end of turn (EOU)"].end) == (0.0, 0.5)
    assert round(bars["stt whisper"].start, 3) == -0.1
    assert round(bars["llm m"].mark or 0, 3) == 0.55
    tool = bars["tool search_slides"]
    assert (round(tool.start, 3), round(tool.end, 3)) == (0.7, 0.8)
    assert bars["agent audio starts (e2e)"].start == 1.0
    # In time order (the waterfall reads top to bottom), the audio last.
    starts = [bar.start for bar in waterfall(turn)[:-1]]
    assert starts == sorted(starts)
    rows = render_waterfall(waterfall(turn), width=40)
    assert len(rows) == 6 and all("█" in row for row in rows)
