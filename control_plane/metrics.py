"""Prometheus metrics of the control plane: HTTP, sessions, join and turn latency, decks, fleet.

Request metrics come from a middleware. Everything else is read from the source of truth by
:class:`MetricsRefresher`, an owned task: gauges (open sessions, decks by status, the fleet and
its desired size) on every replica, and histograms of completed joins, ingestions and logged
turns on one replica at a time (a Redis lease), resuming from watermarks in Redis, so summing
over replicas counts each one once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import UTC, datetime

import asyncpg
from fastapi import APIRouter, FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest
from redis.asyncio import Redis
from redis.exceptions import RedisError
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from control_plane.background import BackgroundLoop
from control_plane.fleet import repository
from control_plane.fleet.service import fleet_view, policy_from
from control_plane.fleet.store import HeartbeatStore
from shared.settings import ControlPlaneSettings

logger = logging.getLogger(__name__)

HTTP_REQUESTS = Counter(
    "podium_http_requests_total", "HTTP requests answered.", ["method", "route", "status"]
)
HTTP_SECONDS = Histogram(
    "podium_http_request_duration_seconds",
    "Time to answer an HTTP request.",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
SESSIONS = Gauge("podium_sessions", "Sessions not ended, by status.", ["status"])
JOIN_SECONDS = Histogram(
    "podium_session_join_seconds",
    "Session created to the agent's job reporting it joined the room.",
    buckets=(0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 30),
)
TURN_SECONDS = Histogram(
    "podium_turn_latency_seconds",
    "End of the user's speech to the agent's first audio, per turn (the turn log's e2e_latency).",
    buckets=(0.25, 0.5, 0.75, 1, 1.25, 1.5, 2, 3, 5, 10),
)
TURN_STAGE_SECONDS = Histogram(
    "podium_turn_stage_seconds",
    "Per-stage delays of each turn: end of turn, transcription, LLM first token, TTS first byte.",
    ["stage"],
    buckets=(0.05, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 5),
)
DECKS = Gauge("podium_decks", "Decks by ingestion status.", ["status"])
INGEST_SECONDS = Histogram(
    "podium_deck_ingestion_seconds",
    "Deck upload accepted to ready (previews, chunks and embeddings written).",
    buckets=(0.5, 1, 2, 5, 10, 30, 60, 120, 300),
)
INGESTED_SLIDES = Counter("podium_deck_slides_ingested_total", "Slides of decks that are ready.")
# No tenant label: counters keep every series they ever saw, and tenants are unbounded.
RATE_LIMITED = Counter(
    "podium_rate_limited_total", "Requests refused (429) by a tenant limit, by limit.", ["limit"]
)
LIMITS_DEGRADED = Gauge(
    "podium_limits_degraded",
    "1 while this replica counts rate limits in its own memory because Redis does not answer.",
)
LIMITS_LOCAL_CHECKS = Counter(
    "podium_limits_local_checks_total",
    "Rate-limit checks counted in this replica's memory (Redis unreachable).",
)
FLEET_WORKERS = Gauge("podium_fleet_workers", "Heartbeating workers.", ["state"])
FLEET_DESIRED = Gauge(
    "podium_fleet_desired_workers", "Workers the autoscaler should run (open sessions+headroom)."
)
FLEET_SESSIONS = Gauge("podium_fleet_active_sessions", "Sessions not ended in Postgres.")
FLEET_FREE_SLOTS = Gauge("podium_fleet_free_slots", "Free session slots on ready workers.")
FLEET_IDLE = Gauge("podium_fleet_idle_processes", "Prewarmed job processes on ready workers.")
FLEET_ON_DRAINING = Gauge(
    "podium_fleet_sessions_on_draining_workers", "Sessions finishing on draining workers."
)
FLEET_ON_READY = Gauge("podium_fleet_sessions_on_ready_workers", "Sessions on ready workers.")
FLEET_WAITING = Gauge(
    "podium_fleet_sessions_waiting", "Sessions created moments ago that no worker runs yet."
)
FLEET_QUEUED = Gauge(
    "podium_fleet_sessions_queued", "Session creations waiting for a free slot (admission)."
)
TENANT_SESSIONS = Gauge(
    "podium_tenant_sessions",
    "Open sessions (slots held or awaited) by tenant id; only with PODIUM_METRICS_PORT.",
    ["tenant"],
)
TENANT_USAGE = Counter(
    "podium_tenant_usage",
    "Usage by tenant id and meter (session_seconds, participant_seconds, stt_audio_seconds, "
    "tts_characters, llm_input_tokens, llm_output_tokens, avatar_seconds), counted as it is "
    "recorded; only with PODIUM_METRICS_PORT.",
    ["tenant", "meter"],
)

REDACTIONS = Counter(
    "podium_redactions_total",
    "Personal data found in records before they were stored (masked or dropped), by entity.",
    ["entity"],
)
RECORDING_SPANS_SILENCED = Counter(
    "podium_recording_spans_silenced_total",
    "Spans of recordings' user channel silenced over personal data.",
)
RECORDING_SEGMENTS_UNREDACTABLE = Counter(
    "podium_recording_segments_unredactable_total",
    "Recording segments that could not be decoded for redaction and were replaced by silence.",
)

_SESSION_STATUSES = ("created", "active")
_DECK_STATUSES = ("pending", "processing", "ready", "failed")
_LEASE_KEY = "podium:metrics:observer"
_JOIN_MARK = "podium:metrics:join_watermark"
_INGEST_MARK = "podium:metrics:ingest_watermark"
_TURN_MARK = "podium:metrics:turn_watermark"

router = APIRouter(tags=["health"])


@router.get("/metrics", include_in_schema=False)
async def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


def create_metrics_app() -> FastAPI:
    """``/metrics`` alone, for ``PODIUM_METRICS_PORT``: the API port then does not serve it."""
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    app.include_router(router)
    return app


class MetricsMiddleware:
    """Counts and times every HTTP request by route template (bounded label values)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # an exception escaping the app is answered 500 by the server

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            route = scope.get("route")
            template = route.path if isinstance(route, BaseRoute) and hasattr(route, "path") else ""
            label = template or "unmatched"
            if label != "/metrics":
                HTTP_REQUESTS.labels(scope["method"], label, str(status)).inc()
                HTTP_SECONDS.labels(scope["method"], label).observe(time.perf_counter() - started)


