"""Webhook delivery against hostile endpoints: the real sender on a real Postgres outbox (a fresh
database per test), real HTTP servers on loopback, and a fake DNS (``socket.getaddrinfo``, the
edge of the world) for names that must resolve to chosen addresses.

A slow endpoint is cut at the deadline and holds back no other endpoint; an endless answer is
not read; a name is resolved once, every answer checked, and the connection made to what was
checked, with the endpoint's name kept for ``Host`` and TLS; errors carry no address.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
import ssl
import subprocess
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from uuid import UUID, uuid4

import asyncpg
import httpx
import pytest
from aiohttp import web

from control_plane import db
from control_plane.migrate import apply_migrations
from control_plane.tenants.repository import insert_tenant
from control_plane.webhooks import repository
from control_plane.webhooks.addresses import IPAddress
from control_plane.webhooks.delivery import Outcome, post
from control_plane.webhooks.sender import WebhookSender
from shared.devstack.services import free_port
from shared.devstack.stack import EphemeralStack
from shared.settings import ControlPlaneSettings
from tests.webhook_receiver import Receiver, serve_receiver

ADDRESS = re.compile(r"\d+\.\d+\.\d+\.\d+|[0-9a-f]*:[0-9a-f]*:[0-9a-f:]*", re.IGNORECASE)


def _settings(**overrides: Any) -> ControlPlaneSettings:
    # Retries far away: each test looks at first attempts only. Development secrets (as the
    # test stack has them); private URLs allowed or not as each test says.
    values: dict[str, Any] = {
        "environment": "dev",
        "webhook_poll_seconds": 0.05,
        "webhook_retry_base_seconds": 600,
        "webhook_allow_private_urls": True,
    }
    return ControlPlaneSettings(**(values | overrides))


@dataclass
class Outbox:
    pool: asyncpg.Pool

    async def endpoint(self, url: str) -> tuple[UUID, UUID]:
        """A new tenant with one endpoint on ``url``: (tenant id, endpoint id)."""
        async with self.pool.acquire() as conn:
            tenant_id = await insert_tenant(conn, f"t-{uuid4().hex[:6]}")
            row = await repository.create_endpoint(
                conn, tenant_id, url, "whsec_test", ["session.ended"]
            )
        return tenant_id, row["id"]

    async def events(self, tenant_id: UUID, count: int = 1) -> None:
        for _ in range(count):
            await self.pool.execute(
                "SELECT podium_webhook_event($1, 'session.ended', $2, $3)",
                tenant_id,
                f"session.ended:{uuid4()}",
                {"session_id": str(uuid4())},
            )

    async def deliveries(self, endpoint_id: UUID) -> list[asyncpg.Record]:
        rows: list[asyncpg.Record] = await self.pool.fetch(
            "SELECT status, attempts, last_status, last_error FROM webhook_deliveries "
            "WHERE endpoint_id = $1 ORDER BY created_at",
            endpoint_id,
        )
        return rows

    async def until(
        self, endpoint_id: UUID, done: Callable[[list[asyncpg.Record]], bool], seconds: float
    ) -> list[asyncpg.Record]:
        give_up = time.monotonic() + seconds
        while not done(rows := await self.deliveries(endpoint_id)):
            if time.monotonic() > give_up:
                raise AssertionError(f"deliveries still {[dict(r) for r in rows]}")
            await asyncio.sleep(0.05)
        return rows


@pytest.fixture
async def outbox(stack: EphemeralStack) -> AsyncIterator[Outbox]:
    url = stack.postgres.create_database(f"hooks_{uuid4().hex[:12]}")
    conn = await db.connect(url)
    try:
        await apply_migrations(conn)
    finally:
        await conn.close()
    pool = await db.create_pool(url, min_size=1, max_size=4)
    try:
        yield Outbox(pool)
    finally:
        await pool.close()


@dataclass
class FakeDNS:
    """Names answered from ``answers`` (one list of addresses per lookup, the last repeating);
    any other name goes to the real resolver."""

    answers: dict[str, list[list[str]]] = field(default_factory=dict)
    lookups: Counter[str] = field(default_factory=Counter)


@pytest.fixture
def dns(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeDNS]:
    fake = FakeDNS()
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> list[Any]:
        name = host.decode() if isinstance(host, bytes) else host
        if name not in fake.answers:
            return real(host, port, *args, **kwargs)
        fake.lookups[name] += 1
        answers = fake.answers[name]
        found = answers[min(fake.lookups[name], len(answers)) - 1]
        return [
            (socket.AF_INET6, socket.SOCK_STREAM, 6, "", (a, int(port), 0, 0))
            if ":" in a
            else (socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, int(port)))
            for a in found
        ]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    yield fake


class RawServer:
    """A TCP server on loopback whose handler speaks whatever HTTP a test wants."""

    def __init__(
        self, handle: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
    ):
        self._handle = handle
        self._writers: set[asyncio.StreamWriter] = set()
        self._idle = asyncio.Event()
        self.open = 0
        self.most_at_once = 0
        self.url = ""

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        self._idle.clear()
        self.open += 1
        self.most_at_once = max(self.most_at_once, self.open)
        try:
            await reader.readuntil(b"\r\n\r\n")
            await self._handle(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self.open -= 1
            writer.close()
            self._writers.discard(writer)
            if not self._writers:
                self._idle.set()

    async def __aenter__(self) -> RawServer:
        port = free_port()
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", port)
        self.url = f"http://127.0.0.1:{port}/hook"
        return self

    async def __aexit__(self, *_: object) -> None:
        self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()  # the handler's next write fails and it returns
        if self._writers:
            await asyncio.wait_for(self._idle.wait(), 5)
        await self._server.wait_closed()


async def _trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A status line, then a header one byte every 0.2 s: the answer never completes. Returns
    as soon as the client hangs up, so ``most_at_once`` counts live connections only."""
    writer.write(b"HTTP/1.1 200 OK\r\nX-Trickle: ")
    for _ in range(600):
        await writer.drain()
        try:
            if await asyncio.wait_for(reader.read(65536), 0.2) == b"":
                return
        except TimeoutError:
            pass
        writer.write(b"a")


