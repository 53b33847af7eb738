"""The deck analytics page in headless Chromium, on two recorded sessions of one deck (the
data of tests/integration/test_analytics.py): opened from a read-only link, it shows each
slide's thumbnail with its time and questions, the off-deck question as a content gap, the
questions per slide, the drop-off chart and the sessions; without a link it asks for a key."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import httpx
import pytest
from playwright.async_api import Browser, Page, ViewportSize, async_playwright

from shared.devstack.stack import EphemeralStack
from tests.analytics_fixture import (
    SALESFORCE_A,
    SALESFORCE_B,
    WEATHER,
    TwoSessions,
    product_deck,
    two_sessions,
)
from tests.browser.conftest import BASE_ARGS, Shoot

DESKTOP: ViewportSize = {"width": 1280, "height": 900}
RANGE = "?from=2026-03-01&to=2026-03-03"


@pytest.fixture(scope="module")
async def recorded(control_plane: EphemeralStack) -> TwoSessions:
    owner = control_plane.create_tenant("analytics-page")
    async with httpx.AsyncClient(base_url=control_plane.api_url, timeout=30) as api:
        deck_id = await product_deck(api, owner)
        return await two_sessions(api, control_plane, owner, deck_id)


@pytest.fixture(scope="module")
async def browser(chromium_path: str) -> AsyncIterator[Browser]:
    async with async_playwright() as pw:
        launched = await pw.chromium.launch(
            executable_path=chromium_path, headless=True, args=BASE_ARGS
        )
        try:
            yield launched
        finally:
            await launched.close()


async def until(page: Page, predicate: str, timeout_s: float = 15) -> None:
    """Poll a JS expression (the page's CSP forbids wait_for_function's string eval)."""
    deadline = time.monotonic() + timeout_s
    while not await page.evaluate(predicate):
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout_s} s: {predicate}")
        await asyncio.sleep(0.05)


async def _texts(page: Page, selector: str) -> list[str]:
    return [t.strip() for t in await page.locator(selector).all_inner_texts()]


async def test_a_link_shows_time_questions_gaps_and_drop_off_per_slide(
    control_plane: EphemeralStack, recorded: TwoSessions, browser: Browser, shoot: Shoot
) -> None:
    async with httpx.AsyncClient(base_url=control_plane.api_url, timeout=10) as api:
        made = await api.post(
            f"/v1/decks/{recorded.deck_id}/analytics/link", headers=recorded.owner.headers
        )
    assert made.status_code == 201, made.text
    token = made.json()["token"]
    page = await browser.new_page(viewport=DESKTOP)
    try:
        await page.goto(
            f"{control_plane.api_url}/analytics/{recorded.deck_id}{RANGE}#token={token}"
        )
        await until(page, "document.body.dataset.loaded === 'true'")
        assert "token" not in page.url  # taken out of the address bar
        thumbs = "[...document.querySelectorAll('.thumb img')]"
        await until(page, f"{thumbs}.every(i => i.complete && i.naturalWidth > 0)")
        strip = page.locator("#strip li")
        assert await strip.count() == 8
        seconds = [await li.get_attribute("data-seconds") for li in await strip.all()]
        assert seconds == ["90", "60", "130", "60", "0", "0", "0", "30"]
        slide3 = page.locator("#strip li[data-index='3']")
        assert await slide3.locator(".time").inner_text() == "1m 05s"  # per session
        assert await slide3.get_attribute("data-dropoffs") == "1"
        asked = {
            await li.get_attribute("data-index"): await li.get_attribute("data-questions")
            for li in await strip.all()
        }
        assert asked == {
            "1": "0",
            "2": "2",
            "3": "0",
            "4": "2",
            "5": "0",
            "6": "0",
            "7": "0",
            "8": "0",
        }
        assert "Pricing" in await page.locator("#strip li[data-index='4']").inner_text()

        gaps = await _texts(page, "#gaps > li")
        assert len(gaps) == 2
        assert "Salesforce" in gaps[0] and "asked 2 times in 2 sessions" in gaps[0]
        assert SALESFORCE_A in gaps[0] or SALESFORCE_B in gaps[0]
        assert WEATHER in gaps[1] and "asked 1 time in 1 session" in gaps[1]

        slide2 = await _texts(page, "#questions [data-slide='2'] li")
        assert slide2 == [f"{SALESFORCE_B}", WEATHER]
        declined = page.locator("#questions [data-slide='4'] li[data-declined='true']")
        assert await declined.inner_text() == SALESFORCE_A

        dropped = page.locator("#dropoff rect.dropped")
        assert await dropped.count() == 1
        assert await dropped.get_attribute("data-index") == "3"
        reached = [
            await r.get_attribute("data-reached")
            for r in await page.locator("#dropoff rect.reached").all()
        ]
        assert reached == ["2", "2", "2", "1", "0", "0", "0", "1"]
        rows = await _texts(page, "#sessions tr")
        assert len(rows) == 2 and "finished" in rows[0] and "slide 3" in rows[1]
        summary = await page.locator("#summary").inner_text()
        assert "75%" in summary and "3m 15s" in summary
        await shoot(page, "analytics-deck")

        await page.reload()  # the token stayed in this tab
        await until(page, "document.body.dataset.loaded === 'true'")
    finally:
        await page.close()


async def test_without_a_link_it_asks_for_a_key_and_refuses_a_bad_one(
    control_plane: EphemeralStack, recorded: TwoSessions, browser: Browser, shoot: Shoot
) -> None:
    page = await browser.new_page(viewport=DESKTOP)
    try:
        await page.goto(f"{control_plane.api_url}/analytics/{recorded.deck_id}{RANGE}")
        await page.locator("#api-key").fill("pdm_not-a-key")
        await page.locator("#key-form button").click()
        await until(page, "document.getElementById('status').textContent.includes('not valid')")
        assert await page.locator("#key-card").is_visible()
        await page.locator("#api-key").fill(recorded.owner.api_key)
        await page.locator("#key-form button").click()
        await until(page, "document.body.dataset.loaded === 'true'")
        assert await page.locator("#strip li").count() == 8
        await shoot(page, "analytics-key")
    finally:
        await page.close()