class MetricsRefresher(BackgroundLoop):
    """Owns the task that refreshes gauges and observes completed joins and ingestions."""

    def __init__(self, pool: asyncpg.Pool, redis: Redis, settings: ControlPlaneSettings) -> None:
        self._pool = pool
        self._redis = redis
        self._settings = settings
        self._store = HeartbeatStore(redis, settings.fleet_heartbeat_ttl_seconds)
        self._interval = settings.metrics_refresh_seconds
        self._owner = f"{id(self):x}-{time.time_ns()}"
        self._tenants: set[str] = set()

    name = "metrics_refresher"

    async def _after_stop(self) -> None:
        with contextlib.suppress(Exception):  # Redis may already be gone at shutdown
            if await self._redis.get(_LEASE_KEY) == self._owner:
                await self._redis.delete(_LEASE_KEY)

    async def _run(self) -> None:
        while True:
            try:
                await self.refresh()
            except (TimeoutError, OSError, RedisError, asyncpg.PostgresError) as exc:
                # Postgres or Redis away: keep the last values, try again next tick.
                logger.warning("metrics refresh failed", extra={"error": type(exc).__name__})
            except Exception:
                logger.exception("metrics refresh failed")
            await asyncio.sleep(self._interval)

    async def refresh(self) -> None:
        sessions = await repository.count_open_sessions(self._pool)
        for status in _SESSION_STATUSES:
            SESSIONS.labels(status).set(sessions.get(status, 0))
        decks = await repository.count_decks(self._pool)
        for status in _DECK_STATUSES:
            DECKS.labels(status).set(decks.get(status, 0))

        view = await fleet_view(
            self._pool,
            self._store,
            policy_from(self._settings),
            self._settings.fleet_dispatch_window_seconds,
        )
        FLEET_WORKERS.labels("ready").set(view.ready_workers)
        FLEET_WORKERS.labels("draining").set(view.draining_workers)
        FLEET_DESIRED.set(view.desired_workers)
        FLEET_SESSIONS.set(view.active_sessions)
        FLEET_FREE_SLOTS.set(view.free_slots)
        FLEET_IDLE.set(view.idle_processes)
        FLEET_ON_DRAINING.set(view.sessions_on_draining_workers)
        FLEET_ON_READY.set(view.sessions_on_ready_workers)
        FLEET_WAITING.set(view.sessions_waiting)
        FLEET_QUEUED.set(view.sessions_queued)
        # Tenant ids only where Prometheus alone reads them: /metrics on the API port needs no
        # key, and one tenant must not learn another's id or load there (/v1/fleet has them).
        by_tenant = view.sessions_by_tenant if self._settings.metrics_port is not None else {}
        for gone in self._tenants - by_tenant.keys():
            TENANT_SESSIONS.remove(gone)
        for tenant, n in by_tenant.items():
            TENANT_SESSIONS.labels(tenant).set(n)
        self._tenants = set(by_tenant)

        if await self._hold_lease():
            await self._observe_completions()

    async def _hold_lease(self) -> bool:
        ttl_ms = int(self._interval * 3 * 1000)
        if await self._redis.set(_LEASE_KEY, self._owner, nx=True, px=ttl_ms):
            return True
        if await self._redis.get(_LEASE_KEY) == self._owner:
            await self._redis.pexpire(_LEASE_KEY, ttl_ms)
            return True
        return False

    async def _observe_completions(self) -> None:
        joins_after = await self._watermark(_JOIN_MARK)
        joins = await repository.joins_since(self._pool, joins_after)
        for _, seconds in joins:
            JOIN_SECONDS.observe(max(seconds, 0.0))
        if joins:
            await self._redis.set(_JOIN_MARK, joins[-1][0].isoformat())

        ingest_after = await self._watermark(_INGEST_MARK)
        ingested = await repository.ingested_since(self._pool, ingest_after)
        for _, seconds, slides in ingested:
            INGEST_SECONDS.observe(max(seconds, 0.0))
            INGESTED_SLIDES.inc(slides)
        if ingested:
            await self._redis.set(_INGEST_MARK, ingested[-1][0].isoformat())

        turns = await repository.turn_timings_since(self._pool, await self._turn_watermark())
        for _, e2e, stages in turns:
            if e2e is not None:
                TURN_SECONDS.observe(e2e)
            for stage, seconds in stages.items():
                TURN_STAGE_SECONDS.labels(stage.removesuffix("_delay")).observe(seconds)
        if turns:
            await self._redis.set(_TURN_MARK, str(turns[-1][0]))

    async def _turn_watermark(self) -> int:
        """The last turn id observed; a fresh Redis starts at the newest.

        Ids follow insertion, not commit: a turn whose transaction commits after a higher id
        was observed is skipped. Rare (one job writes a session's turns in order) and only a
        metric; the turn log itself is complete.
        """
        value = await self._redis.get(_TURN_MARK)
        if value is None:
            await self._redis.set(
                _TURN_MARK, str(await repository.last_turn_id(self._pool)), nx=True
            )
            value = await self._redis.get(_TURN_MARK)
        return int(value) if value is not None else 0

    async def _watermark(self, key: str) -> datetime:
        """Where the last observer stopped; a fresh Redis starts now (history is not replayed)."""
        value = await self._redis.get(key)
        if value is None:
            now = datetime.now(UTC)
            # set-if-absent: two replicas racing for a fresh Redis agree on one start
            await self._redis.set(key, now.isoformat(), nx=True)
            value = await self._redis.get(key)
        if value is None:
            return datetime.now(UTC)
        return datetime.fromisoformat(value.decode() if isinstance(value, bytes) else value)