ENDLESS_CAP = 256 * 1024 * 1024


class Endless:
    """Answers 200 and a body without end (256 MB at most, so a sender that reads it all
    cannot take the machine down), counting what the client let it send."""

    def __init__(self) -> None:
        self.sent = 0
        self.finished = asyncio.Event()

    async def __call__(self, _: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n")
        chunk = b"x" * 65536
        try:
            while self.sent < ENDLESS_CAP:
                writer.write(chunk)
                await writer.drain()
                self.sent += len(chunk)
        finally:
            self.finished.set()


def _attempted(rows: list[asyncpg.Record]) -> bool:
    return all(r["status"] != "pending" or r["last_error"] for r in rows)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with serve_receiver() as found:
        yield found


async def test_a_slow_endpoint_is_cut_at_the_deadline_and_holds_back_no_other(
    outbox: Outbox, receiver: Receiver
) -> None:
    deadline = 3.0
    async with RawServer(_trickle) as slow:
        slow_tenant, slow_endpoint = await outbox.endpoint(slow.url)
        other_tenant, other_endpoint = await outbox.endpoint(receiver.url)
        # A backlog for the slow endpoint bigger than a sender's whole batch, then one event
        # for another tenant, due after all of them.
        await outbox.events(slow_tenant, 25)
        await outbox.events(other_tenant)

        started = time.monotonic()
        async with WebhookSender(outbox.pool, _settings(webhook_timeout_seconds=deadline)):
            await receiver.until(lambda: len(receiver.got) == 1, 10)
            other_after = time.monotonic() - started
            rows = await outbox.until(
                slow_endpoint, lambda rows: any(r["last_error"] for r in rows), deadline + 5
            )
            cut_after = time.monotonic() - started
            [delivered] = await outbox.until(
                other_endpoint, lambda rows: rows[0]["status"] == "delivered", 5
            )

    print(
        f"\nother endpoint served after {other_after:.2f} s; slow one cut after {cut_after:.2f} s"
    )
    assert other_after < 2.0  # not after the slow endpoint's attempts
    assert deadline - 0.2 <= cut_after < deadline + 2.0
    failed = [r for r in rows if r["last_error"]]
    assert {(r["last_error"], r["last_status"]) for r in failed} == {
        (f"response timeout after {deadline:g} s", None)
    }
    # The sender's per-endpoint cap (PER_ENDPOINT): the backlog went two at a time.
    assert 1 <= slow.most_at_once <= 2
    assert delivered["attempts"] == 1


async def test_an_endless_answer_is_not_read(outbox: Outbox) -> None:
    endless = Endless()
    async with RawServer(endless) as server:
        tenant, endpoint = await outbox.endpoint(server.url)
        await outbox.events(tenant)
        async with WebhookSender(outbox.pool, _settings(webhook_timeout_seconds=20)):
            [row] = await outbox.until(endpoint, lambda rows: rows[0]["status"] != "pending", 10)
            async with asyncio.timeout(5):
                await endless.finished.wait()
    print(f"\nthe endpoint could send {endless.sent / 1024**2:.1f} MB before the sender hung up")
    assert (row["status"], row["last_status"]) == ("delivered", 200)  # a 2xx is all that counts
    # The connection was dropped after the first read: what went out is what the two sockets'
    # buffers hold, nowhere near the whole body.
    assert endless.sent < 32 * 1024 * 1024


async def test_a_name_is_resolved_once_and_refused_when_an_answer_is_not_public(
    outbox: Outbox, dns: FakeDNS, receiver: Receiver
) -> None:
    """The receiver on loopback stands for an internal service behind a tenant's name."""
    port = urlsplit(receiver.url).port
    dns.answers["internal.example.test"] = [["127.0.0.1"]]
    dns.answers["mixed.example.test"] = [["93.184.215.14", "10.0.0.7"]]
    # DNS rebinding: the first answer passes a plain ``is_global`` check (it is multicast:
    # no TCP connection can be made to it, so nothing leaves this machine whatever the sender
    # does), every later one is loopback.
    dns.answers["rebind.example.test"] = [["233.252.0.1"], ["127.0.0.1"]]
    endpoints = []
    for name in dns.answers:
        tenant, endpoint = await outbox.endpoint(f"http://{name}:{port}/hook")
        await outbox.events(tenant)
        endpoints.append(endpoint)

    settings = _settings(webhook_allow_private_urls=False, webhook_timeout_seconds=3)
    async with WebhookSender(outbox.pool, settings):
        rows = [(await outbox.until(e, _attempted, 10))[0] for e in endpoints]
        await asyncio.sleep(0.5)  # an attempt that went on to connect would have arrived

    assert receiver.got == []
    assert [r["last_error"] for r in rows] == ["endpoint address is not public"] * 3
    assert not any(ADDRESS.search(r["last_error"]) for r in rows)
    assert dns.lookups == {name: 1 for name in dns.answers}  # one lookup per attempt


async def test_the_connection_goes_to_the_checked_address_with_the_endpoints_name(
    outbox: Outbox, dns: FakeDNS, receiver: Receiver
) -> None:
    port = urlsplit(receiver.url).port
    closed = free_port()
    # 127.0.0.2 refuses (nothing listens there): the next address is tried, as by name.
    dns.answers["hooks.example.test"] = [["127.0.0.2", "127.0.0.1"]]
    dns.answers["gone.example.test"] = [["127.0.0.1"]]
    tenant, hooks = await outbox.endpoint(f"http://hooks.example.test:{port}/hook")
    await outbox.events(tenant)
    tenant, gone = await outbox.endpoint(f"http://gone.example.test:{closed}/hook")
    await outbox.events(tenant)

    async with WebhookSender(outbox.pool, _settings(webhook_timeout_seconds=3)):
        [ok] = await outbox.until(hooks, lambda rows: rows[0]["status"] == "delivered", 10)
        [refused] = await outbox.until(gone, _attempted, 10)

    [(headers, _)] = receiver.got
    assert headers["Host"] == f"hooks.example.test:{port}"
    assert dns.lookups == {"hooks.example.test": 1, "gone.example.test": 1}
    assert ok["last_status"] == 204
    assert (refused["last_error"], refused["last_status"]) == (
        "connect failed: connection refused",
        None,
    )


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for hooks.example.test (openssl's CLI: no extra dependency)."""
    base = tmp_path_factory.mktemp("tls")
    cert, key = base / "cert.pem", base / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=hooks.example.test",
            "-addext",
            "subjectAltName=DNS:hooks.example.test",
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


async def _accepted(_: web.Request) -> web.Response:
    return web.Response(status=204)


async def _loopback(_host: str, _port: int) -> list[IPAddress]:
    return [ipaddress.ip_address("127.0.0.1")]


async def test_tls_is_checked_against_the_endpoints_name_not_the_address(
    certificate: tuple[Path, Path],
) -> None:
    cert, key = certificate
    names: list[str | None] = []

    def server_name(_sock: ssl.SSLObject, name: str | None, _ctx: ssl.SSLContext) -> None:
        names.append(name)

    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    server_tls.sni_callback = server_name
    app = web.Application()
    app.router.add_post("/hook", _accepted)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port, ssl_context=server_tls).start()
    try:
        # The sender's client trusts public CAs; this one trusts the test's certificate.
        async with httpx.AsyncClient(
            verify=ssl.create_default_context(cafile=str(cert)), trust_env=False
        ) as client:
            sent = {
                name: await post(
                    client,
                    f"https://{name}:{port}/hook",
                    b"{}",
                    {},
                    deadline_s=5,
                    allow_private=True,
                    resolve=_loopback,
                )
                for name in ("hooks.example.test", "other.example.test")
            }
    finally:
        await runner.cleanup()
    assert sent["hooks.example.test"] == Outcome(204, None)
    assert names == ["hooks.example.test", "other.example.test"]  # SNI: the name, not the IP
    error = sent["other.example.test"].error or ""
    assert error.startswith("TLS certificate verify failed: Hostname mismatch"), error
    assert not ADDRESS.search(error)
