"""A newcomer's path in a real browser: the demo page uploads a deck and starts a session, the
join page connects to livekit-server, plays the presenter's greeting, shows captions and the
slide; a spoken "next slide" (the fake microphone) moves the slide; a late viewer on a phone
sees the same slide; a keyboard "next" reaches both; ending the session tells both."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any
from urllib.parse import urlsplit

import httpx
import jwt
import numpy as np
from livekit import api as lk
from livekit import rtc
from playwright.async_api import Browser, Page, expect

from shared.devstack.services import ManagedProcess
from shared.devstack.stack import EphemeralStack, TenantKey
from shared.settings import DEV_LIVEKIT_KEY, DEV_LIVEKIT_SECRET
from tests.browser.conftest import Shoot
from tests.factories import PRODUCT_DECK, make_pdf

DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
IMAGE_LOADED = "(i => i.complete && i.naturalWidth > 0)(document.getElementById('slide-image'))"


def product_pdf() -> bytes:
    """The product deck as a PDF (title and body lines per page): previews render in-process."""
    return make_pdf([[title, *body.split("\n")] for title, body, _ in PRODUCT_DECK])


async def slide_on(page: Page) -> dict[str, Any]:
    shown: dict[str, Any] = await page.evaluate(
        """() => {
            const figure = document.getElementById('slide');
            const img = document.getElementById('slide-image');
            return {
                index: Number(figure.dataset.index),
                version: Number(figure.dataset.version || 0),
                image: img.hidden ? null : new URL(img.src).pathname,
                loaded: img.complete && img.naturalWidth > 0,
                counter: document.getElementById('slide-counter').textContent,
            };
        }"""
    )
    return shown


async def until(page: Page, predicate: str, timeout_s: float = 10) -> None:
    """Poll ``predicate`` (a JS expression) in the page. Not ``wait_for_function``: that
    evaluates strings inside the page, which its Content-Security-Policy rightly forbids."""
    deadline = time.monotonic() + timeout_s
    while not await page.evaluate(predicate):
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout_s} s: {predicate}")
        await asyncio.sleep(0.05)


async def transitions(api: httpx.AsyncClient, tenant: TenantKey, sid: str) -> list[dict[str, Any]]:
    resp = await api.get(f"/v1/sessions/{sid}/transitions", headers=tenant.headers)
    assert resp.status_code == 200, resp.text
    items: list[dict[str, Any]] = resp.json()["items"]
    return items


async def wait_for_transition(
    api: httpx.AsyncClient, tenant: TenantKey, sid: str, timeout_s: float, **match: str
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for item in await transitions(api, tenant, sid):
            if all(item.get(key) == value for key, value in match.items()):
                return item
        await asyncio.sleep(0.25)
    seen = await transitions(api, tenant, sid)
    raise AssertionError(f"no transition {match} within {timeout_s} s; saw {seen}")


async def same_slide(first: Page, second: Page, timeout_s: float = 5) -> dict[str, Any]:
    """Both pages show the same slide version (narration may move it meanwhile)."""
    deadline = time.monotonic() + timeout_s
    while True:
        a, b = await slide_on(first), await slide_on(second)
        if a["version"] == b["version"] and a["loaded"] and b["loaded"]:
            assert (a["index"], a["image"]) == (b["index"], b["image"])
            return a
        if time.monotonic() > deadline:
            raise AssertionError(f"the pages disagree: {a} vs {b}")
        await asyncio.sleep(0.1)


async def test_a_newcomer_starts_a_session_on_the_demo_page_and_talks_to_the_presenter(
    chromium: Browser,
    control_plane: EphemeralStack,
    worker: ManagedProcess,
    tenant: TenantKey,
    api: httpx.AsyncClient,
    shoot: Shoot,
) -> None:
    desktop = await chromium.new_context(viewport=DESKTOP)
    demo = await desktop.new_page()
    sid = ""
    page_errors: list[str] = []
    console_errors: list[str] = []

    def watch(page: Page, who: str) -> None:
        page.on("pageerror", lambda error: page_errors.append(f"{who}: {error}"))
        page.on(
            "console",
            lambda msg: (
                console_errors.append(f"{who}: {msg.text[:300]}") if msg.type == "error" else None
            ),
        )

    watch(demo, "demo")
    try:
        # --- the demo page: upload a deck, start a session ------------------------------------
        await demo.goto(f"{control_plane.api_url}/demo#key={tenant.api_key}")
        assert "#key" not in demo.url  # the key leaves the address bar at once
        await expect(demo.locator("#key-status")).to_have_text("Key accepted.")
        await demo.set_input_files(
            "#upload",
            files=[{"name": "acme.pdf", "mimeType": "application/pdf", "buffer": product_pdf()}],
        )
        await demo.click("#upload-form button[type=submit]")
        await expect(demo.locator("#upload-status")).to_contain_text("ready", timeout=60_000)
        await expect(demo.locator("input[name=deck]:checked")).not_to_have_value("")
        await demo.fill("#name", "Ada")
        await demo.click("#start-form button[type=submit]")
        await expect(demo.locator("#started")).to_be_visible()
        sid = (await demo.text_content("#session-id")) or ""
        join_url = await demo.get_attribute("#join-link", "href")
        assert join_url and urlsplit(join_url).path == f"/join/{sid}"
        await shoot(demo, "01-demo-page-session-started")

        # --- the join page: lobby, then the room ------------------------------------------------
        async with desktop.expect_page() as opened:
            await demo.click("#join-link")
        page = await opened.value
        watch(page, "ada")
        await expect(page.locator("#lobby")).to_be_visible()
        assert "token=" not in page.url  # the token leaves the address bar too
        await expect(page.locator("#lobby-who")).to_contain_text("as Ada")
        await page.uncheck("#lobby-mic")  # talk later, after the greeting
        await shoot(page, "02-lobby")
        await page.click("#join")

        await expect(page.locator("#connection")).to_have_text("Connected", timeout=20_000)
        await expect(page.locator("#mic")).to_be_focused()  # keyboard users land on a control
        await expect(page.locator("#slide-counter")).to_have_text("Slide 1 of 8")
        first = await slide_on(page)
        assert first["image"].endswith("/slide-001.jpg"), first
        await until(page, IMAGE_LOADED)

        # The greeting: the agent's audio reaches the page, its words reach the captions.
        await until(page, "Number(document.getElementById('presenter').dataset.level) > 0.01", 60)
        agent_line = page.locator("#captions li[data-speaker=agent] .said").first
        await expect(agent_line).to_contain_text("Podium", timeout=30_000)
        await expect(page.locator("#presenter")).to_have_attribute(
            "data-agent-state", "speaking", timeout=30_000
        )
        # The presenter's face: the local avatar's video, playing at its full size.
        await expect(page.locator("#presenter")).to_have_attribute("data-avatar", "local")
        await expect(page.locator("#avatar")).to_be_visible(timeout=20_000)
        playing = (
            "(v => !v.paused && v.readyState >= 2 && v.videoWidth === 640)"
            "(document.getElementById('avatar'))"
        )
        await until(page, playing, 20)
        await expect(page.locator("#audio-only")).to_be_hidden()
        await shoot(page, "03-greeting-avatar-with-captions")

        # --- say "next slide": the mic opens and the WAV plays from its start -----------------
        await page.click("#mic")
        await expect(page.locator("#mic")).to_have_attribute("aria-pressed", "true")
        moved = await wait_for_transition(
            api, tenant, sid, 60, action="next", reason="presenter tool"
        )
        await until(
            page, f"Number(document.getElementById('slide').dataset.version) >= {moved['version']}"
        )
        await until(page, IMAGE_LOADED)
        now = await slide_on(page)
        assert now["index"] >= moved["to_index"] > 1, (now, moved)
        assert now["image"] != first["image"] and now["loaded"], now
        user_line = page.locator("#captions li[data-speaker=user] .said").first
        await expect(user_line).to_contain_text("next", ignore_case=True, timeout=15_000)
        answer = page.locator("#captions li[data-speaker=agent]").nth(1)  # after the greeting
        await expect(answer).to_contain_text("slide", ignore_case=True, timeout=20_000)
        await shoot(page, "04-after-saying-next-slide")

        # --- a viewer joins late, on a phone ----------------------------------------------------
        minted = await api.post(
            f"/v1/sessions/{sid}/tokens",
            headers=tenant.headers,
            json={"role": "viewer", "name": "Vic"},
        )
        assert minted.status_code == 201, minted.text
        phone = await chromium.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
        late = await phone.new_page()
        watch(late, "viewer")
        await late.goto(minted.json()["join_url"])
        await expect(late.locator("#lobby-mic-row")).to_be_hidden()  # a viewer cannot speak
        await late.click("#join")
        await expect(late.locator("#connection")).to_have_text("Connected", timeout=20_000)
        await same_slide(page, late)
        await expect(late.locator("#next")).to_be_hidden()
        await expect(late.locator("#mic")).to_be_hidden()
        await shoot(late, "05-late-viewer-on-a-phone")

        # --- the participant presses → ; both pages follow the push -----------------------------
        await page.locator("body").press("ArrowRight")
        by_key = await wait_for_participant_next(api, tenant, sid)
        for shown in (page, late):
            await until(
                shown,
                f"Number(document.getElementById('slide').dataset.version) >= {by_key['version']}",
            )
        await same_slide(page, late)
        await shoot(page, "06-after-keyboard-next")
        await shoot(late, "07-late-viewer-follows")

        # --- P pauses the presentation for everyone ---------------------------------------------
        await page.locator("body").press("p")
        await expect(late.locator("#paused-badge")).to_be_visible(timeout=5_000)
        await expect(page.locator("#pause")).to_have_attribute("aria-pressed", "true")
        assert (await transitions(api, tenant, sid))[-1]["action"] == "pause"

        # --- the integrator ends the session: both pages say so ----------------------------------
        ended = await api.post(f"/v1/sessions/{sid}/end", headers=tenant.headers)
        assert ended.status_code == 200, ended.text
        for shown in (page, late):
            await expect(shown.locator("#notice-title")).to_have_text(
                "This session has ended", timeout=15_000
            )
        await shoot(page, "08-session-ended")
        await phone.close()
        # No uncaught exception, refused resource or CSP violation in any of the pages. (The SDK
        # also logs its data channels closing when the room is deleted: not ours to judge.)
        print("console errors:", json.dumps(console_errors, indent=1))
        assert not page_errors, page_errors
        ours = [e for e in console_errors if "Failed to load" in e or "Security Policy" in e]
        assert not ours, ours
    except BaseException:
        # What each open page showed when the test failed, next to the other screenshots.
        for number, open_page in enumerate(p for c in chromium.contexts for p in c.pages):
            await shoot(open_page, f"failed-page-{number}")
        raise
    finally:
        if sid:
            await api.post(f"/v1/sessions/{sid}/end", headers=tenant.headers)
        await desktop.close()


async def wait_for_participant_next(
    api: httpx.AsyncClient, tenant: TenantKey, sid: str
) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        for item in await transitions(api, tenant, sid):
            if item["action"] == "next" and item["actor"].startswith("participant:"):
                return item
        await asyncio.sleep(0.2)
    raise AssertionError("the keyboard's next slide did not reach the control plane")


async def test_expired_and_broken_links_explain_themselves(
    chromium: Browser,
    control_plane: EphemeralStack,
    tenant: TenantKey,
    api: httpx.AsyncClient,
    shoot: Shoot,
) -> None:
    created = (await api.post("/v1/sessions", headers=tenant.headers, json={})).json()
    sid = created["session_id"]
    context = await chromium.new_context(viewport=PHONE)

    async def opened(url: str) -> Page:
        # A new page each time: a link that differs only in its fragment would not reload.
        page = await context.new_page()
        await page.goto(url)
        return page

    try:
        payload = jwt.decode(created["token"], options={"verify_signature": False})
        payload["exp"] = int(time.time()) - 600
        expired = jwt.encode(payload, DEV_LIVEKIT_SECRET, algorithm="HS256")
        page = await opened(f"{control_plane.api_url}/join/{sid}#token={expired}")
        await expect(page.locator("#notice-title")).to_have_text("This link has expired")
        await shoot(page, "10-expired-link")

        page = await opened(f"{control_plane.api_url}/join/{sid}#token=garbage")
        await expect(page.locator("#notice-title")).to_have_text("This link is not valid")

        other = lk.AccessToken(DEV_LIVEKIT_KEY, "a-forged-secret-that-is-long-enough-000")
        grants = lk.VideoGrants(room_join=True, room=created["room"])
        forged = (
            other.with_identity("x")
            .with_grants(grants)
            .with_attributes({"podium.session_id": sid, "podium.role": "participant"})
            .to_jwt()
        )
        page = await opened(f"{control_plane.api_url}/join/{sid}#token={forged}")
        await expect(page.locator("#notice-title")).to_have_text("This link is not valid")

        page = await opened(f"{control_plane.api_url}/join/{sid}")
        await expect(page.locator("#notice-title")).to_have_text("This link is incomplete")

        page = await opened(f"{control_plane.api_url}/join/{sid[:-4]}#token={created['token']}")
        await expect(page.locator("#notice-title")).to_have_text("This link is not valid")

        await api.post(f"/v1/sessions/{sid}/end", headers=tenant.headers)
        page = await opened(created["join_url"])
        await expect(page.locator("#notice-title")).to_have_text("This session has ended")
        await shoot(page, "11-ended-session")
    finally:
        await api.post(f"/v1/sessions/{sid}/end", headers=tenant.headers)
        await context.close()


async def test_a_blocked_microphone_is_explained_and_the_page_still_works(
    chromium_without_mic_permission: Browser,
    control_plane: EphemeralStack,
    tenant: TenantKey,
    api: httpx.AsyncClient,
    shoot: Shoot,
) -> None:
    created = (await api.post("/v1/sessions", headers=tenant.headers, json={})).json()
    context = await chromium_without_mic_permission.new_context(viewport=DESKTOP)
    page = await context.new_page()
    try:
        await page.goto(created["join_url"])
        await page.click("#join")  # with the microphone on, the default
        await expect(page.locator("#connection")).to_have_text("Connected", timeout=20_000)
        await expect(page.locator("#mic-message")).to_contain_text("Microphone blocked")
        await expect(page.locator("#mic")).to_have_attribute("aria-pressed", "false")
        await expect(page.locator("#mic-label")).to_have_text("Microphone blocked")
        await shoot(page, "12-microphone-blocked")
    finally:
        await api.post(f"/v1/sessions/{created['session_id']}/end", headers=tenant.headers)
        await context.close()


async def test_the_page_reconnects_by_itself_after_the_network_drops(
    chromium: Browser,
    control_plane: EphemeralStack,
    worker: ManagedProcess,
    tenant: TenantKey,
    api: httpx.AsyncClient,
    shoot: Shoot,
) -> None:
    created = (await api.post("/v1/sessions", headers=tenant.headers, json={})).json()
    context = await chromium.new_context(viewport=DESKTOP)
    page = await context.new_page()
    connection = page.locator("#connection")
    try:
        await page.goto(created["join_url"])
        await page.uncheck("#lobby-mic")
        await page.click("#join")
        await expect(connection).to_have_text("Connected", timeout=20_000)
        presenter = page.locator("#presenter")
        await expect(presenter).not_to_have_attribute("data-agent-state", "absent", timeout=30_000)
        await context.set_offline(True)
        await expect(connection).not_to_have_text("Connected", timeout=40_000)
        await shoot(page, "13-network-lost")
        await context.set_offline(False)
        await expect(connection).to_have_text("Connected", timeout=60_000)
        # Still in the same room with the presenter, no reload.
        await expect(presenter).not_to_have_attribute("data-agent-state", "absent")
        await expect(page.locator("#room")).to_be_visible()
    finally:
        await api.post(f"/v1/sessions/{created['session_id']}/end", headers=tenant.headers)
        await context.close()


async def publish_avatar_video(
    room: rtc.Room, stop: asyncio.Event, width: int = 320, height: int = 240
) -> None:
    """Frames of a changing colour at 15 fps until ``stop``, as an avatar worker would send."""
    source = rtc.VideoSource(width, height)
    track = rtc.LocalVideoTrack.create_video_track("avatar", source)
    options = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_CAMERA)
    publication = await room.local_participant.publish_track(track, options)
    frame = np.zeros((height, width, 4), dtype=np.uint8)
    frame[..., 3] = 255
    tick = 0
    try:
        while not stop.is_set():
            frame[..., 0] = (tick * 8) % 256
            frame[..., 2] = 128
            source.capture_frame(
                rtc.VideoFrame(width, height, rtc.VideoBufferType.RGBA, frame.tobytes())
            )
            tick += 1
            await asyncio.sleep(1 / 15)
    finally:
        await room.local_participant.unpublish_track(publication.sid)


async def test_an_avatar_video_replaces_the_audio_only_view_while_it_is_published(
    chromium: Browser,
    control_plane: EphemeralStack,
    worker: ManagedProcess,
    tenant: TenantKey,
    api: httpx.AsyncClient,
    shoot: Shoot,
) -> None:
    """A vendor's avatar: a participant publishing video on the agent's behalf, as the
    framework's avatar plugins do (this one stands in for a vendor). The tenant turned Podium's
    own avatar off, so the page starts audio-only and says so."""
    off = await api.put("/v1/tenant/avatar", headers=tenant.headers, json={"enabled": False})
    assert off.status_code == 200, off.text
    created = (await api.post("/v1/sessions", headers=tenant.headers, json={})).json()
    context = await chromium.new_context(viewport=DESKTOP)
    page = await context.new_page()
    avatar = rtc.Room()
    stop = asyncio.Event()
    sending: asyncio.Task[None] | None = None
    try:
        await page.goto(created["join_url"])
        await page.uncheck("#lobby-mic")
        await page.click("#join")
        presenter = page.locator("#presenter")
        await expect(presenter).not_to_have_attribute("data-agent-state", "absent", timeout=30_000)
        await expect(presenter).to_have_attribute("data-avatar", "audio-only", timeout=30_000)
        await expect(page.locator("#audio-only")).to_be_visible()
        await expect(page.locator("#audio-only-label")).to_have_text("Audio only")

        token = (
            lk.AccessToken(DEV_LIVEKIT_KEY, DEV_LIVEKIT_SECRET)
            .with_identity("avatar-stand-in")
            .with_kind("agent")
            .with_grants(lk.VideoGrants(room_join=True, room=created["room"]))
            .with_attributes({"lk.publish_on_behalf": "the-presenter"})
            .to_jwt()
        )
        await avatar.connect(control_plane.livekit.url, token)
        sending = asyncio.create_task(publish_avatar_video(avatar, stop))
        await expect(page.locator("#avatar")).to_be_visible(timeout=20_000)
        playing = (
            "(v => !v.paused && v.readyState >= 2 && v.videoWidth === 320)"
            "(document.getElementById('avatar'))"
        )
        await until(page, playing, 20)
        await expect(page.locator("#audio-only")).to_be_hidden()
        await shoot(page, "14-avatar-video")

        stop.set()
        await sending
        await expect(page.locator("#audio-only")).to_be_visible(timeout=10_000)
        await expect(page.locator("#avatar")).to_be_hidden()
    finally:
        stop.set()
        if sending is not None:
            await asyncio.gather(sending, return_exceptions=True)
        await avatar.disconnect()
        await api.post(f"/v1/sessions/{created['session_id']}/end", headers=tenant.headers)
        await context.close()
