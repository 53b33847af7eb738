"""The fleet's wire format: worker heartbeats, the fleet view, and the worker's fleet credential.

Workers post a :class:`WorkerHeartbeat` to the control plane every few seconds; the control plane
keeps each one in Redis with a TTL, so a worker that dies simply ages out. The credential is an
HS256 JWT over the fleet key ring (``PODIUM_FLEET_KEYS``, the one key ring workers hold), scoped
to one worker name and to the fleet routes only: it cannot read or change any session.
"""

from __future__ import annotations

import math
import time
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from shared.credentials import CredentialError, decode, sign
from shared.keyring import KeyRing

_AUDIENCE = "podium-fleet"
_ISSUER = "podium-worker"
WORKER_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"


class WorkerHeartbeat(BaseModel):
    """What a worker says about itself (worker → control plane)."""

    model_config = ConfigDict(extra="forbid")

    worker: str = Field(pattern=WORKER_NAME_PATTERN, description="Pod name, or host:pid.")
    livekit_worker_id: str = Field(default="", max_length=128)
    agent_name: str = Field(max_length=128)
    max_sessions: int = Field(ge=1, le=10_000)
    active_jobs: int = Field(ge=0, le=10_000)
    idle_processes: int = Field(ge=0, le=10_000)
    load: float = Field(ge=0, le=1)
    draining: bool
    rooms: list[Annotated[str, Field(max_length=256)]] = Field(
        default_factory=list, max_length=10_000
    )


class WorkerStatus(WorkerHeartbeat):
    """A heartbeat as the control plane saw it (control plane → ops)."""

    model_config = ConfigDict(extra="ignore")

    seen_at: datetime


class FleetPolicy(BaseModel):
    """How the desired worker count is derived; see :func:`desired_workers`."""

    sessions_per_worker: int = Field(ge=1)
    headroom_sessions: int = Field(ge=0)
    headroom_ratio: float = Field(ge=0)
    min_workers: int = Field(ge=0)
    max_workers: int = Field(ge=1)


class FleetView(BaseModel):
    """``GET /v1/fleet``: the workers alive now and how many there should be."""

    active_sessions: int = Field(
        description="Sessions not ended in Postgres (includes ones whose room was abandoned)."
    )
    sessions_on_ready_workers: int = Field(description="Jobs running on ready workers.")
    sessions_on_draining_workers: int = Field(description="Jobs finishing on draining workers.")
    sessions_waiting: int = Field(
        description="Sessions created within the dispatch window that no worker runs yet."
    )
    ready_workers: int = Field(description="Heartbeating and not draining.")
    draining_workers: int
    free_slots: int = Field(description="Session slots free on ready workers.")
    idle_processes: int = Field(description="Prewarmed job processes on ready workers.")
    sessions_queued: int = Field(
        default=0, description="Session creations waiting for a free slot right now (admission)."
    )
    sessions_by_tenant: dict[str, int] = Field(
        default_factory=dict,
        description="Open sessions (each holding or awaiting a slot) by tenant id.",
    )
    desired_workers: int = Field(
        description="What the autoscaler should run (KEDA reads this): sessions on ready "
        "workers, waiting ones and queued creations, plus headroom."
    )
    policy: FleetPolicy
    workers: list[WorkerStatus]


def desired_workers(active_sessions: int, policy: FleetPolicy) -> int:
    """Workers needed for ``active_sessions`` plus warm headroom, within the policy's bounds.

    Headroom is the larger of a fixed number of free session slots and a share of the sessions
    running, so a quiet fleet still has a warm slot and a busy one grows its margin with load.
    The caller counts the sessions that need a slot now: those running on ready workers and
    those waiting for one. Sessions on draining workers are left out: those pods are leaving
    and their replacements need not hold them.
    """
    active = max(active_sessions, 0)
    headroom = max(policy.headroom_sessions, math.ceil(active * policy.headroom_ratio))
    needed = math.ceil((active + headroom) / policy.sessions_per_worker)
    return max(policy.min_workers, min(policy.max_workers, needed))


def mint_worker_credential(keys: KeyRing | str, worker: str, ttl_seconds: int = 120) -> str:
    now = int(time.time())
    claims = {
        "sub": worker,
        "aud": _AUDIENCE,
        "iss": _ISSUER,
        "iat": now,
        "exp": now + ttl_seconds,
        "scope": "fleet",
    }
    return sign(keys, claims)


def verify_worker_credential(keys: KeyRing | str, token: str) -> str:
    """Return the worker name the credential speaks for."""
    claims = decode(keys, token, audience=_AUDIENCE, issuer=_ISSUER)
    if claims.get("scope") != "fleet" or "sub" not in claims:
        raise CredentialError("not a fleet credential")
    return str(claims["sub"])
