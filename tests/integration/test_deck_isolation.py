"""A deck cannot make the control plane reach the network: linked pictures are removed before
LibreOffice draws the slides, and parsers run without network and without the control plane's
environment. A canary (a TCP server on a free loopback port) counts whoever reaches it."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from control_plane.decks.sandbox import Progress, isolate, run_bounded
from shared.devstack.services import free_port
from shared.devstack.stack import TenantKey
from tests.factories import make_pptx_with_linked_image
from tests.integration.test_decks_api import upload, wait_ready


class Canary:
    def __init__(self) -> None:
        self.port = free_port()
        self.connections = 0

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        writer.close()


@pytest.fixture
async def canary() -> AsyncIterator[Canary]:
    found = Canary()
    server = await asyncio.start_server(found._answer, "127.0.0.1", found.port)
    async with server:
        yield found


async def test_a_linked_picture_in_a_deck_is_never_fetched(
    api: httpx.AsyncClient, tenant: TenantKey, canary: Canary
) -> None:
    data = make_pptx_with_linked_image(f"http://127.0.0.1:{canary.port}/x.png")
    resp = await upload(api, tenant, data)
    assert resp.status_code == 202, resp.text
    deck = await wait_ready(api, tenant, resp.json()["deck_id"])
    await asyncio.sleep(0.5)  # a fetch LibreOffice started would have connected by now
    assert canary.connections == 0
    # The deck is whole: its slide drawn (without the linked picture), its text read.
    assert (deck["status"], deck["previews_available"]) == ("ready", True)
    slides = (await api.get(f"/v1/decks/{deck['deck_id']}/slides", headers=tenant.headers)).json()
    [slide] = slides["slides"]
    assert (slide["title"], slide["text"], bool(slide["image_url"])) == (
        "Linked picture",
        "Source",
        True,
    )


def _probe(port: int, *, progress: Progress) -> dict[str, Any]:
    """What a parser child sees: its environment (as Python has it and as /proc does) and
    whether it can open a connection."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        reached = True
    except OSError:
        reached = False
    with open("/proc/self/environ", "rb") as f:
        raw = f.read()
    return {"env": dict(os.environ), "raw": raw, "reached": reached}


async def test_a_parser_child_sees_no_secrets_and_reaches_no_network(
    monkeypatch: pytest.MonkeyPatch, canary: Canary
) -> None:
    monkeypatch.setenv("PODIUM_INTERNAL_SECRET", "probe-secret-value")
    monkeypatch.setenv("PODIUM_DATABASE_URL", "postgresql://podium:hunter2@db/podium")
    seen = await run_bounded(_probe, canary.port)

    assert set(seen["env"]) <= {"PATH", "LANG", "HOME", "TMPDIR"}, sorted(seen["env"])
    assert seen["env"]["HOME"] != os.environ.get("HOME")
    names = {entry.split(b"=")[0] for entry in seen["raw"].split(b"\0") if entry}
    assert names <= {b"PATH", b"LANG", b"HOME", b"TMPDIR"}  # the process's own, as exec'd
    assert b"hunter2" not in seen["raw"] and b"probe-secret-value" not in seen["raw"]
    if not isolate():
        pytest.skip("this system allows no network namespace (docs/operations.md)")
    assert (seen["reached"], canary.connections) == (False, 0)
