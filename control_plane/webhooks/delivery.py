"""One webhook attempt: a POST to an integrator's endpoint that cannot stall or mislead us.

- The endpoint's name is resolved once, every address it resolves to is checked, and the
  connection is made to a checked address: the URL carries the IP, while the ``Host`` header and
  the TLS server name (SNI and the certificate check, httpcore's ``sni_hostname`` extension)
  stay the endpoint's own name. No second lookup can answer differently (DNS rebinding).
- The whole attempt (lookup, connect, TLS, request, answer) runs under one deadline: an
  endpoint that trickles bytes cannot hold a sender for longer.
- At most ``READ_LIMIT`` bytes of the answer are read (only its status matters); a longer body is
  dropped with the connection.
- Errors say what failed in words (``connect timeout after 10 s``), never an address the name
  resolved to: the delivery log is the tenant's to read, our network's layout is not.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import re
import socket
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx

from control_plane.webhooks.addresses import IPAddress, allowed

READ_LIMIT = 4096
NOT_PUBLIC = "endpoint address is not public"

Resolver = Callable[[str, int], Awaitable[list[IPAddress]]]

# httpcore's trace events, mapped to the words an error uses for the step that was under way.
_STEPS = {
    "connection.connect_tcp": "connect",
    "connection.start_tls": "TLS handshake",
    "http11.send_request_headers": "request write",
    "http11.send_request_body": "request write",
    "http11.receive_response_headers": "response",
    "http11.receive_response_body": "response read",
}
_IPV4 = re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}\b")
_IPV6 = re.compile(r"\b[0-9a-fA-F]{0,4}(?::[0-9a-fA-F]{0,4}){2,7}\b")


@dataclass(frozen=True)
class Outcome:
    status: int | None  # the endpoint's HTTP status, if it answered
    error: str | None  # what went wrong; None when the endpoint took the event (2xx)


async def resolve_host(host: str, port: int) -> list[IPAddress]:
    """Every address ``host`` resolves to, in the resolver's order, each once."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(ipaddress.ip_address(info[4][0]) for info in infos))


class _Attempt:
    """What one attempt got to: the step under way and the status, if any."""

    def __init__(self) -> None:
        self.step = "DNS lookup"
        self.status: int | None = None

    async def trace(self, event: str, _info: dict[str, Any]) -> None:
        name, _, stage = event.rpartition(".")
        if stage == "started" and name in _STEPS:
            self.step = _STEPS[name]


class _Refused(Exception):
    """Not sent; the message is the delivery's ``last_error``."""


async def post(
    client: httpx.AsyncClient,
    url: str,
    body: bytes,
    headers: dict[str, str],
    *,
    deadline_s: float,
    allow_private: bool,
    resolve: Resolver = resolve_host,
) -> Outcome:
    attempt = _Attempt()
    try:
        async with asyncio.timeout(deadline_s):
            return await _post(
                client, httpx.URL(url), body, headers, allow_private, resolve, attempt
            )
    except (TimeoutError, httpx.TimeoutException):
        if _success(attempt.status):  # only the rest of its body was late
            return Outcome(attempt.status, None)
        return Outcome(attempt.status, f"{attempt.step} timeout after {deadline_s:g} s")
    except _Refused as exc:
        return Outcome(None, str(exc))
    except httpx.HTTPError as exc:
        if _success(attempt.status):
            return Outcome(attempt.status, None)
        return Outcome(attempt.status, _scrub(_describe(exc, attempt.step)))


async def _post(
    client: httpx.AsyncClient,
    url: httpx.URL,
    body: bytes,
    headers: dict[str, str],
    allow_private: bool,
    resolve: Resolver,
    attempt: _Attempt,
) -> Outcome:
    host = url.raw_host.decode("ascii")
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        addresses = await resolve(host, port)
    except OSError as exc:
        raise _Refused("could not resolve the endpoint's host name") from exc
    if not addresses:
        raise _Refused("could not resolve the endpoint's host name")
    if not all(allowed(a, allow_private=allow_private) for a in addresses):
        raise _Refused(NOT_PUBLIC)
    # A connection is never reused: one opened for a name must not carry another name's
    # request (the pool knows connections by IP).
    headers = {**headers, "Host": url.netloc.decode("ascii"), "Connection": "close"}
    extensions = {"sni_hostname": host, "trace": attempt.trace}
    unreachable: httpx.ConnectError | None = None
    for address in addresses:  # as a client connecting by name would: the next on refusal
        attempt.step = "connect"
        pinned = url.copy_with(host=str(address))
        try:
            async with client.stream(
                "POST", pinned, content=body, headers=headers, extensions=extensions
            ) as response:
                attempt.status = response.status_code
                read = 0
                async for chunk in response.aiter_raw():
                    read += len(chunk)
                    if read >= READ_LIMIT:
                        break
        except httpx.ConnectError as exc:
            if attempt.step != "connect":
                raise
            unreachable = exc
            continue
        if _success(attempt.status):
            return Outcome(attempt.status, None)
        return Outcome(attempt.status, f"HTTP {attempt.status}")
    assert unreachable is not None
    raise unreachable


def _success(status: int | None) -> bool:
    return status is not None and 200 <= status < 300


def _describe(exc: httpx.HTTPError, step: str) -> str:
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ssl.SSLCertVerificationError):
            return f"TLS certificate verify failed: {cause.verify_message}"
        if isinstance(cause, ssl.SSLError):
            return "TLS handshake failed"
        if isinstance(cause, OSError) and cause.errno is not None:
            return f"{step} failed: {os.strerror(cause.errno).lower()}"
        cause = cause.__cause__ or cause.__context__
    if isinstance(exc, httpx.RemoteProtocolError):
        return f"{step} failed: the endpoint broke the HTTP protocol or closed the connection"
    return f"{step} failed: {type(exc).__name__}"


def _scrub(text: str) -> str:
    """No address in the words an exception brought along (a certificate's IP names)."""
    return _IPV6.sub("[address]", _IPV4.sub("[address]", text))[:500]
