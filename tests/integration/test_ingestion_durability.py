"""Ingestion survives the control plane dying mid-deck: the deck is picked up again."""

from __future__ import annotations

import asyncio
import time

import httpx

from shared.devstack.stack import EphemeralStack, TenantKey
from tests.factories import make_pdf


async def test_deck_interrupted_by_a_crash_is_finished_after_restart(
    control_plane: EphemeralStack, tenant: TenantKey
) -> None:
    pdf = make_pdf([[f"Slide {i}", f"Point {i}"] for i in range(1, 121)])
    async with httpx.AsyncClient(base_url=control_plane.api_url, timeout=10) as api:
        resp = await api.post("/v1/decks", headers=tenant.headers, files={"file": ("big.pdf", pdf)})
        assert resp.status_code == 202
        deck_id = resp.json()["deck_id"]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            deck = (await api.get(f"/v1/decks/{deck_id}", headers=tenant.headers)).json()
            if deck["status"] == "processing" and deck["progress"]["slides_done"] > 0:
                break
            await asyncio.sleep(0.05)
        assert deck["status"] == "processing", deck

    control_plane.restart_control_plane(hard=True)

    async with httpx.AsyncClient(base_url=control_plane.api_url, timeout=10) as api:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            deck = (await api.get(f"/v1/decks/{deck_id}", headers=tenant.headers)).json()
            if deck["status"] in ("ready", "failed"):
                break
            await asyncio.sleep(0.2)
        assert deck["status"] == "ready", deck
        assert deck["progress"] == {"slides_done": 120, "slides_total": 120}
        slides = (await api.get(f"/v1/decks/{deck_id}/slides", headers=tenant.headers)).json()
        assert len(slides["slides"]) == 120
        assert all(s["image_url"] for s in slides["slides"])
