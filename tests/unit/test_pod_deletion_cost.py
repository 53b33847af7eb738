"""Scale-down picks idle workers: the control plane patches worker pods'
``controller.kubernetes.io/pod-deletion-cost`` from their heartbeats, through a local server
that speaks the Kubernetes API's pod PATCH (bearer token, JSON merge patch, 404 for a gone pod).
A ReplicaSet that shrinks removes the pods of lowest cost first; the test replays that choice.
"""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp import web

from control_plane.fleet.deletion_cost import (
    ANNOTATION,
    DeletionCostSync,
    PodAnnotator,
    deletion_costs,
)
from shared.fleet import WorkerStatus

pytestmark = pytest.mark.unit

TOKEN = "test-service-account-token"
NAMESPACE = "podium"


@dataclass
class FakeApiServer:
    pods: dict[str, dict[str, Any]]
    patches: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    async def patch_pod(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return web.json_response({"kind": "Status", "code": 401}, status=401)
        if request.headers.get("Content-Type") != "application/merge-patch+json":
            return web.json_response({"kind": "Status", "code": 415}, status=415)
        name = request.match_info["name"]
        if request.match_info["namespace"] != NAMESPACE or name not in self.pods:
            return web.json_response({"kind": "Status", "code": 404}, status=404)
        patch = await request.json()
        self.patches.append((name, patch))
        _merge(self.pods[name], patch)
        return web.json_response(self.pods[name])

    def scale_down_victims(self, count: int) -> list[str]:
        """The pods a ReplicaSet shrinking by ``count`` deletes: lowest deletion cost first
        (absent is 0); among equals the newest goes first."""

        def rank(name: str) -> tuple[int, float]:
            meta = self.pods[name]["metadata"]
            return int(meta.get("annotations", {}).get(ANNOTATION, "0")), -meta["created"]

        return sorted(self.pods, key=rank)[:count]


def _merge(target: dict[str, Any], patch: dict[str, Any]) -> None:
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        elif value is None:
            target.pop(key, None)
        else:
            target[key] = copy.deepcopy(value)


def _pod(name: str, created: float) -> dict[str, Any]:
    return {"kind": "Pod", "metadata": {"name": name, "namespace": NAMESPACE, "created": created}}


def _worker(name: str, jobs: int, *, draining: bool = False) -> WorkerStatus:
    return WorkerStatus(
        worker=name,
        agent_name="podium-presenter",
        max_sessions=4,
        active_jobs=jobs,
        idle_processes=1,
        load=jobs / 4,
        draining=draining,
        rooms=[f"podium-{name}-{i}" for i in range(jobs)],
        seen_at=datetime.now(UTC),
    )


@pytest.fixture
async def api() -> AsyncIterator[tuple[FakeApiServer, PodAnnotator]]:
    # the busiest workers are the newest pods: without costs, a scale-down would drain them
    server = FakeApiServer(
        pods={
            "podium-worker-a": _pod("podium-worker-a", created=1),
            "podium-worker-b": _pod("podium-worker-b", created=2),
            "podium-worker-c": _pod("podium-worker-c", created=3),
            "podium-worker-d": _pod("podium-worker-d", created=4),
        }
    )
    app = web.Application()
    app.router.add_patch("/api/v1/namespaces/{namespace}/pods/{name}", server.patch_pod)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    annotator = PodAnnotator(f"http://127.0.0.1:{port}", NAMESPACE, TOKEN)
    try:
        yield server, annotator
    finally:
        await annotator.aclose()
        await runner.cleanup()


def test_costs_are_session_counts_and_skip_draining_and_non_pod_workers() -> None:
    costs = deletion_costs(
        [
            _worker("podium-worker-a", 0),
            _worker("podium-worker-b", 3),
            _worker("podium-worker-c", 2, draining=True),
            _worker("laptop:4242", 1),
        ]
    )
    assert costs == {"podium-worker-a": 0, "podium-worker-b": 3}


async def test_scale_down_removes_the_idle_workers(
    api: tuple[FakeApiServer, PodAnnotator],
) -> None:
    server, annotator = api
    assert server.scale_down_victims(2) == ["podium-worker-d", "podium-worker-c"]  # blindly
    sync = DeletionCostSync(annotator)
    workers = [
        _worker("podium-worker-a", 0),
        _worker("podium-worker-b", 1),
        _worker("podium-worker-c", 4),
        _worker("podium-worker-d", 3),
    ]
    assert await sync.sync(workers) == 4
    assert server.pods["podium-worker-c"]["metadata"]["annotations"] == {ANNOTATION: "4"}
    assert server.scale_down_victims(2) == ["podium-worker-a", "podium-worker-b"]

    # nothing changed: no pod update (Kubernetes advises against frequent ones)
    assert await sync.sync(workers) == 0
    assert len(server.patches) == 4

    # worker a takes two sessions, c finishes all of its: only those two are patched
    workers[0] = _worker("podium-worker-a", 2)
    workers[2] = _worker("podium-worker-c", 0)
    assert await sync.sync(workers) == 2
    assert [name for name, _ in server.patches[4:]] == ["podium-worker-a", "podium-worker-c"]
    assert server.scale_down_victims(1) == ["podium-worker-c"]


async def test_a_gone_pod_is_skipped_and_a_refused_patch_is_retried(
    api: tuple[FakeApiServer, PodAnnotator],
) -> None:
    server, annotator = api
    del server.pods["podium-worker-b"]  # deleted since its last heartbeat
    sync = DeletionCostSync(annotator)
    workers = [_worker("podium-worker-a", 1), _worker("podium-worker-b", 2)]
    assert await sync.sync(workers) == 1
    assert server.pods["podium-worker-a"]["metadata"]["annotations"] == {ANNOTATION: "1"}

    # a token the API server refuses: nothing counts as written, the next pass tries again
    refused = PodAnnotator(annotator._client.base_url.__str__(), NAMESPACE, "wrong-token")
    try:
        failing = DeletionCostSync(refused)
        assert await failing.sync([_worker("podium-worker-c", 3)]) == 0
        assert "annotations" not in server.pods["podium-worker-c"]["metadata"]
    finally:
        await refused.aclose()
    assert await sync.sync([_worker("podium-worker-c", 3)]) == 1
    assert server.pods["podium-worker-c"]["metadata"]["annotations"] == {ANNOTATION: "3"}
