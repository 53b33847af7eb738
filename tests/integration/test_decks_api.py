"""Decks through the public API: upload, ingestion, slides, images, search, isolation, limits."""

from __future__ import annotations

import asyncio
import os
import time

import httpx
import pytest

from shared.devstack.stack import EphemeralStack, TenantKey
from tests.factories import make_pdf, make_product_deck


async def upload(
    api: httpx.AsyncClient, tenant: TenantKey, data: bytes, name: str = "deck.pptx"
) -> httpx.Response:
    return await api.post("/v1/decks", headers=tenant.headers, files={"file": (name, data)})


async def wait_ready(api: httpx.AsyncClient, tenant: TenantKey, deck_id: str) -> dict[str, object]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        deck = (await api.get(f"/v1/decks/{deck_id}", headers=tenant.headers)).json()
        if deck["status"] in ("ready", "failed"):
            return dict(deck)
        await asyncio.sleep(0.2)
    raise AssertionError(f"deck {deck_id} not ingested in 60 s")


@pytest.fixture(scope="module")
def product_deck() -> bytes:
    return make_product_deck()


@pytest.fixture(scope="module")
async def ready_product_deck(
    control_plane: EphemeralStack, product_deck: bytes
) -> tuple[TenantKey, str]:
    tenant = control_plane.create_tenant("search")
    async with httpx.AsyncClient(base_url=control_plane.api_url, timeout=10) as api:
        deck_id = (await upload(api, tenant, product_deck)).json()["deck_id"]
        assert (await wait_ready(api, tenant, deck_id))["status"] == "ready"
    return tenant, deck_id


async def test_pptx_is_ingested_with_notes_previews_and_search(
    api: httpx.AsyncClient, tenant: TenantKey, product_deck: bytes
) -> None:
    resp = await upload(api, tenant, product_deck, "acme.pptx")
    assert resp.status_code == 202, resp.text
    accepted = resp.json()
    assert accepted["status"] in ("pending", "processing")
    assert accepted["progress"]["slides_total"] == 8
    assert accepted["kind"] == "pptx"

    deck = await wait_ready(api, tenant, accepted["deck_id"])
    assert deck["status"] == "ready", deck
    assert deck["progress"] == {"slides_done": 8, "slides_total": 8}
    assert deck["title"] == "Acme Analytics"

    slides = (await api.get(f"/v1/decks/{deck['deck_id']}/slides", headers=tenant.headers)).json()
    by_index = {s["index"]: s for s in slides["slides"]}
    assert sorted(by_index) == list(range(1, 9))
    assert by_index[4]["title"] == "Pricing"
    assert "49 dollars per month" in by_index[4]["notes"]
    assert by_index[8]["notes"] is None

    if deck["previews_available"]:  # LibreOffice present (scripts/bootstrap installs it)
        image = await api.get(by_index[1]["image_url"])
        assert image.status_code == 200
        assert image.headers["content-type"] == "image/jpeg"
        thumb = await api.get(by_index[1]["thumbnail_url"])
        assert len(thumb.content) < len(image.content)
        tampered = by_index[1]["image_url"].replace("sig=", "sig=0")
        assert (await api.get(tampered)).status_code == 403

    results = (
        await api.get(
            f"/v1/decks/{deck['deck_id']}/search",
            params={"q": "How much does it cost per month?"},
            headers=tenant.headers,
        )
    ).json()
    assert results["hits"][0]["slide_index"] == 4
    assert results["hits"][0]["title"] == "Pricing"
    assert results["hits"][0]["snippet"]


@pytest.mark.parametrize(
    ("question", "slide"),
    [
        # answered only by speaker notes
        ("How long does it take to get set up?", 3),
        ("Do you keep copies of our raw data?", 5),
        ("What did the founders do before this?", 6),
        ("When can we expect forecasting?", 7),
        # paraphrased, no shared keywords with the slide title
        ("Is my data safe with you?", 5),
        ("Who's behind the company?", 6),
        ("What's coming next year?", 7),
    ],
)
async def test_search_finds_the_slide_for_paraphrased_questions(
    api: httpx.AsyncClient, tenant: TenantKey, product_deck: bytes, question: str, slide: int
) -> None:
    deck = await wait_ready(
        api, tenant, (await upload(api, tenant, product_deck)).json()["deck_id"]
    )
    hits = (
        await api.get(
            f"/v1/decks/{deck['deck_id']}/search", params={"q": question}, headers=tenant.headers
        )
    ).json()["hits"]
    assert hits[0]["slide_index"] == slide, [(h["slide_index"], h["snippet"]) for h in hits[:3]]


