"""What a worker sends that Postgres cannot store is refused (422 naming the field), never a
500: found by scripts/fuzz_api.py on the /internal session routes."""

from __future__ import annotations

import httpx

# The records tests' fixtures: a tenant's deck and a live session with its worker credential.
from tests.integration import test_session_records as records
from tests.integration.test_session_records import Live, _turn

deck = records.deck
live = records.live


async def test_a_turn_whose_providers_hold_a_nul_is_refused(
    api: httpx.AsyncClient, live: Live
) -> None:
    # jsonb has no \u0000: the record could not be stored.
    for providers in ({"llm": "podium\x00offline"}, {"ll\x00m": "podium/offline"}):
        resp = await api.post(
            f"{live.internal}/turns",
            headers=live.worker,
            json={"turns": [_turn(1, providers=providers)]},
        )
        assert resp.status_code == 422, resp.text
        assert "providers" in resp.text
    turns = await api.get(f"{live.public}/turns", headers=live.owner.headers)
    assert turns.json()["items"] == []


async def test_an_escalation_on_a_slide_past_any_deck_is_refused(
    api: httpx.AsyncClient, live: Live
) -> None:
    resp = await api.post(
        f"{live.internal}/escalations",
        headers={**live.worker, "Idempotency-Key": "fuzz-escalation"},
        json={"reason": "asked for a person", "slide_index": 450_660_240_021},
    )
    assert resp.status_code == 422, resp.text
    assert "slide_index" in resp.text


async def test_a_turn_dated_before_year_one_in_utc_is_refused(
    api: httpx.AsyncClient, live: Live
) -> None:
    early = "0001-01-01T00:00:00+10:00"  # 31 December of year 0 in UTC
    resp = await api.post(
        f"{live.internal}/turns",
        headers=live.worker,
        json={"turns": [_turn(1, started_at=early, ended_at=early)]},
    )
    assert resp.status_code == 422, resp.text
