"""Drains the webhook outbox: signs each due delivery, POSTs it, records the outcome and
schedules retries with exponential backoff. Owned by the app's lifespan; every replica runs one
and ``FOR UPDATE SKIP LOCKED`` leases keep them from sending the same delivery at once.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import socket
import time
from urllib.parse import urlsplit
from uuid import UUID

import asyncpg
import httpx

from control_plane.background import BackgroundLoop
from control_plane.webhooks import repository
from control_plane.webhooks.signing import signature
from shared.settings import ControlPlaneSettings

logger = logging.getLogger(__name__)

_BATCH = 20
USER_AGENT = "Podium-Webhooks/1"


class WebhookSender(BackgroundLoop):
    def __init__(
        self,
        pool: asyncpg.Pool,
        settings: ControlPlaneSettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._pool = pool
        self._settings = settings
        self._http = httpx.AsyncClient(
            timeout=httpx.Timeout(settings.webhook_timeout_seconds),
            follow_redirects=False,
            headers={"User-Agent": USER_AGENT},
            transport=transport,
        )
        allow = settings.webhook_allow_private_urls
        self._allow_private = allow if allow is not None else settings.environment != "prod"

    name = "webhook_sender"

    async def _after_stop(self) -> None:
        await self._http.aclose()

    async def _run(self) -> None:
        while True:
            try:
                sent = await self.send_due()
            except Exception:  # Postgres away for a moment: the outbox waits for us
                logger.exception("webhook round failed")
                sent = 0
            if sent < _BATCH:
                await asyncio.sleep(self._settings.webhook_poll_seconds)

    def retry_delay(self, attempts: int) -> float | None:
        """Seconds before the next attempt after ``attempts`` failed ones; None: give up."""
        if attempts >= self._settings.webhook_max_attempts:
            return None
        base = self._settings.webhook_retry_base_seconds
        return float(min(base * 2 ** (attempts - 1), self._settings.webhook_retry_max_seconds))

    async def send_due(self) -> int:
        # A lease longer than one request's timeout: nobody else sends it meanwhile.
        due = await repository.claim_due(
            self._pool, lease_s=self._settings.webhook_timeout_seconds + 5, limit=_BATCH
        )
        await asyncio.gather(*(self._deliver(row) for row in due))
        return len(due)

    async def _deliver(self, row: asyncpg.Record) -> None:
        delivery_id: UUID = row["id"]
        body = json.dumps(row["payload"], separators=(",", ":"), sort_keys=True).encode()
        stamp = int(time.time())
        headers = {
            "Content-Type": "application/json",
            "Podium-Webhook-Id": str(delivery_id),
            "Podium-Webhook-Timestamp": str(stamp),
            "Podium-Signature": signature(row["secret"], stamp, body),
            "Podium-Event": row["event_type"],
        }
        status: int | None = None
        try:
            if not self._allow_private:
                await _require_public(row["url"])
            response = await self._http.post(row["url"], content=body, headers=headers)
            status = response.status_code
            if response.is_success:
                await repository.mark_delivered(self._pool, delivery_id, status)
                return
            error = f"HTTP {status}"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"[:500]
        except PrivateAddress as exc:
            error = str(exc)
        retry_in = self.retry_delay(row["attempts"])
        await repository.mark_attempt_failed(
            self._pool, delivery_id, status=status, error=error, retry_in_s=retry_in
        )
        logger.warning(
            "webhook delivery failed",
            extra={
                "delivery_id": str(delivery_id),
                "status": status,
                "attempt": row["attempts"],
                "retry_in": retry_in,
            },
        )


class PrivateAddress(Exception):
    pass


async def _require_public(url: str) -> None:
    """Refuse an endpoint whose name resolves to a loopback, private or link-local address
    (the API refuses such IP literals; a name is only known at delivery time)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise PrivateAddress(f"could not resolve {host}: {exc}") from exc
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if not address.is_global:
            raise PrivateAddress(f"{host} resolves to {address}, which is not a public address")