async def test_search_rejects_bad_queries(api: httpx.AsyncClient, tenant: TenantKey) -> None:
    deck = await wait_ready(
        api, tenant, (await upload(api, tenant, make_pdf([["One"]]), "q.pdf")).json()["deck_id"]
    )
    for params in ({"q": ""}, {"q": "x" * 501}, {"q": "ok", "k": 0}, {}):
        resp = await api.get(
            f"/v1/decks/{deck['deck_id']}/search", params=params, headers=tenant.headers
        )
        assert resp.status_code == 422, params
        assert resp.json()["error"] == "validation_error"


async def test_pdf_pages_become_slides_with_images(
    api: httpx.AsyncClient, tenant: TenantKey
) -> None:
    pdf = make_pdf(
        [["Intro", "Hello"], ["Pricing", "Plans from 49 dollars"], ["Team", "Ten people"]]
    )
    deck = await wait_ready(
        api, tenant, (await upload(api, tenant, pdf, "x.pdf")).json()["deck_id"]
    )
    assert deck["status"] == "ready"
    assert deck["previews_available"] is True
    slides = (await api.get(f"/v1/decks/{deck['deck_id']}/slides", headers=tenant.headers)).json()
    assert [s["title"] for s in slides["slides"]] == ["Intro", "Pricing", "Team"]
    image = await api.get(slides["slides"][1]["image_url"])
    assert image.status_code == 200


@pytest.mark.parametrize(
    ("data", "name", "status", "code"),
    [
        (b"", "empty.pdf", 422, "empty_file"),
        (b"just some notes\n" * 10, "notes.pdf", 422, "unsupported_type"),
        (make_pdf([["x"]], encrypt=True), "locked.pdf", 422, "pdf_encrypted"),
        (make_pdf([["x"]])[:-40], "cut.pdf", 422, "pdf_corrupt"),
        (os.urandom(2 * 2**20 + 4096), "huge.pdf", 413, "too_large"),
    ],
    ids=["empty", "text-renamed", "encrypted", "truncated", "over-limit"],
)
async def test_bad_uploads_are_refused_with_a_reason(
    api: httpx.AsyncClient, tenant: TenantKey, data: bytes, name: str, status: int, code: str
) -> None:
    before = (await api.get("/v1/decks", headers=tenant.headers)).json()["items"]
    resp = await upload(api, tenant, data, name)
    assert resp.status_code == status, resp.text
    assert resp.json()["error"] == code
    assert resp.json()["message"].endswith(".")
    after = (await api.get("/v1/decks", headers=tenant.headers)).json()["items"]
    assert after == before  # nothing stored


async def test_upload_without_a_file_is_400(api: httpx.AsyncClient, tenant: TenantKey) -> None:
    no_file = await api.post("/v1/decks", headers=tenant.headers, data={"title": "x"})
    assert no_file.status_code == 400
    assert "file" in no_file.json()["message"]
    as_json = await api.post("/v1/decks", headers=tenant.headers, json={"file": "x"})
    assert as_json.status_code == 400
    assert "multipart/form-data" in as_json.json()["message"]


async def test_decks_are_invisible_to_other_tenants_and_deletable(
    api: httpx.AsyncClient, tenant: TenantKey, control_plane: EphemeralStack
) -> None:
    pdf = make_pdf([["Only page", "Secret roadmap"]])
    deck = await wait_ready(
        api, tenant, (await upload(api, tenant, pdf, "a.pdf")).json()["deck_id"]
    )
    slides = (await api.get(f"/v1/decks/{deck['deck_id']}/slides", headers=tenant.headers)).json()
    image_url = slides["slides"][0]["image_url"]

    other = control_plane.create_tenant("globex")
    for path in ("", "/slides", "/search?q=roadmap"):
        resp = await api.get(f"/v1/decks/{deck['deck_id']}{path}", headers=other.headers)
        assert resp.status_code == 404, path
    assert (
        await api.delete(f"/v1/decks/{deck['deck_id']}", headers=other.headers)
    ).status_code == 404
    assert (await api.get("/v1/decks", headers=other.headers)).json()["items"] == []

    assert (
        await api.delete(f"/v1/decks/{deck['deck_id']}", headers=tenant.headers)
    ).status_code == 204
    assert (
        await api.get(f"/v1/decks/{deck['deck_id']}", headers=tenant.headers)
    ).status_code == 404
    assert (await api.get(image_url)).status_code == 404  # assets removed too


