"""Retention and session deletion on a stack of their own: a tenant keeping records 0 days loses
a finished session's records and recording files in one sweep (`podium admin retention-sweep`),
while its live session and another tenant's session under the defaults keep everything; decks
under 0 days go with their files unless a live session uses them; a second sweep finds nothing;
`DELETE /v1/sessions/{id}` removes every row and file of a session and says so by a signed
webhook."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import pytest

from control_plane import db
from control_plane.privacy.retention import sweep
from control_plane.storage import LocalStorage
from shared.devstack.stack import ROOT, EphemeralStack, TenantKey
from shared.settings import ControlPlaneSettings
from tests.conftest import TEST_LOGS
from tests.factories import make_pdf
from tests.records_fixture import (
    Recorded,
    add_redaction_span,
    counts,
    end,
    record_session,
    recording_files,
)
from tests.webhook_receiver import Receiver, serve_receiver

ZERO = {"transcripts": 0, "turns": 0, "recordings": 0, "events": 0}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EphemeralStack]:
    logs = Path(TEST_LOGS) / "retention" if TEST_LOGS else None
    with EphemeralStack(tmp_path_factory.mktemp("retention"), logs=logs) as running:
        running.start_control_plane(
            PODIUM_WEBHOOK_ALLOW_PRIVATE_URLS="true",
            PODIUM_WEBHOOK_POLL_SECONDS="0.1",
            PODIUM_ADMISSION_ENABLED="false",  # no worker here: sessions only need their rows
            # The sweeper's own loop sweeps at start only; the tests sweep with the CLI.
            PODIUM_RETENTION_SWEEP_SECONDS="3600",
        )
        yield running


@pytest.fixture
async def api(stack: EphemeralStack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=stack.api_url, timeout=20) as client:
        yield client


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with serve_receiver() as found:
        yield found


async def _deck(api: httpx.AsyncClient, owner: TenantKey, name: str) -> str:
    from tests.e2e.conftest import upload_ready

    return await upload_ready(api, owner, f"{name}.pdf", make_pdf([["Intro"], ["Pricing"]]))


async def _policy(api: httpx.AsyncClient, owner: TenantKey, days: dict[str, int]) -> None:
    resp = await api.put(
        "/v1/tenant/data-policy", headers=owner.headers, json={"retention_days": days}
    )
    assert resp.status_code == 200, resp.text


async def _endpoint(api: httpx.AsyncClient, owner: TenantKey, url: str) -> str:
    resp = await api.post("/v1/webhooks/endpoints", headers=owner.headers, json={"url": url})
    assert resp.status_code == 201, resp.text
    secret: str = resp.json()["secret"]
    return secret


async def _sweep(stack: EphemeralStack, *args: str) -> dict[str, Any]:
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "control_plane", "admin", "retention-sweep", "--json", *args],
        env=stack.api_env,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    report: dict[str, Any] = json.loads(done.stdout)
    assert not report["skipped"]
    return report


def _deck_files(stack: EphemeralStack, deck_id: str) -> list[Path]:
    folder = stack.base / "assets" / "decks" / deck_id
    return [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []


async def test_zero_days_removes_a_finished_sessions_records_and_files_in_one_sweep(
    api: httpx.AsyncClient, stack: EphemeralStack, receiver: Receiver
) -> None:
    strict, other = stack.create_tenant("strict"), stack.create_tenant("defaults")
    await _policy(api, strict, ZERO)
    secret = await _endpoint(api, strict, receiver.url)
    async with serve_receiver() as theirs_receiver:
        await _endpoint(api, other, theirs_receiver.url)
        await _zero_days(api, stack, receiver, secret, strict, other)


async def _zero_days(
    api: httpx.AsyncClient,
    stack: EphemeralStack,
    receiver: Receiver,
    secret: str,
    strict: TenantKey,
    other: TenantKey,
) -> None:
    deck, their_deck = await _deck(api, strict, "strict"), await _deck(api, other, "theirs")

    finished = await record_session(api, stack, strict, deck_id=deck, speakers=["ada"])
    await end(api, finished)
    live = await record_session(api, stack, strict, deck_id=deck, speakers=["bob"])
    theirs = await record_session(api, stack, other, deck_id=their_deck, speakers=["cy"])
    await end(api, theirs)
    for rec in (finished, live, theirs):
        await add_redaction_span(stack, rec.sid)
    before = {r.sid: await counts(stack, r.sid) for r in (finished, live, theirs)}
    for found in before.values():
        assert all(n > 0 for n in found.values()), found
    assert before[finished.sid]["files"] == 2

    report = await _sweep(stack)

    after = await counts(stack, finished.sid)
    for table in (
        "session_messages",
        "session_turns",
        "escalations",
        "slide_transitions",
        "audit_events",
        "session_recording_segments",
        "session_redaction_spans",
        "files",
    ):
        assert after[table] == 0, (table, after)
    assert after["sessions"] == 1  # the session's row stays: id, status, times
    assert recording_files(stack, finished.sid) == []
    # Its transcript deliveries went with the transcript; the ones about the session stay.
    kept_types = await _delivery_types(stack, finished.sid)
    assert "escalation.requested" not in kept_types and "transcript.ready" not in kept_types
    assert {"session.started", "session.ended"} <= set(kept_types)
    # Nothing of the live session, nor of the other tenant's, was touched.
    assert await counts(stack, live.sid) == before[live.sid]
    assert await counts(stack, theirs.sid) == before[theirs.sid]
    assert report["rows"]["messages"] == 4 and report["rows"]["turns"] == 2
    assert report["rows"]["escalations"] == 1 and report["rows"]["recording_segments"] == 2
    assert report["files"] == {"recordings": 2}
    assert report["sessions"] == {"transcripts": 1, "turns": 1, "recordings": 1, "events": 1}

    # The API agrees: the session is there, its records are not.
    public = f"/v1/sessions/{finished.sid}"
    assert (await api.get(public, headers=strict.headers)).json()["status"] == "ended"
    transcript = await api.get(f"{public}/transcript", headers=strict.headers)
    assert transcript.json()["items"] == []
    assert (await api.get(f"{public}/turns", headers=strict.headers)).json()["items"] == []
    assert (await api.get(f"{public}/recording", headers=strict.headers)).json()["items"] == []

    # One signed records.expired per kind, with what went.
    def expired() -> list[dict[str, Any]]:
        return [e for e in receiver.events(secret) if e["type"] == "records.expired"]

    await receiver.until(lambda: len(expired()) >= 4)
    by_kind = {e["data"]["kind"]: e["data"] for e in expired()}
    assert set(by_kind) == {"transcripts", "turns", "recordings", "events"}
    assert by_kind["transcripts"]["session_id"] == finished.sid
    assert by_kind["transcripts"]["deleted"]["messages"] == 4
    assert by_kind["recordings"]["deleted"]["recording_segments"] == 2
    assert by_kind["turns"]["retention_days"] == 0

    # A second sweep finds nothing new.
    again = await _sweep(stack)
    assert again["rows"] == {} and again["files"] == {} and again["decks"] == 0
    await api.post(f"/v1/sessions/{live.sid}/end", headers=strict.headers)


async def _delivery_types(stack: EphemeralStack, sid: str) -> list[str]:
    import asyncpg

    conn = await asyncpg.connect(stack.postgres.url())
    try:
        rows = await conn.fetch(
            "SELECT event_type FROM webhook_deliveries"
            " WHERE payload -> 'data' ->> 'session_id' = $1",
            sid,
        )
    finally:
        await conn.close()
    return [r["event_type"] for r in rows]


async def test_zero_day_decks_go_with_their_files_unless_a_live_session_uses_them(
    api: httpx.AsyncClient, stack: EphemeralStack
) -> None:
    owner = stack.create_tenant("deck-retention")
    used, unused = await _deck(api, owner, "used"), await _deck(api, owner, "unused")
    assert _deck_files(stack, used) and _deck_files(stack, unused)
    live = await record_session(api, stack, owner, deck_id=used, speakers=["ada"], segments=0)
    await _policy(api, owner, {"decks": 0})

    report = await _sweep(stack, "--tenant", owner.tenant_id)
    assert report["decks"] == 1
    assert (await api.get(f"/v1/decks/{unused}", headers=owner.headers)).status_code == 404
    assert _deck_files(stack, unused) == []
    assert (await api.get(f"/v1/decks/{used}", headers=owner.headers)).status_code == 200
    assert _deck_files(stack, used)
    # Decks are not session records: the live session's are untouched either way.
    assert (await counts(stack, live.sid))["session_messages"] == 4

    await end(api, live)
    report = await _sweep(stack, "--tenant", owner.tenant_id)
    assert report["decks"] == 1
    assert (await api.get(f"/v1/decks/{used}", headers=owner.headers)).status_code == 404
    assert _deck_files(stack, used) == []
    # The ended session keeps its records (the default retention) and its row.
    assert (await counts(stack, live.sid))["session_messages"] == 4


async def _recorded_and_ended(
    api: httpx.AsyncClient, stack: EphemeralStack, owner: TenantKey, deck: str
) -> Recorded:
    rec = await record_session(api, stack, owner, deck_id=deck, speakers=["ada", "bob"])
    await end(api, rec)
    return rec


async def test_deleting_a_session_removes_every_row_and_file_it_left_and_says_so(
    api: httpx.AsyncClient, stack: EphemeralStack, receiver: Receiver
) -> None:
    owner, stranger = stack.create_tenant("deleter"), stack.create_tenant("stranger")
    secret = await _endpoint(api, owner, receiver.url)
    deck = await _deck(api, owner, "deleter")
    gone = await _recorded_and_ended(api, stack, owner, deck)
    await add_redaction_span(stack, gone.sid)
    kept = await _recorded_and_ended(api, stack, owner, deck)
    before = await counts(stack, gone.sid)
    assert all(n > 0 for n in before.values()), before
    kept_before = await counts(stack, kept.sid)

    url = f"/v1/sessions/{gone.sid}"
    assert (await api.delete(url, headers=stranger.headers)).status_code == 404
    assert await counts(stack, gone.sid) == before
    resp = await api.delete(url, headers=owner.headers)
    assert resp.status_code == 204, resp.text

    after = await counts(stack, gone.sid)
    assert {table: n for table, n in after.items() if n} == {"webhook_deliveries": 1}, after
    assert await _delivery_types(stack, gone.sid) == ["session.deleted"]
    assert not (stack.base / "assets" / "recordings" / gone.sid).exists()
    assert await counts(stack, kept.sid) == kept_before
    assert (await api.get(url, headers=owner.headers)).status_code == 404
    again = await api.delete(url, headers=owner.headers)
    assert again.status_code == 404 and again.json()["error"] == "not_found"

    def deleted() -> list[dict[str, Any]]:
        return [e for e in receiver.events(secret) if e["type"] == "session.deleted"]

    await receiver.until(lambda: len(deleted()) == 1)
    [event] = deleted()
    assert event["data"]["session_id"] == gone.sid
    assert event["data"]["deleted"]["messages"] == 8 and event["data"]["deleted"]["turns"] == 4
    assert event["data"]["deleted"]["recording_segments"] == 2
    assert event["data"]["deleted"]["escalations"] == 1

    # A live session is ended (its room closed), then deleted.
    live = await record_session(api, stack, owner, deck_id=deck, speakers=["cy"])
    resp = await api.delete(f"/v1/sessions/{live.sid}", headers=owner.headers)
    assert resp.status_code == 204, resp.text
    after = await counts(stack, live.sid)
    assert {table: n for table, n in after.items() if n} == {"webhook_deliveries": 1}, after
    assert (await api.get(f"/v1/sessions/{live.sid}", headers=owner.headers)).status_code == 404
    # Its job is told the session is gone.
    late = await api.post(
        f"{live.internal}/messages",
        headers=live.worker,
        json={"messages": [{"item_id": "late", "role": "user", "text": "hi", "speaker": "cy"}]},
    )
    assert late.status_code == 404


class _FlakyStorage(LocalStorage):
    """Asset storage whose deletes fail ``failing`` times first (a full disk, a storage
    outage)."""

    def __init__(self, root: Path, failing: int) -> None:
        super().__init__(root)
        self.failing = failing

    async def delete_tree(self, key: str) -> int:
        if self.failing > 0:
            self.failing -= 1
            raise PermissionError(key)
        return await super().delete_tree(key)


async def test_files_listed_for_deletion_are_deleted_by_a_later_sweep_if_not_at_once(
    api: httpx.AsyncClient, stack: EphemeralStack
) -> None:
    owner = stack.create_tenant("flaky-storage")
    await _policy(api, owner, ZERO)
    rec = await record_session(api, stack, owner, deck_id=None, speakers=["ada"])
    await end(api, rec)
    assert len(recording_files(stack, rec.sid)) == 2
    settings = ControlPlaneSettings(
        database_url=stack.postgres.url(), asset_root=stack.base / "assets"
    )
    pool = await db.create_pool(stack.postgres.url(), min_size=1, max_size=3)
    try:
        flaky = _FlakyStorage(stack.base / "assets", failing=1)
        first = await sweep(pool, flaky, settings, tenant_id=UUID(owner.tenant_id))
        # The rows went; the files could not, and stay listed.
        assert first.rows["recording_segments"] == 2 and first.files_failed == 1
        assert (await counts(stack, rec.sid))["session_recording_segments"] == 0
        assert len(recording_files(stack, rec.sid)) == 2
        listed = await pool.fetch(
            "SELECT key, attempts FROM asset_deletions WHERE tenant_id = $1",
            UUID(owner.tenant_id),
        )
        assert [(r["key"], r["attempts"]) for r in listed] == [(f"recordings/{rec.sid}", 1)]
    finally:
        await pool.close()

    # The next sweep (here the operator's) deletes them, and the listing with them.
    report = await _sweep(stack, "--tenant", owner.tenant_id)
    assert report["files"] == {"recordings": 2} and report["rows"] == {}
    assert recording_files(stack, rec.sid) == []
    assert (await _sweep(stack, "--tenant", owner.tenant_id))["files"] == {}
