"""The tenant limits as FastAPI dependencies: one parameter on each route they guard.

Each answers ``429`` (``rate_limited`` or ``limit_exceeded``) with ``Retry-After`` and a message
naming the limit and its value. Rates are counted when asked, whatever the route then answers;
requests that fail validation (422) are refused before they are counted.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated
from uuid import UUID

import asyncpg
from fastapi import Depends, Request

from control_plane.deps import Pool, Settings, TenantId, WorkerSessionId
from control_plane.limits import service
from control_plane.limits.limiter import RateLimiter
from control_plane.limits.service import check_rate, limits_for
from control_plane.slides import repository as slides
from shared.evaluation import EvalRequest
from shared.settings import ControlPlaneSettings

# Beyond the parse itself, an upload may wait for a parse slot, send its body slowly and be
# stored. The check is given back when the request ends; this bounds it only if a replica dies.
_UPLOAD_CHECK_MARGIN_S = 180.0


async def _limiter(request: Request) -> RateLimiter:
    limiter: RateLimiter = request.app.state.limiter
    return limiter


Limiter = Annotated[RateLimiter, Depends(_limiter)]


async def _session_creations(
    tenant_id: TenantId, pool: Pool, settings: Settings, limiter: Limiter
) -> None:
    limit = (await limits_for(pool, tenant_id, settings)).sessions_per_minute
    await check_rate(limiter, "sessions_per_minute", limit, f"tenant:{tenant_id}")


SessionCreationLimit = Annotated[None, Depends(_session_creations)]


async def _uploads(
    tenant_id: TenantId, pool: Pool, settings: Settings, limiter: Limiter
) -> AsyncIterator[None]:
    limits = await limits_for(pool, tenant_id, settings)
    hold_s = settings.parse_timeout_seconds + _UPLOAD_CHECK_MARGIN_S
    # In flight first: a refused upload then costs none of the hour's allowance.
    async with service.upload_slot(pool, tenant_id, limits.uploads_in_flight, hold_s):
        await check_rate(
            limiter, "uploads_per_hour", limits.uploads_per_hour, f"tenant:{tenant_id}"
        )
        yield


# scope="function": the slot is given back before the answer is sent, so a client's next
# upload never finds its previous one still counted twice (as a check and as a pending deck).
UploadLimit = Annotated[None, Depends(_uploads, scope="function")]


async def _searches(tenant_id: TenantId, pool: Pool, settings: Settings, limiter: Limiter) -> None:
    limit = (await limits_for(pool, tenant_id, settings)).searches_per_second
    await check_rate(limiter, "searches_per_second", limit, f"tenant:{tenant_id}")


SearchLimit = Annotated[None, Depends(_searches)]


async def _evaluation_searches(
    tenant_id: TenantId, pool: Pool, settings: Settings, limiter: Limiter, body: EvalRequest
) -> None:
    """One search per question (a batch above the limit waits for a whole window)."""
    limit = (await limits_for(pool, tenant_id, settings)).searches_per_second
    await check_rate(
        limiter, "searches_per_second", limit, f"tenant:{tenant_id}", cost=len(body.questions)
    )


EvaluationLimit = Annotated[None, Depends(_evaluation_searches)]


async def _presenter_searches(
    session_id: UUID, scope: WorkerSessionId, pool: Pool, settings: Settings, limiter: Limiter
) -> None:
    """Per session, so a tenant's API searches never leave its live presenters without."""
    tenant_id = await service.session_tenant(pool, session_id)
    if scope != session_id or tenant_id is None:
        return  # the route answers 404
    limit = (await limits_for(pool, tenant_id, settings)).searches_per_second
    await check_rate(limiter, "searches_per_second", limit, f"session:{session_id}")


PresenterSearchLimit = Annotated[None, Depends(_presenter_searches)]


@dataclass(frozen=True)
class SlideChangeGate:
    """Counts a slide change against its session's ``slide_changes_per_second``.

    The presenter's changes have a window of their own: people clicking fast (the API, the
    join page) can be refused, never the narration. A change refused by the limit but whose
    ``Idempotency-Key`` already applied goes through: it is a retry, answered from its record.
    """

    pool: asyncpg.Pool
    settings: ControlPlaneSettings
    limiter: RateLimiter
    idempotency_key: str | None

    async def __call__(
        self, session_id: UUID, *, tenant_id: UUID | None = None, presenter: bool = False
    ) -> None:
        owner = await service.session_tenant(self.pool, session_id)
        if owner is None or (tenant_id is not None and owner != tenant_id):
            return  # the route answers 404; nobody spends another tenant's allowance
        limit = (await limits_for(self.pool, owner, self.settings)).slide_changes_per_second
        window = f"session:{session_id}:{'presenter' if presenter else 'people'}"
        wait = await self.limiter.hit("slide_changes_per_second", limit, window)
        if wait is None:
            return
        key = self.idempotency_key
        if key and await slides.by_idempotency_key(self.pool, session_id, key) is not None:
            return
        raise service.refused("slide_changes_per_second", limit, wait)


async def _slide_gate(
    request: Request, pool: Pool, settings: Settings, limiter: Limiter
) -> SlideChangeGate:
    # Read as sent: the route itself validates the header.
    return SlideChangeGate(pool, settings, limiter, request.headers.get("Idempotency-Key"))


SlideGate = Annotated[SlideChangeGate, Depends(_slide_gate)]


async def _api_slide_changes(session_id: UUID, tenant_id: TenantId, gate: SlideGate) -> None:
    await gate(session_id, tenant_id=tenant_id)


async def _presenter_slide_changes(
    session_id: UUID, scope: WorkerSessionId, gate: SlideGate
) -> None:
    if scope == session_id:
        await gate(session_id, presenter=True)


ApiSlideChangeLimit = Annotated[None, Depends(_api_slide_changes)]
PresenterSlideChangeLimit = Annotated[None, Depends(_presenter_slide_changes)]
