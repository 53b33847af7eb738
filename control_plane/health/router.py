"""Liveness and readiness probes."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from control_plane.deps import Pool, RedisClient

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is alive."""
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(pool: Pool, redis: RedisClient) -> JSONResponse:
    """Ready to serve while Postgres answers (within a second): it holds every session, deck and
    record. Redis only speeds things up and shares counters between replicas; without it the
    API keeps working (slower paths, per-replica rate limits, admission from the last fleet
    size seen), so a Redis outage reports ``degraded`` and keeps the replica in service."""
    checks: dict[str, str] = {}
    try:
        async with asyncio.timeout(1):
            await pool.fetchval("SELECT 1")
        checks["postgres"] = "ok"
    except Exception as exc:  # any failure means not ready; the probe reports which
        checks["postgres"] = f"error: {type(exc).__name__}"
    try:
        async with asyncio.timeout(1):
            await redis.ping()
        checks["redis"] = "ok"
    except Exception as exc:
        checks["redis"] = f"error: {type(exc).__name__}"
    if checks["postgres"] != "ok":
        status = "not_ready"
    elif checks["redis"] != "ok":
        status = "degraded"
    else:
        status = "ready"
    return JSONResponse(
        {"status": status, "checks": checks}, status_code=503 if status == "not_ready" else 200
    )
