"""Writes the audit trail: one entry per tenant API call it keeps, once the call's status is
known and before the answer's first byte leaves.

Kept: every ``/v1`` call made with an API key that changes something (POST, PUT, PATCH,
DELETE), and every read of a route that needs the ``records:read`` or ``admin`` scope
(transcripts, turns, events, exports, recordings, escalations; keys, the avatar, the audit
itself) or that answers a webhook's payload — refusals included (403, 404, 409, 422, 429).
Not kept: calls whose key is missing or not valid (401: there is no tenant to file them under),
calls no route matched, bodies refused before routing (413), the participant-token and
ops-token routes, and the worker's ``/internal`` routes (its credential is not a tenant's key,
and they are the bulk of all requests).

An entry that cannot be written is logged at error level with everything it holds and counted
(``podium_audit_write_failures_total``). A successful read is then withheld (``503``): records
never leave unrecorded. A change has already been committed by then, so its answer goes out as
it is: a ``503`` would misreport it and invite a retry that repeats it.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import time
from typing import Any

import asyncpg
from prometheus_client import Counter, Histogram
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from control_plane.audit import repository
from control_plane.audit.schemas import AuditRecord
from control_plane.keys.service import Caller, authenticate

logger = logging.getLogger(__name__)

MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Reads of these scopes' routes are kept (the scope the route declared, see deps.requires).
READ_SCOPES = frozenset({"records:read", "admin"})
# Reads kept whatever their scope: they answer a webhook's payload (an escalation's transcript).
PAYLOAD_READS = frozenset({"/v1/webhooks/deliveries/{delivery_id}"})
_MAX_PEEK_BYTES = 64 * 1024
_MAX_TARGET_CHARS = 200

WRITE_SECONDS = Histogram(
    "podium_audit_write_seconds",
    "Time to write one audit entry (the latency it adds to an audited call).",
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5),
)
WRITE_FAILURES = Counter(
    "podium_audit_write_failures_total",
    "Audit entries that could not be written, by the call's kind (a read is withheld with a "
    "503, a change is answered anyway); each is logged as 'audit write failed'.",
    ["kind"],
)
_WITHHELD = json.dumps(
    {
        "error": "upstream_unavailable",
        "message": "The audit trail could not record this read, so it is withheld; retry shortly.",
    }
).encode()


class AuditMiddleware:
    """Pure ASGI, so a streamed answer (an export) is recorded at its start and never buffered."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        call = _Call(scope, send)
        try:
            await self.app(scope, receive, call.send)
        except Exception:
            await call.failed()  # the server answers 500
            raise


class _Call:
    """One request's answer on its way out: recorded at its start, or, for a creation, at its
    body (which names what was created)."""

    def __init__(self, scope: Scope, send: Send) -> None:
        self._scope = scope
        self._send = send
        self._done = False
        self._withheld = False
        self._start: Message | None = None

    async def send(self, message: Message) -> None:
        if self._withheld:
            return
        if self._done:
            await self._send(message)
        elif message["type"] == "http.response.start":
            if self._names_creation(message):
                self._start = message  # wait for the body, which names the new thing
            else:
                await self._finish(message, None, [])
        elif message["type"] == "http.response.body" and self._start is not None:
            await self._finish(self._start, _created_id(message), [message])
        else:
            await self._send(message)

    async def failed(self) -> None:
        if not self._done:
            self._done = True
            await record(self._scope, 500, None)

    def _names_creation(self, start: Message) -> bool:
        status = int(start["status"])
        content_type = dict(start.get("headers", [])).get(b"content-type", b"")
        return (
            self._scope["method"] == "POST"
            and not self._scope.get("path_params")
            and 200 <= status < 300
            and content_type.startswith(b"application/json")
        )

    async def _finish(self, start: Message, created: str | None, rest: list[Message]) -> None:
        self._done = True
        if not await record(self._scope, int(start["status"]), created):
            self._withheld = True
            await self._send(
                {
                    "type": "http.response.start",
                    "status": 503,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(_WITHHELD)).encode()),
                        (b"retry-after", b"2"),
                    ],
                }
            )
            await self._send({"type": "http.response.body", "body": _WITHHELD})
            return
        await self._send(start)
        for message in rest:
            await self._send(message)


