"""The fleet view: live workers from Redis, sessions from Postgres, the desired worker count.

Demand is what the workers say they run (heartbeats) plus sessions created moments ago that no
worker has picked up yet, plus creations waiting for a slot (admission's queue). Postgres's
open sessions alone would overcount: a session whose people left without ending it stays open
there, with no job and no need for a slot.
"""

from __future__ import annotations

import asyncpg

from control_plane.fleet import repository
from control_plane.fleet.admission import queued_admissions
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


async def fleet_view(
    pool: asyncpg.Pool, store: HeartbeatStore, policy: FleetPolicy, dispatch_window_s: float
) -> FleetView:
    by_tenant = await repository.sessions_by_tenant(pool)
    waiting = await repository.count_waiting_sessions(pool, dispatch_window_s)
    workers = await store.alive()
    queued = await queued_admissions(store.redis)
    ready = [w for w in workers if not w.draining]
    draining = [w for w in workers if w.draining]
    on_ready = sum(w.active_jobs for w in ready)
    # Sessions on draining workers stay where they are until they end; the pods replacing
    # those workers only need room for everything else.
    return FleetView(
        active_sessions=sum(by_tenant.values()),
        sessions_on_ready_workers=on_ready,
        sessions_on_draining_workers=sum(w.active_jobs for w in draining),
        sessions_waiting=waiting,
        ready_workers=len(ready),
        draining_workers=len(draining),
        free_slots=sum(max(w.max_sessions - w.active_jobs, 0) for w in ready),
        idle_processes=sum(w.idle_processes for w in ready),
        sessions_queued=queued,
        sessions_by_tenant=by_tenant,
        # Creations waiting for a slot are demand the fleet does not see anywhere else.
        desired_workers=desired_workers(on_ready + waiting + queued, policy),
        policy=policy,
        workers=workers,
    )
