"""Sessions with every kind of record, sent through the real internal API as a worker's job
would, and counts of what Postgres and the asset folder hold of each (retention and erasure
tests)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from shared.devstack.stack import EphemeralStack, TenantKey

# Every table a session's records live in, with how to find this session's rows.
TABLES = {
    "session_messages": "session_id = $1",
    "session_turns": "session_id = $1",
    "escalations": "session_id = $1",
    "slide_transitions": "session_id = $1",
    "audit_events": "session_id = $1",
    "session_recording_segments": "session_id = $1",
    "session_redaction_spans": "session_id = $1",
    "slide_states": "session_id = $1",
    "webhook_deliveries": "payload -> 'data' ->> 'session_id' = $1::text",
    "sessions": "id = $1",
}


@dataclass
class Recorded:
    """A session and the credential its worker job holds."""

    owner: TenantKey
    sid: str
    room: str
    worker: dict[str, str]
    speakers: list[str] = field(default_factory=list)

    @property
    def internal(self) -> str:
        return f"/internal/v1/sessions/{self.sid}"


def turn(n: int, speaker: str | None, text: str) -> dict[str, Any]:
    start = datetime(2026, 1, 1, 12, 0, tzinfo=UTC) + timedelta(seconds=10 * n)
    return {
        "turn_id": f"speech_{n}",
        "job_id": "AJ_test",
        "started_at": start.isoformat(),
        "ended_at": (start + timedelta(seconds=3)).isoformat(),
        "user_text": text,
        "speaker": speaker,
        "agent_text": f"answer to {text}",
        "slide_before": 1,
        "slide_after": 1,
    }


async def record_session(
    api: httpx.AsyncClient,
    stack: EphemeralStack,
    owner: TenantKey,
    *,
    deck_id: str | None,
    speakers: list[str],
    escalate: bool = True,
    segments: int = 2,
) -> Recorded:
    """A recorded session where each of ``speakers`` said two things (two messages, one turn
    each, in turns), with the presenter's answers, an escalation, a slide change and
    ``segments`` recording segments; left live."""
    body: dict[str, Any] = {"record": True} | ({"deck_id": deck_id} if deck_id else {})
    created = await api.post("/v1/sessions", headers=owner.headers, json=body)
    assert created.status_code == 201, created.text
    session = created.json()
    credential = await stack.worker_credential(session["room"])
    rec = Recorded(
        owner,
        session["session_id"],
        session["room"],
        {"Authorization": f"Bearer {credential}"},
        speakers,
    )
    joined = await api.post(f"{rec.internal}/agent-joined", headers=rec.worker)
    assert joined.status_code == 204, joined.text
    messages, turns = [], []
    for i, who in enumerate(speakers):
        for j in range(2):
            n = 2 * i + j
            messages.append(
                {"item_id": f"u{n}", "role": "user", "text": f"{who} says {j}", "speaker": who}
            )
            messages.append({"item_id": f"a{n}", "role": "assistant", "text": f"reply {n}"})
            turns.append(turn(n + 1, who, f"{who} says {j}"))
    sent = await api.post(
        f"{rec.internal}/messages", headers=rec.worker, json={"messages": messages}
    )
    assert sent.status_code == 204, sent.text
    sent = await api.post(f"{rec.internal}/turns", headers=rec.worker, json={"turns": turns})
    assert sent.status_code == 204, sent.text
    if escalate:
        sent = await api.post(
            f"{rec.internal}/escalations",
            headers={**rec.worker, "Idempotency-Key": "esc-1"},
            json={"reason": "asked for a person", "last_question": "can I talk to someone?"},
        )
        assert sent.status_code == 201, sent.text
    if deck_id:
        moved = await api.post(
            f"/v1/sessions/{rec.sid}/slide", headers=owner.headers, json={"action": "next"}
        )
        assert moved.status_code == 200, moved.text
    for n in range(segments):
        put = await api.put(
            f"{rec.internal}/recording/segments/{n}",
            params={"job_id": "AJ_test", "started_at": time.time(), "duration_s": 3.0},
            headers={**rec.worker, "Content-Type": "audio/ogg"},
            content=b"OggS" + bytes(2000),
        )
        assert put.status_code == 204, put.text
    return rec


async def end(api: httpx.AsyncClient, rec: Recorded) -> None:
    """End the session, and its job says its records are all sent."""
    ended = await api.post(f"/v1/sessions/{rec.sid}/end", headers=rec.owner.headers)
    assert ended.status_code == 200, ended.text
    done = await api.post(f"{rec.internal}/records-complete", headers=rec.worker)
    assert done.status_code == 204, done.text


async def counts(stack: EphemeralStack, sid: str) -> dict[str, int]:
    """Rows of the session in every table, and its recording files on disk."""
    conn = await asyncpg.connect(stack.postgres.url())
    try:
        found = {
            table: int(await conn.fetchval(f"SELECT count(*) FROM {table} WHERE {where}", sid))
            for table, where in TABLES.items()
        }
    finally:
        await conn.close()
    found["files"] = len(recording_files(stack, sid))
    return found


def recording_files(stack: EphemeralStack, sid: str) -> list[Path]:
    folder = stack.base / "assets" / "recordings" / sid
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


async def add_redaction_span(stack: EphemeralStack, sid: str) -> None:
    """A span of the recording to silence, as redaction leaves one (with redaction off, none)."""
    conn = await asyncpg.connect(stack.postgres.url())
    try:
        await conn.execute(
            "INSERT INTO session_redaction_spans (session_id, start_at, end_at, entities)"
            " VALUES ($1, now(), now(), ARRAY['PHONE'])",
            sid,
        )
    finally:
        await conn.close()
