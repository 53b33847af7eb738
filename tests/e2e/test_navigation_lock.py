"""Slides locked by the host, on the real stack with the offline presenter: a participant who asks
the presenter to move on is told the host locked navigation and nothing moves; once unlocked the
same request moves the slide; a host's spoken request moves it while locked."""

from __future__ import annotations

from typing import Any

import httpx

from agent_worker.audience import LOCKED
from tests.e2e.audience import Audience
from tests.e2e.conftest import ProductDeck


async def _slide(api: httpx.AsyncClient, owner: dict[str, str], sid: str, action: str) -> None:
    resp = await api.post(
        f"/v1/sessions/{sid}/slide",
        headers={**owner, "Idempotency-Key": f"test-{action}"},
        json={"action": action},
    )
    assert resp.status_code == 200, resp.text


async def _session(
    api: httpx.AsyncClient, owner: dict[str, str], deck_id: str, identity: str, role: str
) -> dict[str, Any]:
    resp = await api.post(
        "/v1/sessions",
        headers=owner,
        json={
            "deck_id": deck_id,
            "participant": {"identity": identity, "name": identity.title(), "role": role},
        },
    )
    assert resp.status_code == 201, resp.text
    session = dict(resp.json())
    # paused (single turns, no narration) and locked before anyone joins
    await _slide(api, owner, session["session_id"], "pause")
    await _slide(api, owner, session["session_id"], "lock")
    return session


async def test_the_presenter_moves_the_slides_only_for_the_host_while_they_are_locked(
    api: httpx.AsyncClient, product_deck: ProductDeck, worker: Any
) -> None:
    owner = product_deck.owner.headers
    ada_session = await _session(api, owner, product_deck.deck_id, "ada", "participant")
    hope_session = await _session(api, owner, product_deck.deck_id, "hope", "host")
    try:
        async with Audience(ada_session["livekit_url"], ada_session["token"]) as ada:
            await ada.until(lambda: ada.agent_said(), 60, "no greeting")
            await ada.until_silent(1.5, 30)
            asked, _ = await ada.say("Please go to the next slide.")
            await ada.until(
                lambda: [s for s in ada.agent_said(asked) if "locked" in s], 40, "no refusal"
            )
            assert LOCKED in ada.agent_said(asked)[0]
            assert ada.slide["index"] == 1 and ada.slide["locked"] is True
            await ada.until_silent(1.5, 30)

            await _slide(api, owner, ada_session["session_id"], "unlock")
            await ada.until(lambda: ada.slide.get("locked") is False, 10, "not unlocked")
            await ada.say("Please go to the next slide.")
            await ada.until(lambda: ada.slide.get("index") == 2, 40, "no move once unlocked")

        async with Audience(hope_session["livekit_url"], hope_session["token"]) as hope:
            await hope.until(lambda: hope.agent_said(), 60, "no greeting")
            await hope.until_silent(1.5, 30)
            await hope.say("Please go to the next slide.")
            await hope.until(lambda: hope.slide.get("index") == 2, 40, "the host's move refused")
            assert hope.slide["locked"] is True
    finally:
        for session in (ada_session, hope_session):
            await api.post(f"/v1/sessions/{session['session_id']}/end", headers=owner)
