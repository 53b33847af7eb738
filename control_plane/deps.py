"""Request dependencies: one-line ``Annotated`` aliases for what routes need."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, TypedDict
from uuid import UUID

import asyncpg
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from redis.asyncio import Redis

from control_plane.decks.service import DeckService
from control_plane.errors import POSTGRES_UNAVAILABLE, Forbidden, Unauthorized
from control_plane.fleet.admission import Admission
from control_plane.keys.schemas import Scope
from control_plane.keys.service import Caller, KeyCache, authenticate
from control_plane.livekit_gateway import LiveKitGateway
from control_plane.sessions.credentials import check_binding
from control_plane.storage import AssetStorage, UrlSigner
from shared.credentials import CredentialError, SessionClaims, verify_session_credential
from shared.settings import ControlPlaneSettings


class AppState(TypedDict):
    settings: ControlPlaneSettings
    pool: asyncpg.Pool
    redis: Redis
    livekit: LiveKitGateway
    decks: DeckService
    signer: UrlSigner
    storage: AssetStorage
    key_cache: KeyCache
    admission: Admission | None


# Dependencies are ``async def`` even when they only read app state: FastAPI runs a plain
# ``def`` one in its thread pool, a thread hop (and GIL hand-over) per dependency per request.
async def _settings(request: Request) -> ControlPlaneSettings:
    settings: ControlPlaneSettings = request.state.settings
    return settings


async def _pool(request: Request) -> asyncpg.Pool:
    pool: asyncpg.Pool = request.state.pool
    return pool


async def _redis(request: Request) -> Redis:
    redis: Redis = request.state.redis
    return redis


async def _livekit(request: Request) -> LiveKitGateway:
    gateway: LiveKitGateway = request.state.livekit
    return gateway


async def _decks(request: Request) -> DeckService:
    decks: DeckService = request.state.decks
    return decks


async def _admission(request: Request) -> Admission | None:
    admission: Admission | None = request.state.admission
    return admission


async def _signer(request: Request) -> UrlSigner:
    signer: UrlSigner = request.state.signer
    return signer


async def _storage(request: Request) -> AssetStorage:
    storage: AssetStorage = request.state.storage
    return storage


Decks = Annotated[DeckService, Depends(_decks)]
AdmissionControl = Annotated[Admission | None, Depends(_admission)]
Signer = Annotated[UrlSigner, Depends(_signer)]
Storage = Annotated[AssetStorage, Depends(_storage)]
Settings = Annotated[ControlPlaneSettings, Depends(_settings)]
Pool = Annotated[asyncpg.Pool, Depends(_pool)]
RedisClient = Annotated[Redis, Depends(_redis)]
LiveKit = Annotated[LiveKitGateway, Depends(_livekit)]

_bearer = HTTPBearer(auto_error=False)
Bearer = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


async def _key_cache(request: Request) -> KeyCache:
    cache: KeyCache = request.state.key_cache
    return cache


ApiKeyCache = Annotated[KeyCache, Depends(_key_cache)]


async def _caller(request: Request, pool: Pool, credentials: Bearer) -> Caller:
    if credentials is None:
        raise Unauthorized("Missing API key. Send 'Authorization: Bearer <api key>'.")
    caller = await authenticate(pool, credentials.credentials, request.state.key_cache)
    if caller is None:
        raise Unauthorized("The API key is not valid or has been revoked.")
    request.state.caller = caller  # for the audit trail (control_plane.audit.recorder)
    return caller


# FastAPI resolves a dependency once per request: a route that needs both the caller's tenant
# and a scope authenticates its key once.
ApiCaller = Annotated[Caller, Depends(_caller)]


async def _tenant_id(caller: ApiCaller) -> UUID:
    return caller.tenant_id


TenantId = Annotated[UUID, Depends(_tenant_id)]


def requires(scope: Scope) -> Any:
    """A dependency for a router's (or route's) ``dependencies=[...]``: the caller's key must
    hold ``scope``, else ``403 forbidden`` naming it."""

    async def check(request: Request, caller: ApiCaller) -> None:
        request.state.required_scope = scope  # which reads the audit trail keeps
        if scope not in caller.scopes:
            raise Forbidden(
                f"This API key lacks the '{scope}' scope, which this route needs; use a key "
                "that has it (an admin key can create one: POST /v1/keys)."
            )

    return Depends(check)


async def _worker_claims(
    request: Request, settings: Settings, pool: Pool, credentials: Bearer
) -> SessionClaims:
    """A session credential signed by our ring, of the session's current dispatch (else ``409
    superseded``); a write (any method but GET) once the session's records closed is ``409
    session_ended``."""
    claims = _verified(settings, credentials)
    await check_binding(pool, settings, claims, write=request.method not in ("GET", "HEAD"))
    return claims


def _verified(
    settings: ControlPlaneSettings, credentials: HTTPAuthorizationCredentials | None
) -> SessionClaims:
    if credentials is None:
        raise Unauthorized("Missing worker credential.")
    try:
        return verify_session_credential(
            settings.session_credential_key_ring(), credentials.credentials
        )
    except CredentialError as exc:
        raise Unauthorized("The worker credential is invalid or expired.") from exc


WorkerClaims = Annotated[SessionClaims, Depends(_worker_claims)]


@dataclass(frozen=True)
class Reporter:
    """A presenting job's liveness report: its verified credential, and whether the credential's
    dispatch was checked against Postgres (False while Postgres is away)."""

    claims: SessionClaims
    bound: bool


async def _reporter(settings: Settings, pool: Pool, credentials: Bearer) -> Reporter:
    claims = _verified(settings, credentials)
    try:
        await check_binding(pool, settings, claims, write=True)
    except POSTGRES_UNAVAILABLE:
        return Reporter(claims, bound=False)
    return Reporter(claims, bound=True)


JobReporter = Annotated[Reporter, Depends(_reporter)]


async def _worker_session_id(claims: WorkerClaims) -> UUID:
    return claims.session_id


WorkerSessionId = Annotated[UUID, Depends(_worker_session_id)]
