"""A viewer on the join page types a question into the question box: the presenter answers it
by name, and the answer shows in the page's captions."""

from __future__ import annotations

import httpx
from livekit import rtc
from playwright.async_api import Browser, expect

from shared.devstack.services import ManagedProcess
from shared.devstack.stack import EphemeralStack, TenantKey
from tests.browser.conftest import Shoot
from tests.browser.test_join_page import DESKTOP, product_pdf
from tests.e2e.conftest import upload_ready


async def test_a_viewer_types_a_question_and_reads_the_answer_in_the_captions(
    chromium: Browser,
    control_plane: EphemeralStack,
    worker: ManagedProcess,
    tenant: TenantKey,
    api: httpx.AsyncClient,
    shoot: Shoot,
) -> None:
    deck_id = await upload_ready(api, tenant, "acme.pdf", product_pdf())
    created = await api.post(
        "/v1/sessions",
        headers=tenant.headers,
        json={"deck_id": deck_id, "participant": {"identity": "ada", "name": "Ada"}},
    )
    assert created.status_code == 201, created.text
    session = created.json()
    sid = session["session_id"]
    paused = await api.post(
        f"/v1/sessions/{sid}/slide",
        headers={**tenant.headers, "Idempotency-Key": "typed-pause"},
        json={"action": "pause"},
    )
    assert paused.status_code == 200, paused.text
    viewer = await api.post(
        f"/v1/sessions/{sid}/tokens",
        headers=tenant.headers,
        json={"role": "viewer", "identity": "vic", "name": "Vic"},
    )
    assert viewer.status_code == 201, viewer.text
    ada = rtc.Room()  # the participant the presenter starts for (a viewer alone does not)
    context = await chromium.new_context(viewport=DESKTOP)
    page = await context.new_page()
    try:
        await ada.connect(session["livekit_url"], session["token"])
        await page.goto(viewer.json()["join_url"])
        await page.click("#join")
        await expect(page.locator("#connection")).to_have_text("Connected", timeout=20_000)
        captions = page.locator("#captions")
        # the presenter has greeted Ada (perhaps before this page joined) and listens
        presenter = page.locator("#presenter")
        await expect(presenter).to_have_attribute("data-agent-state", "listening", timeout=90_000)
        await page.fill("#ask-text", "Is there an annual contract?")
        await page.click("#ask-send")
        await expect(page.locator("#ask-status")).to_contain_text("You asked")
        await expect(page.locator("#ask-text")).to_have_value("")
        await expect(captions).to_contain_text("Vic, that's on slide 4", timeout=60_000)
        await shoot(page, "20-typed-question")
    finally:
        await api.post(f"/v1/sessions/{sid}/end", headers=tenant.headers)
        await context.close()
        await ada.disconnect()
