"""``GET /v1/sessions/{id}/analytics``, ``GET /v1/decks/{id}/analytics`` and the read-only link
to a deck's analytics page (``POST /v1/decks/{id}/analytics/link``).

The deck route takes a tenant key with ``records:read`` or that deck's analytics link (see
link.py); the others take a key only.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request

from control_plane.analytics import link
from control_plane.analytics.schemas import (
    AnalyticsLink,
    DeckAnalytics,
    LinkRequest,
    SessionAnalytics,
)
from control_plane.analytics.service import AnalyticsService, time_range
from control_plane.decks import repository as decks
from control_plane.deps import Bearer, Decks, Pool, Settings, Signer, TenantId, requires
from control_plane.errors import Forbidden, NotFound, Unauthorized
from control_plane.keys import repository as keys
from control_plane.keys.schemas import Scope
from control_plane.keys.service import Caller, authenticate
from shared.credentials import CredentialError

router = APIRouter(tags=["analytics"])
READ: Scope = "records:read"


def _service(pool: Pool, decks: Decks, signer: Signer) -> AnalyticsService:
    return AnalyticsService(pool, decks.embedder, signer)


Service = Annotated[AnalyticsService, Depends(_service)]


async def _deck_reader(
    request: Request, pool: Pool, settings: Settings, credentials: Bearer, deck_id: UUID
) -> UUID:
    """The tenant whose deck analytics the caller may read: a key with records:read, or this
    deck's analytics link while its minting key works."""
    if credentials is None:
        raise Unauthorized("Missing credential. Send 'Authorization: Bearer <api key or link>'.")
    token = credentials.credentials
    request.state.required_scope = READ  # the read is audited either way
    if link.looks_like_link(token):
        try:
            claims = link.verify(settings.asset_url_key_ring(), token)
        except CredentialError as exc:
            raise Unauthorized("The analytics link is invalid or has expired.") from exc
        key = await keys.get(pool, claims.tenant_id, claims.key_id)
        if key is None or (key["revoked_at"] is not None and key["revoked_at"] <= _now()):
            raise Unauthorized("The key that made this analytics link has been revoked.")
        if claims.deck_id != deck_id:
            raise NotFound(f"Deck {deck_id} was not found.")
        request.state.caller = Caller(claims.tenant_id, claims.key_id, frozenset({READ}))
        return claims.tenant_id
    caller = await authenticate(pool, token, request.state.key_cache)
    if caller is None:
        raise Unauthorized("The API key is not valid or has been revoked.")
    request.state.caller = caller
    if READ not in caller.scopes:
        raise Forbidden(
            f"This API key lacks the '{READ}' scope, which this route needs; use a key that "
            "has it (an admin key can create one: POST /v1/keys)."
        )
    return caller.tenant_id


DeckReader = Annotated[UUID, Depends(_deck_reader)]


def _now() -> datetime:
    return datetime.now(UTC)


@router.get("/v1/decks/{deck_id}/analytics")
async def deck_analytics(
    tenant_id: DeckReader,
    service: Service,
    deck_id: UUID,
    since: Annotated[
        datetime | None,
        Query(alias="from", description="Sessions created from (default: 30 days before 'to')."),
    ] = None,
    until: Annotated[
        datetime | None, Query(alias="to", description="…until, excluded (default: now).")
    ] = None,
) -> DeckAnalytics:
    """The deck's sessions in the range: time, questions and interruptions per slide, content
    gaps, navigation, escalations, completion and drop-off (at most 500 sessions, the newest;
    the range at most 366 days)."""
    start, end = time_range(since, until, _now())
    return await service.for_deck(tenant_id, deck_id, start, end)


@router.get("/v1/sessions/{session_id}/analytics", dependencies=[requires(READ)])
async def session_analytics(
    tenant_id: TenantId, service: Service, session_id: UUID
) -> SessionAnalytics:
    """One session: the same figures as a deck's, for it alone."""
    return await service.for_session(tenant_id, session_id)


@router.post("/v1/decks/{deck_id}/analytics/link", status_code=201, dependencies=[requires(READ)])
async def analytics_link(
    request: Request,
    tenant_id: TenantId,
    pool: Pool,
    settings: Settings,
    deck_id: UUID,
    body: LinkRequest | None = None,
) -> AnalyticsLink:
    """A read-only link to the deck's analytics page, for people without a key: valid for
    ``ttl_seconds`` (1 h by default, at most a day) or until the key that made it is revoked."""
    if await decks.get_for_tenant(pool, tenant_id, deck_id) is None:
        raise NotFound(f"Deck {deck_id} was not found.")
    ttl = (body or LinkRequest()).ttl_seconds
    expires = int(time.time()) + ttl
    caller: Caller = request.state.caller
    token = link.mint(
        settings.asset_url_key_ring(), link.LinkClaims(tenant_id, deck_id, caller.key_id, expires)
    )
    return AnalyticsLink(
        deck_id=deck_id,
        url=f"{settings.public_url.rstrip('/')}/analytics/{deck_id}#token={token}",
        token=token,
        expires_at=datetime.fromtimestamp(expires, UTC),
    )
