"""Fixtures shared by the e2e modules: the product deck, and sessions on it that end after the
test (a session nobody ends holds its worker job until LiveKit's empty-room timeout)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from shared.devstack.stack import EphemeralStack, TenantKey
from tests.factories import make_product_deck


@dataclass(frozen=True)
class ProductDeck:
    owner: TenantKey
    deck_id: str


async def upload_ready(api: httpx.AsyncClient, owner: TenantKey, name: str, data: bytes) -> str:
    resp = await api.post("/v1/decks", headers=owner.headers, files={"file": (name, data)})
    assert resp.status_code == 202, resp.text
    deck_id = str(resp.json()["deck_id"])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        deck = (await api.get(f"/v1/decks/{deck_id}", headers=owner.headers)).json()
        if deck["status"] in ("ready", "failed"):
            assert deck["status"] == "ready", deck
            return deck_id
        await asyncio.sleep(0.2)
    raise AssertionError(f"{name} was not ingested in 60 s")


@pytest.fixture(scope="module")
async def product_deck(control_plane: EphemeralStack) -> ProductDeck:
    owner = control_plane.create_tenant("product-deck")
    async with httpx.AsyncClient(base_url=control_plane.api_url, timeout=10) as api:
        deck_id = await upload_ready(api, owner, "acme.pptx", make_product_deck())
    return ProductDeck(owner, deck_id)


Sessions = Callable[..., Awaitable[dict[str, Any]]]


@pytest.fixture
async def new_session(api: httpx.AsyncClient, product_deck: ProductDeck) -> AsyncIterator[Sessions]:
    """``await new_session(deck_id, paused=False)``: a session of the deck's owner for Ada.
    ``paused`` pauses the presentation before anyone joins, for tests of single turns."""
    created: list[str] = []

    async def create(deck_id: str | None, *, paused: bool = False) -> dict[str, Any]:
        resp = await api.post(
            "/v1/sessions",
            headers=product_deck.owner.headers,
            json={"deck_id": deck_id, "participant": {"identity": "ada", "name": "Ada"}},
        )
        assert resp.status_code == 201, resp.text
        session = dict(resp.json())
        created.append(session["session_id"])
        if paused:
            pause = await api.post(
                f"/v1/sessions/{session['session_id']}/slide",
                headers={**product_deck.owner.headers, "Idempotency-Key": "test-pause"},
                json={"action": "pause"},
            )
            assert pause.status_code == 200, pause.text
        return session

    yield create
    for session_id in created:
        ended = await api.post(f"/v1/sessions/{session_id}/end", headers=product_deck.owner.headers)
        assert ended.status_code == 200, ended.text
