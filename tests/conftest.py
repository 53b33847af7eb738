"""Fixtures that start the real parts on free loopback ports: Postgres + pgvector, Redis,
livekit-server, the control plane (as its own process) and, for e2e tests, a worker."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from shared.devstack.services import LiveKit, ManagedProcess, Postgres, Redis, free_port

# The suite never talks to a real provider: scrub keys a developer may have exported.
for _var in list(os.environ):
    if _var.startswith(("PODIUM_", "LIVEKIT_", "OPENAI_", "DEEPGRAM_", "ELEVEN")):
        del os.environ[_var]

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Stack:
    postgres: Postgres
    redis: Redis
    livekit: LiveKit
    logs: Path

    def env(self, **extra: str) -> dict[str, str]:
        return {
            **os.environ,
            "PODIUM_ENVIRONMENT": "test",
            "PODIUM_DATABASE_URL": self.postgres.url(),
            "PODIUM_REDIS_URL": self.redis.url(),
            "PODIUM_LIVEKIT_URL": self.livekit.url,
            **extra,
        }


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    base = tmp_path_factory.mktemp("stack")
    logs = Path(os.environ.get("PODIUM_TEST_LOGS", base / "logs"))
    postgres = Postgres(base / "pg", free_port(), logs / "postgres.log", durable=False)
    redis = Redis(free_port(), logs / "redis.log")
    livekit = LiveKit(free_port(), free_port(), free_port(), logs / "livekit.log")
    services = [postgres, redis, livekit]
    try:
        for svc in services:
            svc.start()
        yield Stack(postgres, redis, livekit, logs)
    finally:
        for svc in reversed(services):
            svc.stop()


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=0.5) as resp:
            return int(resp.status) == 200
    except OSError:
        return False


@dataclass
class ControlPlane:
    url: str
    env: dict[str, str]
    process: ManagedProcess


@pytest.fixture(scope="session")
def control_plane(stack: Stack) -> Iterator[ControlPlane]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = stack.env(PODIUM_PORT=str(port), PODIUM_PUBLIC_URL=url, PODIUM_CONTROL_PLANE_URL=url)
    proc = ManagedProcess(
        "control-plane",
        [sys.executable, "-m", "control_plane", "serve"],
        stack.logs / "control-plane.log",
        env=env,
        cwd=ROOT,
    )
    proc.start()
    try:
        proc.wait_until(lambda: _http_ok(f"{url}/readyz"), 60)
        yield ControlPlane(url, env, proc)
    finally:
        proc.stop()


@dataclass
class Worker:
    health_url: str
    process: ManagedProcess


@pytest.fixture(scope="session")
def worker(stack: Stack, control_plane: ControlPlane) -> Iterator[Worker]:
    port = free_port()
    proc = ManagedProcess(
        "worker",
        [sys.executable, "-m", "agent_worker"],
        stack.logs / "worker.log",
        env={**control_plane.env, "PODIUM_HTTP_PORT": str(port)},
        cwd=ROOT,
    )
    proc.start()
    try:
        proc.wait_until(lambda: _http_ok(f"http://127.0.0.1:{port}/"), 120)
        yield Worker(f"http://127.0.0.1:{port}/", proc)
    finally:
        proc.stop(timeout_s=20)


@dataclass
class Tenant:
    tenant_id: str
    api_key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}


def create_tenant(control_plane: ControlPlane, name: str = "acme") -> Tenant:
    """Through the real CLI, as an operator would."""
    out = subprocess.run(
        [sys.executable, "-m", "control_plane", "admin", "create-tenant", name, "--json"],
        env=control_plane.env,
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    data = json.loads(out.stdout)
    return Tenant(data["tenant_id"], data["api_key"])


@pytest.fixture
def tenant(control_plane: ControlPlane) -> Tenant:
    return create_tenant(control_plane)


@pytest.fixture
async def api(control_plane: ControlPlane) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=control_plane.url, timeout=10) as client:
        yield client


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The folder a test lives in says what it needs."""
    for item in items:
        for marker in ("unit", "integration", "e2e"):
            if f"{os.sep}{marker}{os.sep}" in str(item.path):
                item.add_marker(marker)
