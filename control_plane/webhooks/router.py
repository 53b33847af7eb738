"""/v1/webhooks: integrators' endpoints, their delivery log, and replaying a delivery."""

from __future__ import annotations

import base64
import ipaddress
from datetime import datetime
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query, status

from control_plane.deps import Pool, Settings, TenantId, requires
from control_plane.errors import NotFound, PodiumError
from control_plane.limits.service import check_webhook_endpoints, limits_for
from control_plane.webhooks import repository
from control_plane.webhooks.addresses import allowed, private_urls_allowed
from control_plane.webhooks.schemas import (
    Delivery,
    DeliveryList,
    DeliveryStatus,
    DeliverySummary,
    EndpointCreate,
    EndpointCreated,
    EndpointPublic,
    EventType,
)
from control_plane.webhooks.signing import new_secret

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"], dependencies=[requires("webhooks")])


class UnsafeUrl(PodiumError):
    status_code = 422
    code = "url_not_allowed"


class BadCursor(PodiumError):
    status_code = 422
    code = "invalid_cursor"


def _check_public(host: str | None, allow_private: bool) -> None:
    """Refuse what the URL itself shows to be internal; a name is checked at each delivery."""
    if host is None:
        return
    if not allow_private and (host == "localhost" or host.endswith(".localhost")):
        raise UnsafeUrl("url must point to a public host, not localhost.")
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return
    if not allowed(address, allow_private=allow_private):
        raise UnsafeUrl(f"url must point to a public address; {address} is not one.")


@router.post("/endpoints", status_code=status.HTTP_201_CREATED)
async def create_endpoint(
    tenant_id: TenantId, pool: Pool, settings: Settings, body: EndpointCreate
) -> EndpointCreated:
    """Register an endpoint; its signing secret is in this answer only."""
    _check_public(body.url.host, private_urls_allowed(settings))
    secret = new_secret()
    limit = (await limits_for(pool, tenant_id, settings)).webhook_endpoints
    async with pool.acquire() as conn, conn.transaction():
        await check_webhook_endpoints(conn, tenant_id, limit)
        row = await repository.create_endpoint(
            conn, tenant_id, str(body.url), secret, sorted(set(body.events))
        )
    return EndpointCreated(**_endpoint(row).model_dump(), secret=secret)


@router.get("/endpoints")
async def list_endpoints(tenant_id: TenantId, pool: Pool) -> list[EndpointPublic]:
    return [_endpoint(r) for r in await repository.list_endpoints(pool, tenant_id)]


@router.delete("/endpoints/{endpoint_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_endpoint(tenant_id: TenantId, pool: Pool, endpoint_id: UUID) -> None:
    if not await repository.delete_endpoint(pool, tenant_id, endpoint_id):
        raise NotFound(f"Webhook endpoint {endpoint_id} was not found.")


MAX_PAGE = 200


@router.get("/deliveries")
async def list_deliveries(
    tenant_id: TenantId,
    pool: Pool,
    endpoint_id: UUID | None = None,
    status: DeliveryStatus | None = None,
    event_type: EventType | None = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[
        int, Query(ge=1, le=MAX_PAGE, description=f"Items per page, at most {MAX_PAGE}.")
    ] = 50,
) -> DeliveryList:
    """The delivery log, newest first: every delivery's status and its last attempt's outcome
    (the payload sent: ``GET /v1/webhooks/deliveries/{id}``)."""
    rows = await repository.list_deliveries(
        pool,
        tenant_id,
        endpoint_id=endpoint_id,
        status=status,
        event_type=event_type,
        before=_decode(cursor) if cursor else None,
        limit=limit + 1,
    )
    page = rows[:limit]
    last = page[-1] if len(rows) > limit else None
    return DeliveryList(
        items=[DeliverySummary(**repository.as_dict(r)) for r in page],
        next_cursor=_encode(last["created_at"], last["id"]) if last else None,
    )


@router.get("/deliveries/{delivery_id}")
async def get_delivery(tenant_id: TenantId, pool: Pool, delivery_id: UUID) -> Delivery:
    row = await repository.get_delivery(pool, tenant_id, delivery_id)
    if row is None:
        raise NotFound(f"Webhook delivery {delivery_id} was not found.")
    return Delivery(**repository.as_dict(row))


@router.post("/deliveries/{delivery_id}/replay", status_code=status.HTTP_202_ACCEPTED)
async def replay_delivery(tenant_id: TenantId, pool: Pool, delivery_id: UUID) -> Delivery:
    """Send a delivery again now (same id and payload, a fresh signature and attempt count)."""
    row = await repository.replay(pool, tenant_id, delivery_id)
    if row is None:
        raise NotFound(f"Webhook delivery {delivery_id} was not found.")
    return Delivery(**repository.as_dict(row))


def _endpoint(row: object) -> EndpointPublic:
    data = dict(row)  # type: ignore[call-overload]
    return EndpointPublic(
        endpoint_id=data["id"],
        url=data["url"],
        events=data["events"],
        enabled=data["enabled"],
        created_at=data["created_at"],
    )


def _encode(created_at: datetime, delivery_id: UUID) -> str:
    return base64.urlsafe_b64encode(f"{created_at.isoformat()}|{delivery_id}".encode()).decode()


def _decode(cursor: str) -> tuple[datetime, UUID]:
    try:
        stamp, raw = base64.urlsafe_b64decode(cursor.encode()).decode().split("|")
        return datetime.fromisoformat(stamp), UUID(raw)
    except ValueError as exc:
        raise BadCursor("The cursor is not one this API returned.") from exc
