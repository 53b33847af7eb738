"""Drains the webhook outbox: signs each due delivery, POSTs it, records the outcome and
schedules retries with exponential backoff. Owned by the app's lifespan; every replica runs one
and ``FOR UPDATE SKIP LOCKED`` leases keep them from sending the same delivery at once.

Deliveries run side by side, up to ``IN_FLIGHT`` per replica and ``PER_ENDPOINT`` of them to any
one endpoint, and the sender claims more as soon as one finishes: an endpoint that is slow (each
attempt ends at the deadline, ``delivery.post``) delays only its own deliveries, never another
tenant's. A delivery is claimed only when it can start at once, so its lease (the deadline and a
margin) outlives the attempt and no other replica sends it meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import Counter
from uuid import UUID

import asyncpg
import httpx

from control_plane.background import BackgroundLoop
from control_plane.webhooks import repository
from control_plane.webhooks.addresses import private_urls_allowed
from control_plane.webhooks.delivery import Resolver, post, resolve_host
from control_plane.webhooks.signing import signature
from shared.settings import ControlPlaneSettings

logger = logging.getLogger(__name__)

IN_FLIGHT = 20
PER_ENDPOINT = 2
USER_AGENT = "Podium-Webhooks/1"


class WebhookSender(BackgroundLoop):
    name = "webhook_sender"

    def __init__(
        self,
        pool: asyncpg.Pool,
        settings: ControlPlaneSettings,
        *,
        resolve: Resolver = resolve_host,
    ) -> None:
        self._pool = pool
        self._settings = settings
        self._resolve = resolve
        self._allow_private = private_urls_allowed(settings)
        # No kept-alive connections: each attempt connects to the address it has just checked,
        # and a connection opened for one name must not carry another name's request. No proxy
        # from the environment either: it would resolve the name again.
        self._http = httpx.AsyncClient(
            timeout=httpx.Timeout(settings.webhook_timeout_seconds),
            follow_redirects=False,
            headers={"User-Agent": USER_AGENT},
            limits=httpx.Limits(max_keepalive_connections=0),
            trust_env=False,
        )
        self._sending: Counter[UUID] = Counter()  # endpoint id -> its deliveries in flight
        self._finished = asyncio.Event()

    async def _after_stop(self) -> None:
        await self._http.aclose()

    async def _run(self) -> None:
        async with asyncio.TaskGroup() as attempts:
            while True:
                self._finished.clear()
                free = IN_FLIGHT - self._sending.total()
                due = await self._claim(free) if free > 0 else []
                for row in due:
                    self._sending[row["endpoint_id"]] += 1
                    attempts.create_task(self._send(row), name="webhook_delivery")
                if free > 0 and len(due) == free:
                    continue  # more may be due
                # Nothing more to start: look again after the poll interval, or as soon as an
                # attempt ends (a slot, maybe its endpoint's, is free).
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._settings.webhook_poll_seconds):
                        await self._finished.wait()

    async def _claim(self, limit: int) -> list[asyncpg.Record]:
        try:
            return await repository.claim_due(
                self._pool,
                lease_s=self._settings.webhook_timeout_seconds + 5,
                limit=limit,
                per_endpoint=PER_ENDPOINT,
                sending=dict(self._sending),
            )
        except Exception:  # Postgres away for a moment: the outbox waits for us
            logger.exception("webhook round failed")
            return []

    def retry_delay(self, attempts: int) -> float | None:
        """Seconds before the next attempt after ``attempts`` failed ones; None: give up."""
        if attempts >= self._settings.webhook_max_attempts:
            return None
        base = self._settings.webhook_retry_base_seconds
        return float(min(base * 2 ** (attempts - 1), self._settings.webhook_retry_max_seconds))

    async def _send(self, row: asyncpg.Record) -> None:
        try:
            await self._deliver(row)
        except Exception:  # recording the outcome failed: the lease runs out and it is retried
            logger.exception("webhook delivery not recorded", extra={"delivery_id": str(row["id"])})
        finally:
            self._sending[row["endpoint_id"]] -= 1
            if self._sending[row["endpoint_id"]] <= 0:
                del self._sending[row["endpoint_id"]]
            self._finished.set()

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
        outcome = await post(
            self._http,
            row["url"],
            body,
            headers,
            deadline_s=self._settings.webhook_timeout_seconds,
            allow_private=self._allow_private,
            resolve=self._resolve,
        )
        if outcome.error is None and outcome.status is not None:
            await repository.mark_delivered(self._pool, delivery_id, outcome.status)
            return
        retry_in = self.retry_delay(row["attempts"])
        await repository.mark_attempt_failed(
            self._pool,
            delivery_id,
            status=outcome.status,
            error=outcome.error or f"HTTP {outcome.status}",
            retry_in_s=retry_in,
        )
        logger.warning(
            "webhook delivery failed",
            extra={
                "delivery_id": str(delivery_id),
                "status": outcome.status,
                "error": outcome.error,
                "attempt": row["attempts"],
                "retry_in": retry_in,
            },
        )
