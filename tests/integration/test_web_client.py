"""The web client as the control plane serves it: join links, the pages and their bundle, and
the participant's own view of its session (``GET /v1/participant/session``)."""

from __future__ import annotations

import time
from urllib.parse import urlsplit

import httpx
import jwt
from livekit import api as lk

from shared.devstack.stack import EphemeralStack, TenantKey
from shared.settings import DEV_LIVEKIT_KEY, DEV_LIVEKIT_SECRET


async def test_session_and_token_answers_carry_a_join_url_with_the_token_in_the_fragment(
    api: httpx.AsyncClient, tenant: TenantKey, control_plane: EphemeralStack
) -> None:
    created = (await api.post("/v1/sessions", headers=tenant.headers, json={})).json()
    sid = created["session_id"]
    try:
        url = urlsplit(created["join_url"])
        assert f"{url.scheme}://{url.netloc}" == control_plane.api_url
        assert url.path == f"/join/{sid}"
        assert url.query == ""  # never in the query: that would reach server logs
        assert url.fragment == f"token={created['token']}"

        viewer = await api.post(
            f"/v1/sessions/{sid}/tokens", headers=tenant.headers, json={"role": "viewer"}
        )
        assert viewer.status_code == 201, viewer.text
        assert viewer.json()["join_url"].endswith(f"/join/{sid}#token={viewer.json()['token']}")
    finally:
        await api.post(f"/v1/sessions/{sid}/end", headers=tenant.headers)


async def test_the_join_page_and_bundle_are_served_with_a_strict_policy(
    api: httpx.AsyncClient, control_plane: EphemeralStack
) -> None:
    page = await api.get("/join/9b2f3c1e-0000-4000-8000-000000000000")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert '<script type="module" src="/web/join.js">' in page.text
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp
    livekit = urlsplit(control_plane.livekit.url).netloc
    assert f"ws://{livekit}" in csp
    assert page.headers["referrer-policy"] == "no-referrer"

    bundle = await api.get("/web/join.js")
    assert bundle.status_code == 200
    assert bundle.headers["content-type"].startswith("text/javascript")
    assert "lk.transcription" in bundle.text  # the captions' topic made it into the bundle
    assert (await api.get("/web/styles.css")).headers["content-type"].startswith("text/css")

    # A mangled link still gets the page, which explains it (tests/browser).
    assert (await api.get("/join/not-a-uuid")).text == page.text
    for bad in ("/web/..%2Fpyproject.toml", "/web/.podium-built", "/web/join.html", "/web/x.py"):
        assert (await api.get(bad)).status_code in (404, 422), bad


async def test_a_participant_reads_its_session_until_it_ends(
    api: httpx.AsyncClient, tenant: TenantKey, control_plane: EphemeralStack
) -> None:
    created = (
        await api.post(
            "/v1/sessions", headers=tenant.headers, json={"participant": {"identity": "ada"}}
        )
    ).json()
    sid = created["session_id"]
    me = {"Authorization": f"Bearer {created['token']}"}
    seen = await api.get("/v1/participant/session", headers=me)
    assert seen.status_code == 200, seen.text
    assert seen.json() == {
        "session_id": sid,
        "status": "created",
        "identity": "ada",
        "role": "participant",
        "livekit_url": control_plane.livekit.url,
        "has_deck": False,
        "end_reason": None,
    }
    viewer = (
        await api.post(
            f"/v1/sessions/{sid}/tokens", headers=tenant.headers, json={"role": "viewer"}
        )
    ).json()
    as_viewer = await api.get(
        "/v1/participant/session", headers={"Authorization": f"Bearer {viewer['token']}"}
    )
    assert as_viewer.json()["role"] == "viewer"

    await api.post(f"/v1/sessions/{sid}/end", headers=tenant.headers)
    ended = await api.get("/v1/participant/session", headers=me)
    assert (ended.json()["status"], ended.json()["end_reason"]) == ("ended", "ended_by_api")


async def test_expired_forged_and_foreign_tokens_are_refused(
    api: httpx.AsyncClient, tenant: TenantKey
) -> None:
    created = (await api.post("/v1/sessions", headers=tenant.headers, json={})).json()
    try:
        grants = lk.VideoGrants(room_join=True, room=created["room"])
        attributes = {"podium.session_id": created["session_id"], "podium.role": "participant"}

        def token(secret: str, expires_in_s: int) -> str:
            signed = (
                lk.AccessToken(DEV_LIVEKIT_KEY, secret)
                .with_identity("x")
                .with_grants(grants)
                .with_attributes(attributes)
                .to_jwt()
            )
            payload = jwt.decode(signed, options={"verify_signature": False})
            payload["exp"] = int(time.time()) + expires_in_s
            return jwt.encode(payload, secret, algorithm="HS256")

        for bad in (
            token(DEV_LIVEKIT_SECRET, -600),  # expired (past the leeway), signed with the real key
            token("another-secret-of-enough-length-123456", 600),  # forged
            "not-a-token",
        ):
            resp = await api.get(
                "/v1/participant/session", headers={"Authorization": f"Bearer {bad}"}
            )
            assert (resp.status_code, resp.json()["error"]) == (401, "unauthorized")
        # A tenant API key is not a participant token either.
        assert (await api.get("/v1/participant/session", headers=tenant.headers)).status_code == 401
    finally:
        await api.post(f"/v1/sessions/{created['session_id']}/end", headers=tenant.headers)
