"""Scale-down picks the emptiest workers: each worker pod's ``pod-deletion-cost`` follows its load.

A ReplicaSet that shrinks deletes the pods with the lowest
``controller.kubernetes.io/pod-deletion-cost`` first (absent counts as 0). Without it Kubernetes
removes the newest pods, so a scale-down could drain a busy worker for up to 30 minutes while
an idle one stays. The control plane already holds every worker's session count (heartbeats),
so one loop per replica sets the annotation to that count, patching only the pods whose count
changed since this replica last wrote it: a pod update per change in a worker's session count
at most, not per heartbeat (Kubernetes advises against frequent updates of the annotation).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Iterable
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import httpx
from redis.asyncio import Redis

from control_plane.background import BackgroundLoop
from control_plane.fleet.store import HeartbeatStore
from shared.fleet import WorkerStatus
from shared.settings import ControlPlaneSettings

logger = logging.getLogger(__name__)

ANNOTATION = "controller.kubernetes.io/pod-deletion-cost"
SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")


def deletion_costs(workers: Iterable[WorkerStatus]) -> dict[str, int]:
    """Pod name → deletion cost: the sessions it runs, so idle workers go first.

    A draining worker is already leaving (its pod is terminating): it gets no cost. Heartbeats
    from outside Kubernetes (``host:pid`` names) are no pods and are left out.
    """
    return {
        w.worker: max(w.active_jobs, len(w.rooms))
        for w in workers
        if not w.draining and ":" not in w.worker
    }


class KubernetesError(Exception):
    """The API server refused a patch (other than the pod being gone)."""


class PodAnnotator:
    """The Kubernetes API as this control plane's service account sees it: pod patches only."""

    def __init__(
        self,
        base_url: str,
        namespace: str,
        token: str,
        *,
        verify: str | bool = True,
        timeout_s: float = 5.0,
    ) -> None:
        self.namespace = namespace
        self._client = httpx.AsyncClient(
            base_url=base_url,
            headers={"Authorization": f"Bearer {token}"},
            verify=verify,
            timeout=timeout_s,
        )

    @classmethod
    def in_cluster(cls, root: Path = SERVICE_ACCOUNT) -> PodAnnotator:
        """From the pod's mounted service-account token, CA and namespace."""
        host = os.environ["KUBERNETES_SERVICE_HOST"]
        port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
        host = f"[{host}]" if ":" in host else host
        return cls(
            f"https://{host}:{port}",
            (root / "namespace").read_text().strip(),
            (root / "token").read_text().strip(),
            verify=str(root / "ca.crt"),
        )

    async def set_deletion_cost(self, pod: str, cost: int) -> bool:
        """Patch one pod's annotation; False when the pod no longer exists."""
        body = {"metadata": {"annotations": {ANNOTATION: str(cost)}}}
        return await self._request(
            "PATCH",
            f"/api/v1/namespaces/{self.namespace}/pods/{pod}",
            json=body,
            headers={"Content-Type": "application/merge-patch+json"},
        )

    async def _request(self, method: str, path: str, **kwargs: object) -> bool:
        try:
            response = await self._client.request(method, path, **kwargs)  # type: ignore[arg-type]
        except httpx.HTTPError as exc:
            raise KubernetesError(f"{method} {path}: {exc}") from exc
        if response.status_code == 404:
            return False
        if response.status_code >= 400:
            raise KubernetesError(f"{method} {path}: {response.status_code} {response.text[:200]}")
        return True

    async def aclose(self) -> None:
        await self._client.aclose()


class DeletionCostSync:
    """Brings pods' annotations in line with the heartbeats, patching only what changed."""

    def __init__(self, annotator: PodAnnotator) -> None:
        self._annotator = annotator
        self._written: dict[str, int] = {}

    async def sync(self, workers: Iterable[WorkerStatus]) -> int:
        """One pass; returns how many pods were patched."""
        wanted = deletion_costs(workers)
        patched = 0
        for pod, cost in sorted(wanted.items()):
            if self._written.get(pod) == cost:
                continue
            try:
                exists = await self._annotator.set_deletion_cost(pod, cost)
            except KubernetesError:
                logger.warning("pod deletion cost not set", extra={"pod": pod}, exc_info=True)
                continue  # tried again next pass: nothing is remembered as written
            if exists:
                self._written[pod] = cost
                patched += 1
        # pods that left the view are forgotten, so a pod name reused later is patched again
        self._written = {pod: c for pod, c in self._written.items() if pod in wanted}
        return patched


class DeletionCostUpdater(BackgroundLoop):
    name = "pod_deletion_cost"

    def __init__(self, store: HeartbeatStore, annotator: PodAnnotator, interval_s: float) -> None:
        self._store = store
        self._annotator = annotator
        self._sync = DeletionCostSync(annotator)
        self._interval_s = interval_s

    async def _run(self) -> None:
        while True:
            try:
                await self._sync.sync(await self._store.alive())
            except Exception:
                logger.exception("pod deletion cost pass failed")
            await asyncio.sleep(self._interval_s)

    async def _after_stop(self) -> None:
        await self._annotator.aclose()


def deletion_cost_loop(
    redis: Redis, settings: ControlPlaneSettings
) -> AbstractAsyncContextManager[object]:
    """The updater when ``PODIUM_FLEET_DELETION_COST`` is on (in a cluster), else nothing."""
    if not settings.fleet_deletion_cost:
        return contextlib.nullcontext()
    return DeletionCostUpdater(
        HeartbeatStore(redis, settings.fleet_heartbeat_ttl_seconds),
        PodAnnotator.in_cluster(),
        settings.fleet_deletion_cost_interval_seconds,
    )
