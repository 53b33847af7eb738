"""The ``usage.daily`` webhook: once per tenant per UTC day, shortly after the day ends.

Every replica sweeps; the day's row in ``usage_daily_reports`` is inserted in the transaction
that puts the event in the webhook outbox, so whichever replica gets there first raises it and
the others find it taken. The counters of a day are final at midnight (a report is counted on
the day it arrives); a grace period lets the last leave webhooks of the day land first.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from control_plane.background import BackgroundLoop
from control_plane.usage import repository, service

logger = logging.getLogger(__name__)

GRACE = timedelta(minutes=5)
LOOKBACK_DAYS = 3  # days missed while every replica was down are still reported
SWEEP_SECONDS = 60.0


async def sweep(pool: asyncpg.Pool, now: datetime | None = None) -> int:
    """Raise ``usage.daily`` for every (tenant, finished day) not raised yet; returns how many."""
    now = now or datetime.now(UTC)
    newest = (now - GRACE).date() - timedelta(days=1)
    raised = 0
    for back in range(LOOKBACK_DAYS - 1, -1, -1):
        day = newest - timedelta(days=back)
        for tenant_id in await repository.tenants_with_usage(pool, day):
            page = await service.usage(pool, tenant_id, day, day, "day")
            data: dict[str, Any] = {
                "tenant_id": str(tenant_id),
                "day": day.isoformat(),
                "usage": page.total.model_dump(mode="json"),
                "storage": page.storage.model_dump(mode="json"),
                "usage_url": f"/v1/usage?from={day}&to={day}&group_by=session",
            }
            async with pool.acquire() as conn, conn.transaction():
                if await repository.claim_daily(conn, tenant_id, day):
                    await repository.raise_daily(conn, tenant_id, day, data)
                    raised += 1
    return raised


class UsageDailyReporter(BackgroundLoop):
    name = "usage_daily_reporter"

    def __init__(self, pool: asyncpg.Pool, interval_s: float = SWEEP_SECONDS) -> None:
        self._pool = pool
        self._interval = interval_s

    async def _run(self) -> None:
        while True:
            try:
                raised = await sweep(self._pool)
                if raised:
                    logger.info("usage.daily raised", extra={"count": raised})
            except (OSError, asyncpg.PostgresError) as exc:
                logger.warning("usage.daily sweep failed", extra={"error": type(exc).__name__})
            except Exception:
                logger.exception("usage.daily sweep failed")
            await asyncio.sleep(self._interval)
