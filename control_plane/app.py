"""The control plane's composition root: ``create_app()`` and its lifespan."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from redis.asyncio import Redis

from control_plane import db
from control_plane.deps import AppState
from control_plane.errors import install_error_handlers
from control_plane.health.router import router as health_router
from control_plane.internal.router import router as internal_router
from control_plane.livekit_gateway import LiveKitGateway
from control_plane.migrate import apply_migrations
from control_plane.sessions.router import router as sessions_router
from shared.settings import ControlPlaneSettings

logger = logging.getLogger(__name__)


def create_app(settings: ControlPlaneSettings | None = None) -> FastAPI:
    settings = settings or ControlPlaneSettings()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[AppState]:
        dsn = settings.database_url.get_secret_value()
        if settings.apply_migrations_on_start:
            conn = await db.connect(dsn)
            try:
                await apply_migrations(conn)
            finally:
                await conn.close()
        pool = await db.create_pool(
            dsn, min_size=settings.db_pool_min, max_size=settings.db_pool_max
        )
        redis = Redis.from_url(settings.redis_url, decode_responses=True)
        gateway = LiveKitGateway(
            url=settings.livekit_url,
            api_key=settings.livekit_api_key,
            api_secret=settings.livekit_api_secret.get_secret_value(),
            agent_name=settings.agent_name,
        )
        try:
            async with gateway:
                logger.info("control plane ready", extra={"environment": settings.environment})
                yield AppState(settings=settings, pool=pool, redis=redis, livekit=gateway)
        finally:
            await redis.aclose()
            await pool.close()

    app = FastAPI(
        title="Podium control plane",
        version="0.1.0",
        summary="Decks, sessions, slide state and tokens for the Podium AI presenter.",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    app.include_router(health_router)
    app.include_router(sessions_router)
    app.include_router(internal_router)
    return app
