"""The control plane's composition root: ``create_app()`` and its lifespan."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from fastapi import FastAPI
from redis.asyncio import Redis

from control_plane import db
from control_plane.analytics.router import router as analytics_router
from control_plane.assets import router as assets_router
from control_plane.audit.recorder import AuditMiddleware
from control_plane.audit.router import router as audit_router
from control_plane.body_limit import BodyLimitMiddleware, body_caps
from control_plane.conversation.router import router as conversation_router
from control_plane.decks.converter import ConverterBounds, PptxConverter
from control_plane.decks.embeddings import build_embedder, build_multilingual_embedder
from control_plane.decks.extract import Limits
from control_plane.decks.ingest import IngestionRunner
from control_plane.decks.router import router as decks_router
from control_plane.decks.sandbox import Bounds, isolate
from control_plane.decks.service import DeckService
from control_plane.deps import AppState
from control_plane.errors import install_error_handlers
from control_plane.fleet.admission import Admission
from control_plane.fleet.deletion_cost import deletion_cost_loop
from control_plane.fleet.router import router as fleet_router
from control_plane.health.router import router as health_router
from control_plane.internal.router import router as internal_router
from control_plane.keys.router import router as keys_router
from control_plane.keys.service import KeyCache
from control_plane.limits.limiter import RateLimiter
from control_plane.livekit_gateway import LiveKitGateway
from control_plane.metrics import MetricsMiddleware, MetricsRefresher
from control_plane.metrics import router as metrics_router
from control_plane.migrate import apply_migrations
from control_plane.privacy.retention import RetentionSweeper
from control_plane.privacy.router import router as erasures_router
from control_plane.recordings.router import internal_router as recording_upload_router
from control_plane.recordings.router import router as recordings_router
from control_plane.sessions.dispatch_check import DispatchWatchdog
from control_plane.sessions.lifecycle import LifecycleSweeper
from control_plane.sessions.liveness import JobLiveness, Watchdog
from control_plane.sessions.resume import Resumer
from control_plane.sessions.router import router as sessions_router
from control_plane.sessions.webhook import router as livekit_webhook_router
from control_plane.slides.router import router as slides_router
from control_plane.slides.router import slide_state_error
from control_plane.slides.service import SlideService, SlideStateError
from control_plane.storage import LocalStorage, UrlSigner
from control_plane.tenants.router import router as tenant_router
from control_plane.transcripts.router import router as transcripts_router
from control_plane.usage.daily import UsageDailyReporter
from control_plane.usage.router import internal_router as usage_report_router
from control_plane.usage.router import router as usage_router
from control_plane.web.router import router as web_router
from control_plane.webhooks.router import router as webhooks_router
from control_plane.webhooks.sender import WebhookSender
from shared.settings import ControlPlaneSettings

logger = logging.getLogger(__name__)


def _admission(
    pool: asyncpg.Pool, redis: Redis, settings: ControlPlaneSettings
) -> Admission | None:
    if not settings.admission_enabled:
        return None
    hold = settings.admission_reservation_seconds
    if settings.dispatch_mode == "on_join":
        hold += settings.session_no_show_seconds  # the slot waits for the first participant
    return Admission(
        pool,
        redis,
        wait_s=settings.admission_wait_seconds,
        hold_s=hold,
        fair_reserve_slots=settings.admission_fair_reserve_slots,
        stale_fleet_s=settings.admission_stale_fleet_seconds,
    )


def create_app(settings: ControlPlaneSettings | None = None) -> FastAPI:
    settings = settings or ControlPlaneSettings()

    @asynccontextmanager
    async def lifespan(application: FastAPI) -> AsyncIterator[AppState]:
        dsn = settings.database_url.get_secret_value()
        if settings.apply_migrations_on_start:
            conn = await db.connect(settings.migrations_dsn())
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
        storage = LocalStorage(settings.asset_root)
        signer = UrlSigner(
            settings.asset_url_key_ring(),
            settings.public_url,
            settings.asset_url_ttl_seconds,
        )
        embedder = build_embedder(
            settings.embedding_provider,
            openai_api_key=(
                settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
            ),
            openai_base_url=settings.openai_base_url,
            openai_model=settings.openai_embedding_model,
            threads=settings.embedding_threads,
        )
        multilingual = (
            build_multilingual_embedder(
                settings.embedding_provider, threads=settings.embedding_threads
            )
            if settings.embedding_multilingual
            else None
        )
        limits = Limits(max_bytes=settings.max_upload_mb * 2**20, max_slides=settings.max_slides)
        bounds = Bounds(
            timeout_s=settings.parse_timeout_seconds,
            memory_bytes=settings.parse_memory_mb * 2**20,
        )
        isolate()  # decided (and warned about) now, not at the first upload
        # Found now; the office itself starts with the first PPTX deck.
        converter = await asyncio.to_thread(
            PptxConverter.from_system,
            ConverterBounds(timeout_s=bounds.timeout_s, memory_bytes=bounds.memory_bytes),
        )
        runner = IngestionRunner(
            pool,
            storage,
            embedder,
            limits,
            bounds,
            lease_s=settings.ingest_lease_seconds,
            multilingual=multilingual,
            converter=converter,
            render_processes=settings.render_processes,
        )
        decks = DeckService(
            pool,
            storage,
            embedder,
            runner,
            signer,
            limits,
            bounds,
            max_parallel_parses=settings.max_parallel_parses,
            read_timeout_s=settings.upload_read_timeout_seconds,
            multilingual=multilingual,
        )
        runner.start()
        try:
            async with (
                gateway,
                SlideService(pool, redis, gateway, signer) as slides,
                RateLimiter(settings.redis_url) as limiter,
                MetricsRefresher(pool, redis, settings),
                deletion_cost_loop(redis, settings),
                Watchdog(
                    JobLiveness(redis, silence_s=settings.job_silence_seconds),
                    Resumer(pool, redis, gateway, settings).job_silent,
                    grace_s=settings.job_silence_seconds,
                ),
                LifecycleSweeper(pool, gateway, settings),
                DispatchWatchdog(pool, gateway, settings),
                WebhookSender(pool, settings),
                RetentionSweeper(pool, storage, settings),
                UsageDailyReporter(pool),
            ):
                application.state.slides = slides
                application.state.limiter = limiter
                logger.info("control plane ready", extra={"environment": settings.environment})
                yield AppState(
                    settings=settings,
                    pool=pool,
                    redis=redis,
                    livekit=gateway,
                    decks=decks,
                    signer=signer,
                    storage=storage,
                    key_cache=KeyCache(),
                    admission=_admission(pool, redis, settings),
                )
        finally:
            await runner.stop()
            if converter is not None:
                await converter.aclose()
            await redis.aclose()
            await pool.close()

    app = FastAPI(
        title="Podium control plane",
        version="0.1.0",
        summary="Decks, sessions, slide state and tokens for the Podium AI presenter.",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    app.add_exception_handler(SlideStateError, slide_state_error)
    # Innermost: it records what the routes answered, before the answer leaves.
    app.add_middleware(AuditMiddleware)
    # Before routing and authentication: FastAPI reads a JSON body before any dependency runs.
    app.add_middleware(BodyLimitMiddleware, caps=body_caps(settings))
    app.add_middleware(MetricsMiddleware)
    app.include_router(health_router)
    if settings.metrics_port is None:  # else only on its own port (cli.serve)
        app.include_router(metrics_router)
    app.include_router(fleet_router)
    app.include_router(sessions_router)
    app.include_router(decks_router)
    app.include_router(assets_router)
    app.include_router(internal_router)
    app.include_router(slides_router)
    app.include_router(web_router)
    app.include_router(conversation_router)
    app.include_router(livekit_webhook_router)
    app.include_router(transcripts_router)
    app.include_router(recordings_router)
    app.include_router(recording_upload_router)
    app.include_router(webhooks_router)
    app.include_router(tenant_router)
    app.include_router(keys_router)
    app.include_router(erasures_router)
    app.include_router(audit_router)
    app.include_router(usage_router)
    app.include_router(usage_report_router)
    app.include_router(analytics_router)
    return app
