"""``GET /v1/fleet`` for ops and the autoscaler; heartbeat routes for workers."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import APIRouter, Depends, Path, status

from control_plane.deps import Bearer, Pool, RedisClient, Settings
from control_plane.errors import Forbidden, Unauthorized
from control_plane.fleet.service import fleet_view, policy_from
from control_plane.fleet.store import HeartbeatStore
from shared.credentials import CredentialError
from shared.fleet import WORKER_NAME_PATTERN, FleetView, WorkerHeartbeat, verify_worker_credential

router = APIRouter(tags=["fleet"])


async def _ops(settings: Settings, credentials: Bearer) -> None:
    expected = settings.ops_token.get_secret_value().encode()
    if credentials is None or not hmac.compare_digest(credentials.credentials.encode(), expected):
        raise Unauthorized("The fleet routes need 'Authorization: Bearer <PODIUM_OPS_TOKEN>'.")


async def _worker(settings: Settings, credentials: Bearer) -> str:
    if credentials is None:
        raise Unauthorized("Missing worker fleet credential.")
    try:
        return verify_worker_credential(settings.fleet_key_ring(), credentials.credentials)
    except CredentialError as exc:
        raise Unauthorized("The worker fleet credential is invalid or expired.") from exc


async def _store(redis: RedisClient, settings: Settings) -> HeartbeatStore:
    return HeartbeatStore(redis, settings.fleet_heartbeat_ttl_seconds)


Ops = Annotated[None, Depends(_ops)]
WorkerName = Annotated[str, Depends(_worker)]
Store = Annotated[HeartbeatStore, Depends(_store)]
WorkerPath = Annotated[str, Path(pattern=WORKER_NAME_PATTERN)]


def _check_worker(credential_worker: str, worker: str) -> None:
    if credential_worker != worker:
        raise Forbidden(f"This credential speaks for worker {credential_worker!r}, not {worker!r}.")


@router.get("/v1/fleet")
async def get_fleet(_: Ops, pool: Pool, store: Store, settings: Settings) -> FleetView:
    """Live workers (heartbeats younger than the TTL) and the desired worker count."""
    return await fleet_view(
        pool, store, policy_from(settings), settings.fleet_dispatch_window_seconds
    )


@router.put(
    "/internal/v1/fleet/workers/{worker}",
    status_code=status.HTTP_204_NO_CONTENT,
    include_in_schema=False,
)
async def heartbeat(
    worker: WorkerPath, body: WorkerHeartbeat, credential: WorkerName, store: Store
) -> None:
    _check_worker(credential, worker)
    _check_worker(credential, body.worker)
    await store.put(body)


@router.delete(
    "/internal/v1/fleet/workers/{worker}",
    status_code=status.HTTP_204_NO_CONTENT,
    include_in_schema=False,
)
async def leave(worker: WorkerPath, credential: WorkerName, store: Store) -> None:
    """A worker that exits says so, instead of lingering in the view until its TTL."""
    _check_worker(credential, worker)
    await store.remove(worker)
