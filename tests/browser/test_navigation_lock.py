"""A host locks the slides on the join page: a participant's page greys out its next/previous
buttons and says the host locked them, the host still moves the slides (the participant sees
each move), and unlocking gives the participant the buttons back."""

from __future__ import annotations

import httpx
from playwright.async_api import Browser, Page, expect

from shared.devstack.stack import EphemeralStack, TenantKey
from tests.browser.conftest import Shoot
from tests.browser.test_join_page import DESKTOP, product_pdf, transitions
from tests.e2e.conftest import upload_ready


async def _join(browser: Browser, url: str) -> Page:
    context = await browser.new_context(viewport=DESKTOP)
    page = await context.new_page()
    await page.goto(url)
    await page.click("#join")
    await expect(page.locator("#connection")).to_have_text("Connected", timeout=20_000)
    return page


async def test_a_host_locks_the_slides_and_a_participant_cannot_move_them(
    chromium: Browser,
    control_plane: EphemeralStack,
    tenant: TenantKey,
    api: httpx.AsyncClient,
    shoot: Shoot,
) -> None:
    deck_id = await upload_ready(api, tenant, "acme.pdf", product_pdf())
    created = await api.post(
        "/v1/sessions",
        headers=tenant.headers,
        json={
            "deck_id": deck_id,
            "participant": {"identity": "hope", "name": "Hope", "role": "host"},
        },
    )
    assert created.status_code == 201, created.text
    session = created.json()
    sid = session["session_id"]
    ada = await api.post(
        f"/v1/sessions/{sid}/tokens",
        headers=tenant.headers,
        json={"role": "participant", "identity": "ada", "name": "Ada"},
    )
    assert ada.status_code == 201, ada.text
    # a presenter (the suite's worker, when another test started it) would move on by itself
    paused = await api.post(
        f"/v1/sessions/{sid}/slide",
        headers={**tenant.headers, "Idempotency-Key": "lock-pause"},
        json={"action": "pause"},
    )
    assert paused.status_code == 200, paused.text
    try:
        host = await _join(chromium, session["join_url"])
        guest = await _join(chromium, ada.json()["join_url"])
        lock, next_ = host.locator("#lock"), guest.locator("#next")
        await expect(guest.locator("#lock")).to_be_hidden()  # only the host has it
        await expect(next_).to_be_enabled(timeout=10_000)

        await lock.click()
        await expect(lock).to_have_attribute("aria-pressed", "true", timeout=10_000)
        await expect(lock).to_have_text("Unlock slides")
        await expect(guest.locator("#locked-badge")).to_be_visible(timeout=10_000)
        await expect(next_).to_be_disabled()
        await expect(guest.locator("#prev")).to_be_disabled()
        await expect(guest.locator("#pause")).to_be_enabled()  # pausing stays theirs
        await expect(guest.locator("#pause")).to_have_text("Resume presentation")
        # the keyboard is refused too: the page does not send a move it knows is locked
        await guest.keyboard.press("ArrowRight")

        await host.click("#next")
        await expect(guest.locator("#slide")).to_have_attribute("data-index", "2", timeout=10_000)
        await shoot(guest, "20-slides-locked-by-the-host")

        await lock.click()
        await expect(guest.locator("#locked-badge")).to_be_hidden(timeout=10_000)
        await expect(next_).to_be_enabled()
        await next_.click()
        await expect(host.locator("#slide")).to_have_attribute("data-index", "3", timeout=10_000)

        log = [(t["action"], t["actor"]) for t in await transitions(api, tenant, sid)]
        assert log[2:] == [
            ("lock", "participant:hope"),
            ("next", "participant:hope"),
            ("unlock", "participant:hope"),
            ("next", "participant:ada"),
        ], log
    finally:
        await api.post(f"/v1/sessions/{sid}/end", headers=tenant.headers)
