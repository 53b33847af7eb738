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
    """Ready to serve: Postgres and Redis both answer within a second."""
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
    ready = all(v == "ok" for v in checks.values())
    return JSONResponse(
        {"status": "ready" if ready else "not_ready", "checks": checks},
        status_code=200 if ready else 503,
    )
