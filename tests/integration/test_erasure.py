"""Erasure by end-user identity (`POST /v1/erasures`), against the real control plane: one
person's messages and turns go from every session of the tenant, with the escalations that
copied them and the recordings only they spoke in, and nothing of anyone else's, nor of another
tenant's person with the same identity; the report counts exactly what went, is kept without
the identity, and an `erasure.completed` webhook says so without it either."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest

from shared.devstack.stack import EphemeralStack, TenantKey
from tests.records_fixture import Recorded, counts, end, record_session, recording_files
from tests.webhook_receiver import Receiver, serve_receiver

ALICE, BOB = "alice@example.com", "bob-42"


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with serve_receiver() as found:
        yield found


async def _spoken(stack: EphemeralStack, sid: str) -> dict[str, list[str]]:
    """Who said what in the session: user messages and turns, by speaker."""
    conn = await asyncpg.connect(stack.postgres.url())
    try:
        messages = await conn.fetch(
            "SELECT speaker, text FROM session_messages WHERE session_id = $1 AND role = 'user'"
            " ORDER BY seq",
            sid,
        )
        turns = await conn.fetch(
            "SELECT speaker, record ->> 'user_text' AS text FROM session_turns"
            " WHERE session_id = $1 ORDER BY number",
            sid,
        )
    finally:
        await conn.close()
    found: dict[str, list[str]] = {}
    for row in [*messages, *turns]:
        found.setdefault(row["speaker"], []).append(row["text"])
    return found


async def _session(
    api: httpx.AsyncClient, stack: EphemeralStack, owner: TenantKey, speakers: list[str]
) -> Recorded:
    rec = await record_session(api, stack, owner, deck_id=None, speakers=speakers)
    return rec


async def test_erasing_a_person_removes_their_words_everywhere_and_nothing_else(
    api: httpx.AsyncClient, control_plane: EphemeralStack, receiver: Receiver
) -> None:
    stack = control_plane
    owner, neighbour = stack.create_tenant("erasing"), stack.create_tenant("neighbour")
    created = await api.post(
        "/v1/webhooks/endpoints",
        headers=owner.headers,
        json={"url": receiver.url, "events": ["erasure.completed", "escalation.requested"]},
    )
    assert created.status_code == 201, created.text
    secret = created.json()["secret"]

    alone = await _session(api, stack, owner, [ALICE])
    shared = await _session(api, stack, owner, [ALICE, BOB])
    bobs = await _session(api, stack, owner, [BOB])
    theirs = await _session(api, stack, neighbour, [ALICE])  # another tenant's "alice"
    # A token minted for her names her in the session's events.
    token = await api.post(
        f"/v1/sessions/{alone.sid}/tokens", headers=owner.headers, json={"identity": ALICE}
    )
    assert token.status_code == 201, token.text
    for rec in (alone, shared, bobs, theirs):
        await end(api, rec)
    await receiver.until(lambda: len(receiver.got) >= 3)  # the three escalations
    untouched = {rec.sid: await counts(stack, rec.sid) for rec in (bobs, theirs)}
    bobs_words = {rec.sid: (await _spoken(stack, rec.sid))[BOB] for rec in (shared, bobs)}

    resp = await api.post("/v1/erasures", headers=owner.headers, json={"identity": ALICE})
    assert resp.status_code == 200, resp.text
    report = resp.json()
    digest = hashlib.sha256(ALICE.encode()).hexdigest()
    assert report["identity"] == ALICE and report["identity_sha256"] == digest
    assert report["sessions"] == [alone.sid, shared.sid]
    assert report["recordings_kept"] == [shared.sid]
    assert report["deleted"] == {
        "messages": 4,  # two in each session
        "turns": 4,
        "escalations": 2,  # each copied her words
        "webhook_deliveries": 2,  # the escalation.requested deliveries carrying them
        "recording_segments": 2,  # the session only she spoke in
        "redaction_spans": 0,
        "files": 2,
        "transitions_anonymized": 0,
        "events_anonymized": 1,  # the token minted for her
    }

    # Her words are gone from both sessions; Bob's are all there.
    for rec in (alone, shared):
        assert ALICE not in await _spoken(stack, rec.sid)
    for sid, words in bobs_words.items():
        assert (await _spoken(stack, sid))[BOB] == words
    for sid, before in untouched.items():
        assert await counts(stack, sid) == before
    assert recording_files(stack, alone.sid) == []
    assert len(recording_files(stack, shared.sid)) == 2  # Bob's voice is on it too
    public = f"/v1/sessions/{alone.sid}"
    escalations = await api.get(f"{public}/escalations", headers=owner.headers)
    assert escalations.json()["items"] == []
    events = (await api.get(f"{public}/events", headers=owner.headers)).text
    assert ALICE not in events and "erased" in events
    # The presenter's side of the conversation stays.
    transcript = (await api.get(f"{public}/transcript", headers=owner.headers)).json()["items"]
    assert [line["role"] for line in transcript] == ["assistant", "assistant"]

    # The report is kept, without the identity; another tenant cannot see it.
    kept = await api.get(f"/v1/erasures/{report['erasure_id']}", headers=owner.headers)
    assert kept.status_code == 200
    assert kept.json() == {**report, "identity": None}
    foreign = await api.get(f"/v1/erasures/{report['erasure_id']}", headers=neighbour.headers)
    assert foreign.status_code == 404

    # Signed, and without the identity in clear.
    def completed() -> list[dict[str, Any]]:
        return [e for e in receiver.events(secret) if e["type"] == "erasure.completed"]

    await receiver.until(lambda: len(completed()) == 1)
    [event] = completed()
    assert event["data"]["erasure_id"] == report["erasure_id"]
    assert event["data"]["identity_sha256"] == digest
    assert event["data"]["deleted"] == report["deleted"]
    assert all(ALICE.encode() not in body for _, body in receiver.got if b"erasure" in body)

    # Again: nothing left to erase.
    again = await api.post("/v1/erasures", headers=owner.headers, json={"identity": ALICE})
    assert again.json()["sessions"] == [] and set(again.json()["deleted"].values()) == {0}
    # The other tenant's alice is theirs to erase, and only theirs.
    their_report = await api.post(
        "/v1/erasures", headers=neighbour.headers, json={"identity": ALICE}
    )
    assert their_report.json()["sessions"] == [theirs.sid]
    assert their_report.json()["deleted"]["messages"] == 2


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"identity": ""}, "identity"),
        ({"identity": "two words"}, "identity"),
        ({"identity": "x" * 65}, "identity"),
        ({"identity": "bob\u0000"}, "identity"),
        ({}, "identity"),
        ({"identity": "bob", "also": "carol"}, "also"),
    ],
)
async def test_a_bad_erasure_request_is_refused_naming_the_field(
    api: httpx.AsyncClient, tenant: TenantKey, body: dict[str, Any], field: str
) -> None:
    resp = await api.post("/v1/erasures", headers=tenant.headers, json=body)
    assert resp.status_code == 422, resp.text
    assert resp.json()["error"] == "validation_error" and field in resp.json()["message"]


async def test_erasure_needs_the_admin_scope(api: httpx.AsyncClient, tenant: TenantKey) -> None:
    made = await api.post(
        "/v1/keys", headers=tenant.headers, json={"name": "app", "scopes": ["sessions"]}
    )
    assert made.status_code == 201, made.text
    app_key = {"Authorization": f"Bearer {made.json()['api_key']}"}
    resp = await api.post("/v1/erasures", headers=app_key, json={"identity": "bob"})
    assert resp.status_code == 403 and "admin" in resp.json()["message"]
