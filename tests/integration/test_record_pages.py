"""Reading a long session's records through the public API, against real Postgres: every list
pages by cursor with no duplicate and no gap (ties in time included), the WebVTT transcript and
the JSONL export stream every row while the control plane's memory stays flat, the delivery log
carries no payloads, and a page size over a list's maximum is refused naming the maximum."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from shared.devstack.stack import EphemeralStack, TenantKey


@pytest.fixture
async def db(control_plane: EphemeralStack) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(control_plane.postgres.url())
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
    yield conn
    await conn.close()


@pytest.fixture
async def session(
    api: httpx.AsyncClient, tenant: TenantKey, control_plane: EphemeralStack
) -> AsyncIterator[dict[str, Any]]:
    resp = await api.post("/v1/sessions", headers=tenant.headers, json={})
    assert resp.status_code == 201, resp.text
    created: dict[str, Any] = resp.json()
    credential = await control_plane.worker_credential(created["room"])
    created["worker"] = {"Authorization": f"Bearer {credential}"}
    yield created
    await api.post(f"/v1/sessions/{created['session_id']}/end", headers=tenant.headers)


async def _follow(
    api: httpx.AsyncClient, path: str, headers: dict[str, str], *, cursor: str, **params: Any
) -> list[dict[str, Any]]:
    """Every item of a list, read page by page through its cursor (``cursor`` names the
    request parameter; the answer's is ``next_<cursor>``)."""
    items: list[dict[str, Any]] = []
    pages = 0
    while True:
        resp = await api.get(path, params=params, headers=headers)
        assert resp.status_code == 200, resp.text
        page = resp.json()
        items += page["items"]
        pages += 1
        assert len(page["items"]) <= params["limit"]
        if page[f"next_{cursor}"] is None:
            assert pages == -(-len(items) // params["limit"]) or not items  # no empty last page
            return items
        params = {**params, cursor: page[f"next_{cursor}"]}


async def test_transcript_and_turns_pages_follow_their_cursors(
    api: httpx.AsyncClient, tenant: TenantKey, session: dict[str, Any]
) -> None:
    sid = session["session_id"]
    internal = f"/internal/v1/sessions/{sid}"
    # Batches sent at once (a retrying worker, or two jobs) still number lines 1, 2, … once.
    batches = [
        [{"item_id": f"m{b}-{i}", "role": "user", "text": f"line {b}-{i}"} for i in range(100)]
        for b in range(12)
    ]
    sent = await asyncio.gather(
        *(
            api.post(f"{internal}/messages", headers=session["worker"], json={"messages": batch})
            for batch in batches + batches[:3]  # three batches twice
        )
    )
    assert all(r.status_code == 204 for r in sent)
    lines = await _follow(
        api, f"/v1/sessions/{sid}/transcript", tenant.headers, cursor="after", limit=70
    )
    assert [line["seq"] for line in lines] == list(range(1, 1201))
    assert sorted(line["item_id"] for line in lines) == sorted(
        m["item_id"] for batch in batches for m in batch
    )
    # Each batch's lines keep their order.
    first = [line["item_id"] for line in lines if line["item_id"].startswith("m0-")]
    assert first == [f"m0-{i}" for i in range(100)]

    turns = [
        {
            "turn_id": f"speech_{n}",
            "started_at": "2026-01-01T12:00:00+00:00",
            "ended_at": "2026-01-01T12:00:03+00:00",
            "user_text": f"question {n}",
        }
        for n in range(1, 231)
    ]
    for start in range(0, len(turns), 50):
        resp = await api.post(
            f"{internal}/turns",
            headers=session["worker"],
            json={"turns": turns[start : start + 50]},
        )
        assert resp.status_code == 204, resp.text
    read = await _follow(api, f"/v1/sessions/{sid}/turns", tenant.headers, cursor="after", limit=50)
    assert [(t["number"], t["turn_id"]) for t in read] == [
        (n, f"speech_{n}") for n in range(1, 231)
    ]


async def test_events_and_escalations_page_by_cursor_through_ties(
    api: httpx.AsyncClient, tenant: TenantKey, session: dict[str, Any], db: asyncpg.Connection
) -> None:
    """Hundreds of rows with one timestamp (one transaction): the cursor's tie-breakers keep
    every page boundary exact."""
    sid = uuid.UUID(session["session_id"])
    async with db.transaction():
        transitions = await db.fetch(
            """
            INSERT INTO slide_transitions (session_id, version, action, from_index, to_index,
                                           paused, actor, idempotency_key)
            SELECT $1, v, 'goto', 1, 2, false, 'api', 'k' || v FROM generate_series(1, 120) v
            RETURNING id
            """,
            sid,
        )
        escalations = await db.fetch(
            """
            INSERT INTO escalations (id, session_id, reason, transcript, idempotency_key)
            SELECT gen_random_uuid(), $1, 'reason ' || n, '[]'::jsonb, 'e' || n
            FROM generate_series(1, 45) n
            RETURNING id
            """,
            sid,
        )
        audits = await db.fetch(
            """
            INSERT INTO audit_events (tenant_id, session_id, actor, type, data)
            SELECT $2, $1, 'api', 'token.minted', jsonb_build_object('n', n)
            FROM generate_series(1, 300) n
            RETURNING id
            """,
            sid,
            uuid.UUID(tenant.tenant_id),
        )
    path = f"/v1/sessions/{sid}/events"
    events = await _follow(api, path, tenant.headers, cursor="cursor", limit=7)
    assert events[0]["type"] == "session.created"  # created before the rest
    tied = events[1:]
    expected_escalations = sorted(r["id"] for r in escalations)
    assert [e["type"] for e in tied] == ["slide.goto"] * 120 + ["escalation.requested"] * 45 + [
        "token.minted"
    ] * 300
    assert [e["data"]["version"] for e in tied[:120]] == list(range(1, 121))
    assert [uuid.UUID(e["data"]["escalation_id"]) for e in tied[120:165]] == expected_escalations
    assert [e["data"]["n"] for e in tied[165:]] == list(range(1, 301))
    assert len(transitions) == 120 and len(audits) == 300

    listed = await _follow(
        api, f"/v1/sessions/{sid}/escalations", tenant.headers, cursor="cursor", limit=10
    )
    assert [uuid.UUID(e["escalation_id"]) for e in listed] == expected_escalations


async def test_the_delivery_log_pages_without_payloads(
    api: httpx.AsyncClient, tenant: TenantKey, db: asyncpg.Connection
) -> None:
    created = await api.post(
        "/v1/webhooks/endpoints", headers=tenant.headers, json={"url": "http://127.0.0.1:9/hook"}
    )
    assert created.status_code == 201, created.text
    endpoint_id = uuid.UUID(created.json()["endpoint_id"])
    big = {"transcript": ["x" * 1000] * 50}
    await db.execute(
        """
        INSERT INTO webhook_deliveries (id, tenant_id, endpoint_id, event_id, event_type,
                                        event_key, payload, status)
        SELECT gen_random_uuid(), $1, $2, gen_random_uuid(), 'escalation.requested',
               'test:' || n, $3::jsonb || jsonb_build_object('n', n), 'delivered'
        FROM generate_series(1, 130) n
        """,
        uuid.UUID(tenant.tenant_id),
        endpoint_id,
        big,
    )
    log = await _follow(api, "/v1/webhooks/deliveries", tenant.headers, cursor="cursor", limit=50)
    assert len({d["delivery_id"] for d in log}) == len(log) == 130
    assert all("payload" not in d for d in log)
    one = await api.get(f"/v1/webhooks/deliveries/{log[0]['delivery_id']}", headers=tenant.headers)
    assert one.json()["payload"]["transcript"] == big["transcript"]


@pytest.mark.parametrize(
    ("path", "maximum", "opaque_cursor"),
    [
        ("/v1/sessions/{sid}/transcript", 500, False),
        ("/v1/sessions/{sid}/turns", 500, False),
        ("/v1/sessions/{sid}/events", 500, True),
        ("/v1/sessions/{sid}/escalations", 100, True),
        ("/v1/webhooks/deliveries", 200, True),
    ],
)
async def test_a_page_over_the_maximum_is_refused_naming_it(
    api: httpx.AsyncClient,
    tenant: TenantKey,
    session: dict[str, Any],
    path: str,
    maximum: int,
    opaque_cursor: bool,
) -> None:
    url = path.format(sid=session["session_id"])
    at_most = await api.get(url, params={"limit": maximum}, headers=tenant.headers)
    assert at_most.status_code == 200, at_most.text
    over = await api.get(url, params={"limit": maximum + 1}, headers=tenant.headers)
    assert over.status_code == 422
    assert over.json()["error"] == "validation_error"
    assert f"limit: Input should be less than or equal to {maximum}" in over.json()["message"]
    if opaque_cursor:
        bad = await api.get(url, params={"cursor": "bm90IG91cnM="}, headers=tenant.headers)
        assert (bad.status_code, bad.json()["error"]) == (422, "invalid_cursor")
    else:
        bad = await api.get(url, params={"after": 2**31}, headers=tenant.headers)
        assert bad.status_code == 422 and "after" in bad.json()["message"]


def _rss_mb(pid: int) -> float:
    for row in Path(f"/proc/{pid}/status").read_text().splitlines():
        if row.startswith("VmRSS:"):
            return int(row.split()[1]) / 1024
    raise AssertionError("no VmRSS")


async def test_webvtt_and_export_stream_a_long_session_in_flat_memory(
    api: httpx.AsyncClient,
    tenant: TenantKey,
    session: dict[str, Any],
    db: asyncpg.Connection,
    control_plane: EphemeralStack,
) -> None:
    """120,000 lines of 1 KB (~125 MB of text): more than any page, or than the 100,000 lines a
    whole-document rendering was once capped at."""
    count = 120_000
    await db.execute(
        """
        INSERT INTO session_messages (session_id, seq, item_id, role, text)
        SELECT $1, n, 'i' || n, CASE WHEN n % 2 = 0 THEN 'user' ELSE 'assistant' END,
               repeat('x', 1000) || n
        FROM generate_series(1, $2) n
        """,
        uuid.UUID(session["session_id"]),
        count,
    )
    assert control_plane.api_process is not None and control_plane.api_process.proc is not None
    pid = control_plane.api_process.proc.pid
    path = f"/v1/sessions/{session['session_id']}"

    async def peak_growth(read: AsyncIterator[str]) -> tuple[float, int]:
        """The control plane's RSS growth while ``read`` streams, and the lines it counted."""
        before = _rss_mb(pid)
        peak = before
        done = asyncio.Event()

        async def sample() -> None:
            nonlocal peak
            while not done.is_set():
                peak = max(peak, _rss_mb(pid))
                await asyncio.sleep(0.02)

        sampler = asyncio.create_task(sample())
        counted = 0
        try:
            async for _ in read:
                counted += 1
        finally:
            done.set()
            await sampler
        return peak - before, counted

    async def cues() -> AsyncIterator[str]:
        async with api.stream(
            "GET", f"{path}/transcript", params={"format": "vtt"}, headers=tenant.headers
        ) as resp:
            assert resp.status_code == 200
            previous = ""
            expected = 1
            async for line in resp.aiter_lines():
                if " --> " in line:
                    assert previous == str(expected)  # every cue, in order, none twice
                    expected += 1
                    yield line
                previous = line

    grew, counted = await peak_growth(cues())
    assert counted == count
    assert grew < 60, f"the control plane grew by {grew:.0f} MB streaming WebVTT"

    async def messages() -> AsyncIterator[str]:
        async with api.stream("GET", f"{path}/export", headers=tenant.headers) as resp:
            assert resp.status_code == 200
            async for line in resp.aiter_lines():
                if line.startswith('{"type": "message"'):
                    yield line

    grew, counted = await peak_growth(messages())
    assert counted == count
    assert grew < 60, f"the control plane grew by {grew:.0f} MB streaming the export"
