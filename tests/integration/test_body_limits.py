"""Request bodies are capped per route before anything reads them, with or without credentials,
declared or chunked; deck uploads wait for a parse slot before their bodies are read."""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from shared.devstack.services import ManagedProcess, free_port
from shared.devstack.stack import ROOT, EphemeralStack, TenantKey, http_ok
from tests.factories import make_pdf

JSON_CAP = 64 * 2**10  # PODIUM_MAX_JSON_BODY_KB's default
JSON_REFUSAL = "The request body is over the 64 KB limit for this route."


def session_body(size: int) -> bytes:
    """A POST /v1/sessions body of exactly ``size`` bytes."""
    head, tail = b'{"metadata": {"note": "', b'"}}'
    return head + b"x" * (size - len(head) - len(tail)) + tail


async def chunks(data: bytes, size: int = 16 * 2**10) -> AsyncIterator[bytes]:
    """Sent by httpx as ``Transfer-Encoding: chunked``: no Content-Length to refuse on."""
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def zeros(total: int, size: int = 2**20) -> AsyncIterator[bytes]:
    chunk = b"0" * size
    for _ in range(total // size):
        yield chunk


def assert_refused(resp: httpx.Response, message: str = JSON_REFUSAL) -> None:
    assert resp.status_code == 413, resp.text
    assert resp.json() == {"error": "too_large", "message": message}


async def head_only(stack: EphemeralStack, head: str) -> tuple[int, bytes]:
    """Send a request's head and no body: the status line and body of the answer."""
    host, port = stack.api_url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(f"{head}Host: {host}\r\n\r\n".encode())
        await writer.drain()
        status = await asyncio.wait_for(reader.readline(), 5)
        length = 0
        while (line := await asyncio.wait_for(reader.readline(), 5)) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            if name.lower() == "content-length":
                length = int(value)
        body = await asyncio.wait_for(reader.readexactly(length), 5)
    finally:
        writer.close()
    return int(status.split()[1]), body


async def test_a_json_body_over_the_route_cap_is_refused_naming_the_limit(
    api: httpx.AsyncClient, tenant: TenantKey
) -> None:
    headers = {**tenant.headers, "Content-Type": "application/json"}
    at_cap = await api.post("/v1/sessions", headers=headers, content=session_body(JSON_CAP))
    assert at_cap.status_code == 422, at_cap.text  # reached the route (metadata over 16 KB)
    over = await api.post("/v1/sessions", headers=headers, content=session_body(JSON_CAP + 1))
    assert_refused(over)


async def test_without_credentials_it_is_413_not_401(api: httpx.AsyncClient) -> None:
    big = await api.post(
        "/v1/sessions",
        headers={"Content-Type": "application/json"},
        content=session_body(JSON_CAP + 1),
    )
    assert_refused(big)
    # The cap is what refused it: the same request under the cap meets the credential check.
    small = await api.post("/v1/sessions", json={"metadata": {}})
    assert small.status_code == 401


async def test_a_chunked_body_is_counted_as_it_arrives(
    api: httpx.AsyncClient, tenant: TenantKey
) -> None:
    for headers in (tenant.headers, {}):
        resp = await api.post(
            "/v1/sessions",
            headers={**headers, "Content-Type": "application/json"},
            content=chunks(session_body(4 * JSON_CAP)),
        )
        assert "content-length" not in resp.request.headers
        assert_refused(resp)
    # A deck too (PODIUM_MAX_UPLOAD_MB is 2 in the test stack), with the upload's wording.
    upload = await api.post(
        "/v1/decks",
        headers={**tenant.headers, "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"},
        content=chunks(multipart(b"%PDF" * 2**20)),
    )
    assert_refused(upload, "The file is over the 2 MB limit.")
    # Under the cap, chunked or not, the session is created (12 KB of metadata; 16 KB fit).
    metadata = {"notes": ["n" * 1000] * 12}
    declared = await api.post("/v1/sessions", headers=tenant.headers, json={"metadata": metadata})
    assert declared.status_code == 201, declared.text
    chunked = await api.post(
        "/v1/sessions",
        headers={**tenant.headers, "Content-Type": "application/json"},
        content=chunks(json.dumps({"metadata": metadata}).encode(), size=1000),
    )
    assert chunked.status_code == 201, chunked.text
    session = await api.get(f"/v1/sessions/{chunked.json()['session_id']}", headers=tenant.headers)
    assert session.json()["metadata"] == metadata


async def test_routes_that_take_more_keep_their_caps(
    api: httpx.AsyncClient, tenant: TenantKey, control_plane: EphemeralStack
) -> None:
    # 200 long evaluation questions (up to 500 characters each) are past the JSON cap: they
    # reach the route, which finds no such deck.
    long = "and what does the enterprise plan cost per seat when it is billed yearly? " * 5
    questions = [{"question": f"Question {i} {long}", "expect": "decline"} for i in range(200)]
    body = json.dumps({"questions": questions}).encode()
    assert len(body) > JSON_CAP
    evaluation = await api.post(
        f"/v1/decks/{uuid.uuid4()}/evaluations",
        headers={**tenant.headers, "Content-Type": "application/json"},
        content=body,
    )
    assert evaluation.status_code == 404, evaluation.text

    # A worker's batch of turns may be megabytes: it reaches the credential check.
    turns = [{"turn_id": f"t{i}", "agent_text": "a" * 19_000} for i in range(20)]
    batch = await api.post(f"/internal/v1/sessions/{uuid.uuid4()}/turns", json={"turns": turns})
    assert batch.status_code == 401, batch.text

    # A recording segment may be bigger than the JSON cap; one over 4 MB is refused.
    segment = f"PUT /internal/v1/sessions/{uuid.uuid4()}/recording/segments/0 HTTP/1.1\r\n"
    status, _ = await head_only(control_plane, f"{segment}Content-Length: {3 * 2**20}\r\n")
    assert status == 401
    status, answer = await head_only(control_plane, f"{segment}Content-Length: {5 * 2**20}\r\n")
    assert status == 413
    assert json.loads(answer) == {
        "error": "too_large",
        "message": "A recording segment is over the 4 MB limit.",
    }

    # The deck upload keeps its own wording (PODIUM_MAX_UPLOAD_MB is 2 in the test stack).
    status, answer = await head_only(
        control_plane,
        "POST /v1/decks HTTP/1.1\r\nContent-Type: multipart/form-data; boundary=x\r\n"
        f"Content-Length: {4 * 2**20}\r\n",
    )
    assert status == 413
    assert json.loads(answer)["message"] == "The file is over the 2 MB limit."


def _reset_peak(pid: int) -> None:
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # resets VmHWM to the current RSS


def _kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{pid}/status")


@pytest.fixture
def replica(control_plane: EphemeralStack) -> Iterator[tuple[str, int]]:
    """A second control plane on the same stack with production's 50 MB upload cap (the test
    stack's is 2 MB): its URL and pid."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**control_plane.api_env, "PODIUM_PORT": str(port), "PODIUM_PUBLIC_URL": url}
    env.pop("PODIUM_MAX_UPLOAD_MB")
    proc = ManagedProcess(
        "control-plane-replica",
        [sys.executable, "-m", "control_plane", "serve"],
        control_plane.logs / "control-plane-replica.log",
        env=env,
        cwd=ROOT,
    )
    proc.start()
    try:
        proc.wait_until(lambda: http_ok(f"{url}/readyz"), 60)
        assert proc.proc is not None
        yield url, proc.proc.pid
    finally:
        proc.stop()


async def test_huge_unauthenticated_bodies_leave_memory_bounded(
    replica: tuple[str, int],
) -> None:
    url, pid = replica
    huge = 53 * 2**20
    declared = b"0" * huge
    headers = {"Content-Type": "application/json"}
    async with httpx.AsyncClient(base_url=url, timeout=30) as api:
        # Warm the paths with a small body (a big one would leave freed memory in the heap for
        # the next ones to reuse unseen), then measure the peak from here.
        warm = zeros(4 * JSON_CAP, JSON_CAP)
        assert_refused(await api.post("/v1/sessions", headers=headers, content=warm))
        before = _kb(pid, "VmRSS")
        _reset_peak(pid)
        # Several at once: one buffered body could hide in memory the process has free.
        for _ in range(2):
            answers = await asyncio.gather(
                *(api.post("/v1/sessions", headers=headers, content=declared) for _ in range(3)),
                *(api.post("/v1/sessions", headers=headers, content=zeros(huge)) for _ in range(3)),
            )
            for resp in answers:
                assert_refused(resp)
    peak = _kb(pid, "VmHWM")
    print(f"control plane RSS {before / 1024:.1f} MB, peak {peak / 1024:.1f} MB", end=" ")
    assert (peak - before) / 1024 < 20


# --- uploads wait for a parse slot before their bodies are read -----------------------------

BOUNDARY = "podium-slot-test"


def multipart(pdf: bytes) -> bytes:
    return (
        (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="s.pdf"\r\n'
            "Content-Type: application/pdf\r\n\r\n"
        ).encode()
        + pdf
        + f"\r\n--{BOUNDARY}--\r\n".encode()
    )


async def start_upload(
    stack: EphemeralStack, tenant: TenantKey, body: bytes
) -> asyncio.StreamWriter:
    """An upload whose body stops half-way: it holds whatever the server gave it meanwhile."""
    host, port = stack.api_url.removeprefix("http://").split(":")
    _, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        (
            f"POST /v1/decks HTTP/1.1\r\nHost: {host}\r\n"
            f"Authorization: Bearer {tenant.api_key}\r\n"
            f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        + body[: len(body) // 2]
    )
    await writer.drain()
    return writer


async def test_uploads_take_a_parse_slot_before_their_bodies_arrive(
    api: httpx.AsyncClient, tenant: TenantKey, control_plane: EphemeralStack
) -> None:
    slots = int(control_plane.api_env.get("PODIUM_MAX_PARALLEL_PARSES", "2"))
    body = multipart(make_pdf([["Slot", "text"]]))
    others = [control_plane.create_tenant(f"slow{i}") for i in range(slots)]
    arriving = [await start_upload(control_plane, t, body) for t in others]
    try:
        await asyncio.sleep(1)  # authenticated, and each holds a slot while its body arrives
        queued = asyncio.create_task(
            api.post(
                "/v1/decks",
                headers={
                    **tenant.headers,
                    "Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
                },
                content=body,
                timeout=30,
            )
        )
        await asyncio.sleep(2)
        assert not queued.done(), "a complete upload was answered while every slot was taken"
        arriving.pop().close()  # a sender that gives up frees its slot
        resp = await asyncio.wait_for(queued, 15)
        assert resp.status_code == 202, resp.text
    finally:
        for writer in arriving:
            writer.close()