async def test_list_is_paginated_newest_first(api: httpx.AsyncClient, tenant: TenantKey) -> None:
    ids = []
    for i in range(3):
        resp = await upload(api, tenant, make_pdf([[f"Deck {i}"]]), f"{i}.pdf")
        ids.append(resp.json()["deck_id"])
    first = (await api.get("/v1/decks?limit=2", headers=tenant.headers)).json()
    assert [d["deck_id"] for d in first["items"]] == ids[::-1][:2]
    second = (
        await api.get(f"/v1/decks?limit=2&cursor={first['next_cursor']}", headers=tenant.headers)
    ).json()
    assert [d["deck_id"] for d in second["items"]] == [ids[0]]
    assert second["next_cursor"] is None
    bad = await api.get("/v1/decks?cursor=garbage", headers=tenant.headers)
    assert bad.status_code == 400


async def test_sessions_accept_ready_decks_only(api: httpx.AsyncClient, tenant: TenantKey) -> None:
    deck = await wait_ready(
        api, tenant, (await upload(api, tenant, make_pdf([["One"]]), "1.pdf")).json()["deck_id"]
    )
    ok = await api.post("/v1/sessions", headers=tenant.headers, json={"deck_id": deck["deck_id"]})
    assert ok.status_code == 201, ok.text
    session = (
        await api.get(f"/v1/sessions/{ok.json()['session_id']}", headers=tenant.headers)
    ).json()
    assert session["deck_id"] == deck["deck_id"]

    # Upload and immediately try to use it: still ingesting.
    pending = (await upload(api, tenant, make_pdf([["Two"]] * 30), "2.pdf")).json()
    early = await api.post(
        "/v1/sessions", headers=tenant.headers, json={"deck_id": pending["deck_id"]}
    )
    assert early.status_code in (201, 409)
    if early.status_code == 409:
        assert early.json()["error"] == "deck_not_ready"


async def test_huge_declared_body_is_refused_before_it_is_read(
    control_plane: EphemeralStack, tenant: TenantKey
) -> None:
    host, port = control_plane.api_url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        (
            "POST /v1/decks HTTP/1.1\r\n"
            f"Host: {host}\r\nAuthorization: Bearer {tenant.api_key}\r\n"
            "Content-Type: multipart/form-data; boundary=x\r\n"
            f"Content-Length: {10 * 2**30}\r\n\r\n"
        ).encode()
    )
    await writer.drain()
    status_line = await asyncio.wait_for(reader.readline(), 5)
    writer.close()
    assert status_line.startswith(b"HTTP/1.1 413")


async def test_hostile_parameters_get_4xx_not_500(
    api: httpx.AsyncClient, tenant: TenantKey
) -> None:
    # A raw NUL in the part's filename (httpx would percent-encode it): dropped, not a 500.
    body = (
        b'--x\r\nContent-Disposition: form-data; name="file"; filename="a\x00b.pdf"\r\n'
        b"Content-Type: application/pdf\r\n\r\n" + make_pdf([["Nul"]]) + b"\r\n--x--\r\n"
    )
    headers = {**tenant.headers, "Content-Type": "multipart/form-data; boundary=x"}
    accepted = await api.post("/v1/decks", headers=headers, content=body)
    assert accepted.status_code == 202, accepted.text
    deck = await wait_ready(api, tenant, accepted.json()["deck_id"])
    assert deck["filename"] == "ab.pdf"
    nul = await api.get(
        f"/v1/decks/{deck['deck_id']}/search", params={"q": "a\x00b"}, headers=tenant.headers
    )
    assert nul.status_code == 422
    # base64 of "0001-01-01T00:00:00+14:00|<uuid>": a timestamp that cannot be stored
    cursor = "MDAwMS0wMS0wMVQwMDowMDowMCsxNDowMHwwMDAwMDAwMC0wMDAwLTAwMDAtMDAwMC0wMDAwMDAwMDAwMDA="
    assert (await api.get(f"/v1/decks?cursor={cursor}", headers=tenant.headers)).status_code == 400
    slides = (await api.get(f"/v1/decks/{deck['deck_id']}/slides", headers=tenant.headers)).json()
    url = slides["slides"][0]["image_url"].split("sig=")[0] + "sig=%C3%A9"
    assert (await api.get(url)).status_code == 422


async def test_a_burst_of_uploads_queues_for_parsing_and_all_land(
    api: httpx.AsyncClient, tenant: TenantKey, control_plane: EphemeralStack
) -> None:
    # More uploads than parse slots (2): the rest wait their turn instead of failing.
    control_plane.set_limits(tenant, uploads_in_flight=6)
    decks = [make_pdf([[f"Burst {i}", "text"]]) for i in range(6)]
    responses = await asyncio.gather(
        *(upload(api, tenant, d, f"{i}.pdf") for i, d in enumerate(decks))
    )
    assert [r.status_code for r in responses] == [202] * 6
    for r in responses:
        assert (await wait_ready(api, tenant, r.json()["deck_id"]))["status"] == "ready"
