"""Analytics read latency on the real stack: a deck with SESSIONS recorded sessions (each with
transitions, question turns, interrupted lines and an escalation, written straight into Postgres)
among other decks' and other tenants' sessions; times GET /v1/decks/{id}/analytics (the first
read embeds the declined questions, later ones find them cached) and GET
/v1/sessions/{id}/analytics, and shows the plan of the sessions query.

    .venv/bin/python scripts/bench_analytics.py [--sessions 500] [--noise 5000] [--reads 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agent_worker.presenter import ANSWERED, NOT_COVERED  # noqa: E402
from shared.devstack.stack import EphemeralStack  # noqa: E402
from tests.analytics_fixture import product_deck  # noqa: E402

T0 = datetime(2026, 3, 1, tzinfo=UTC)


async def _record(conn: asyncpg.Connection, tenant: str, deck: str | None, n: int) -> None:
    """``n`` ended sessions of ``deck``: 30 slide changes, 20 turns (10 of them questions, 3
    declined), 40 lines (5 cut off) and an escalation each."""
    sessions = await conn.fetch(
        """INSERT INTO sessions (tenant_id, room, status, deck_id, created_at, started_at,
                                 ended_at, end_reason)
        SELECT $1::uuid, 'bench-' || gen_random_uuid(), 'ended', $2::uuid,
               $3::timestamptz + i * interval '1 minute', $3::timestamptz + i * interval '1 minute',
               $3::timestamptz + i * interval '1 minute' + interval '20 minutes', 'ended_by_api'
        FROM generate_series(1, $4) i RETURNING id""",
        tenant,
        deck,
        T0,
        n,
    )
    ids = [r["id"] for r in sessions]
    await conn.execute(
        """INSERT INTO slide_transitions (session_id, version, action, from_index, to_index,
                                          paused, actor, idempotency_key, created_at)
        SELECT s, v, CASE WHEN v = 1 THEN 'start' ELSE 'next' END, NULL, 1 + (v - 1) % 8, false,
               'agent', 'narration-v' || v, now() + v * interval '30 seconds'
        FROM unnest($1::uuid[]) s, generate_series(1, 30) v""",
        ids,
    )
    turns = []
    for t in range(20):
        question = t % 2 == 0
        declined = t in (0, 4, 8)
        text = f"How does feature {t} work?"
        calls = (
            [{"call_id": f"c{t}", "name": "search_slides", "arguments": "{}",
              "output": f"<deck_data>\n</deck_data>\n{NOT_COVERED if declined else ANSWERED}"}]
            if question else [{"call_id": f"c{t}", "name": "next_slide", "arguments": "{}"}]
        )  # fmt: skip
        turns.append(
            json.dumps(
                {
                    "type": "turn",
                    "turn_id": f"t{t}",
                    "user_text": text,
                    "agent_text": "ok",
                    "tool_calls": calls,
                    "slide_before": 1 + t % 8,
                    "started_at": T0.isoformat(),
                    "ended_at": T0.isoformat(),
                }
            )
        )
    await conn.execute(
        """INSERT INTO session_turns (session_id, number, turn_id, record, started_at)
        SELECT s, n, 't' || n,
               CASE WHEN n IN (1, 5, 9)  -- the declined: a wording of its own per session
                    THEN jsonb_set(($2::text[])[n]::jsonb, '{user_text}',
                                   to_jsonb('Do you support the ' || left(s::text, 8) || ' API?'))
                    ELSE ($2::text[])[n]::jsonb END,
               now()
        FROM unnest($1::uuid[]) s, generate_series(1, 20) n""",
        ids,
        turns,
    )
    await conn.execute(
        """INSERT INTO session_messages (session_id, seq, item_id, role, text, interrupted,
                                         ended_at)
        SELECT s, n, 'm' || n, CASE WHEN n % 2 = 0 THEN 'assistant' ELSE 'user' END,
               'words', n % 8 = 0, now()
        FROM unnest($1::uuid[]) s, generate_series(1, 40) n""",
        ids,
    )
    await conn.execute(
        """INSERT INTO escalations (id, session_id, reason, slide_index, transcript,
                                    idempotency_key)
        SELECT gen_random_uuid(), s, 'wants a person', 3, '[]'::jsonb, 'e'
        FROM unnest($1::uuid[]) s""",
        ids,
    )


def _ms(samples: list[float]) -> str:
    return f"median {statistics.median(samples) * 1000:.0f} ms, max {max(samples) * 1000:.0f} ms"


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp, EphemeralStack(Path(tmp)) as stack:
        stack.start_control_plane(PODIUM_ADMISSION_ENABLED="false")
        owner, other = stack.create_tenant("bench"), stack.create_tenant("noise")
        async with httpx.AsyncClient(base_url=stack.api_url, timeout=120) as api:
            deck = await product_deck(api, owner)
            conn = await asyncpg.connect(stack.postgres.url())
            try:
                started = time.perf_counter()
                await _record(conn, owner.tenant_id, deck, args.sessions)
                await _record(conn, owner.tenant_id, None, args.noise // 2)
                await _record(conn, other.tenant_id, None, args.noise // 2)
                await conn.execute("ANALYZE")
                print(f"recorded {args.sessions} + {args.noise} sessions in "
                      f"{time.perf_counter() - started:.1f} s")  # fmt: skip
                plan = await conn.fetch(
                    """EXPLAIN SELECT id FROM sessions WHERE tenant_id = $1 AND deck_id = $2
                    AND created_at >= $3 AND created_at < $4 AND started_at IS NOT NULL
                    ORDER BY created_at DESC LIMIT 501""",
                    owner.tenant_id,
                    deck,
                    T0,
                    T0 + timedelta(days=30),
                )
                print("sessions query plan:", *[r[0] for r in plan], sep="\n  ")
                one = await conn.fetchval(
                    "SELECT id FROM sessions WHERE deck_id = $1 LIMIT 1", deck
                )
            finally:
                await conn.close()
            params = {"from": T0.isoformat(), "to": (T0 + timedelta(days=30)).isoformat()}
            path = f"/v1/decks/{deck}/analytics"
            samples = []
            for _ in range(args.reads + 1):
                started = time.perf_counter()
                resp = await api.get(path, headers=owner.headers, params=params)
                samples.append(time.perf_counter() - started)
                assert resp.status_code == 200, resp.text
            body = resp.json()
            counts = (body["sessions_count"], len(body["questions"]), len(body["content_gaps"]))
            print("deck analytics: {} sessions, {} questions, {} gaps".format(*counts))
            print(f"  first read (embeds the declined questions): {samples[0] * 1000:.0f} ms")
            print(f"  later reads: {_ms(samples[1:])}")
            session_samples = []
            for _ in range(args.reads):
                started = time.perf_counter()
                resp = await api.get(f"/v1/sessions/{one}/analytics", headers=owner.headers)
                session_samples.append(time.perf_counter() - started)
                assert resp.status_code == 200, resp.text
            print(f"session analytics: {_ms(session_samples)}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=500)
    parser.add_argument("--noise", type=int, default=5000)
    parser.add_argument("--reads", type=int, default=5)
    asyncio.run(main(parser.parse_args()))