def _created_id(body: Message) -> str | None:
    chunk = body.get("body", b"")
    if body.get("more_body") or len(chunk) > _MAX_PEEK_BYTES:
        return None
    try:
        data = json.loads(chunk)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    # A creation's answer names what it made first: session_id, deck_id, key_id, erasure_id…
    return next(
        (v for k, v in data.items() if (k == "id" or k.endswith("_id")) and isinstance(v, str)),
        None,
    )


def audited_route(scope: Scope) -> str | None:
    """The route's template when the trail keeps this call, else None."""
    route = scope.get("route")
    template = getattr(route, "path", None) if isinstance(route, BaseRoute) else None
    if not isinstance(template, str) or not template.startswith("/v1/"):
        return None
    if scope["method"] in MUTATING or template in PAYLOAD_READS:
        return template
    state = scope.get("state") or {}
    return template if state.get("required_scope") in READ_SCOPES else None


async def record(scope: Scope, status: int, created: str | None) -> bool:
    """Write the call's entry if the trail keeps it. False: it could not be written and the
    answer, a successful read, must be withheld."""
    route = audited_route(scope)
    state: dict[str, Any] = scope.get("state") or {}
    pool: asyncpg.Pool | None = state.get("pool")
    if route is None or status == 401 or pool is None:
        return True
    method = scope["method"]
    read = method not in MUTATING
    try:
        caller = state.get("caller") or await _authenticate(scope, pool, state)
        if caller is None:
            return True  # not a tenant's key (a participant's token, the ops token)
        entry = AuditRecord(
            tenant_id=caller.tenant_id,
            key_id=caller.key_id,
            actor="key",
            method=method,
            route=route,
            target_id=_target(scope, created),
            status=status,
            client_ip=_client_ip(scope),
        )
        started = time.perf_counter()
        await repository.insert(pool, entry)
        WRITE_SECONDS.observe(time.perf_counter() - started)
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as exc:
        WRITE_FAILURES.labels("read" if read else "mutation").inc()
        caller = state.get("caller")
        logger.error(
            "audit write failed",
            extra={
                "tenant_id": str(caller.tenant_id) if caller else None,
                "key_id": str(caller.key_id) if caller else None,
                "method": method,
                "route": route,
                "target_id": _target(scope, created),
                "status": status,
                "client_ip": str(_client_ip(scope)),
                "error": type(exc).__name__,
            },
        )
        return not (read and status < 400)
    return True


async def _authenticate(scope: Scope, pool: asyncpg.Pool, state: dict[str, Any]) -> Caller | None:
    """The key's caller when the route's own authentication did not run: FastAPI refuses a
    body that is not JSON before it resolves any dependency."""
    for name, value in scope["headers"]:
        if name == b"authorization":
            kind, _, token = value.decode("latin-1").partition(" ")
            if kind.lower() == "bearer" and token.strip():
                return await authenticate(pool, token.strip(), state.get("key_cache"))
    return None


def _target(scope: Scope, created: str | None) -> str | None:
    """The path's first parameter (as sent, valid or not: a refused id is worth keeping), or
    the id a creation answered. Control characters are escaped (``\\x1b``): Postgres text
    cannot hold a NUL, and the CLI prints the value to an operator's terminal."""
    params = scope.get("path_params") or {}
    first = next(iter(params.values()), None)
    target = str(first) if first is not None else created
    if not target:
        return None
    if not target.isprintable():
        target = target.encode("unicode_escape").decode("ascii")
    return target[:_MAX_TARGET_CHARS]


def _client_ip(scope: Scope) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The peer uvicorn reports: X-Forwarded-For's address only when the peer is one of the
    proxies in uvicorn's ``FORWARDED_ALLOW_IPS`` (default loopback)."""
    client = scope.get("client")
    try:
        return ipaddress.ip_address(client[0]) if client else None
    except ValueError:
        return None
