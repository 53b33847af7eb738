"""The fleet view: live workers from Redis, open sessions from Postgres, the desired count."""

from __future__ import annotations

import asyncpg

from control_plane.fleet import repository
from control_plane.fleet.store import HeartbeatStore
from shared.fleet import FleetPolicy, FleetView, desired_workers
from shared.settings import ControlPlaneSettings


def policy_from(settings: ControlPlaneSettings) -> FleetPolicy:
    return FleetPolicy(
        sessions_per_worker=settings.fleet_sessions_per_worker,
        headroom_sessions=settings.fleet_headroom_sessions,
        headroom_ratio=settings.fleet_headroom_ratio,
        min_workers=settings.fleet_min_workers,
        max_workers=settings.fleet_max_workers,
    )


async def fleet_view(pool: asyncpg.Pool, store: HeartbeatStore, policy: FleetPolicy) -> FleetView:
    open_sessions = sum((await repository.count_open_sessions(pool)).values())
    workers = await store.alive()
    ready = [w for w in workers if not w.draining]
    draining = [w for w in workers if w.draining]
    on_draining = sum(w.active_jobs for w in draining)
    # Sessions on draining workers stay where they are until they end; the pods replacing
    # those workers only need room for everything else.
    to_serve = max(open_sessions - on_draining, 0)
    return FleetView(
        active_sessions=open_sessions,
        sessions_on_draining_workers=on_draining,
        ready_workers=len(ready),
        draining_workers=len(draining),
        free_slots=sum(max(w.max_sessions - w.active_jobs, 0) for w in ready),
        idle_processes=sum(w.idle_processes for w in ready),
        desired_workers=desired_workers(to_serve, policy),
        policy=policy,
        workers=workers,
    )
