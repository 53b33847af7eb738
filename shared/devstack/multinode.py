"""Several nodes of everything on loopback: livekit-server nodes in LiveKit's multi-node mode,
control-plane replicas on one Postgres and Redis, and workers, each kind behind a balancer.

What a real deployment has, scaled down: each kind of replica sits behind one address (a
Kubernetes Service; here ``balancer.py``, round-robin with failover), so clients, workers and
the control planes each know one LiveKit URL and one control-plane URL. LiveKit's nodes share a
Redis of their own (as ``deploy/livekit/values.yaml`` advises), apart from Podium's: a room
lives on one node, and any node relays a client's signalling to it and dispatches its jobs to
workers registered on any node. Every process can be killed and started again on its ports.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from contextlib import ExitStack
from pathlib import Path

from shared.devstack.services import (
    LiveKit,
    ManagedProcess,
    Postgres,
    Redis,
    free_port,
    port_open,
)
from shared.devstack.stack import ROOT, TenantKey, http_ok, log_size, logged


class MultiNodeStack:
    """Postgres, Redis and ``nodes`` livekit-server nodes now; control planes and workers on
    demand. ``livekit_url`` and ``api_url`` are the balancers' addresses."""

    def __init__(self, base: Path, *, nodes: int = 2, logs: Path | None = None) -> None:
        self.base = base
        self.logs = logs or base / "logs"
        self.postgres = Postgres(
            base / "pg", free_port(), self.logs / "postgres.log", durable=False
        )
        self.redis = Redis(free_port(), self.logs / "redis.log")
        self.livekit_redis = Redis(free_port(), self.logs / "livekit-redis.log")
        self._api_port = free_port()
        self.api_url = f"http://127.0.0.1:{self._api_port}"
        lk_port = free_port()
        self.livekit_url = f"ws://127.0.0.1:{lk_port}"
        self.nodes = [
            LiveKit(
                free_port(),
                free_port(),
                free_port(),
                self.logs / f"livekit-{i}.log",
                webhook_url=f"{self.api_url}/livekit/webhook",
                redis_address=f"127.0.0.1:{self.livekit_redis.port}",
            )
            for i in range(nodes)
        ]
        self._livekit_balancer = _balancer(
            "livekit-balancer", lk_port, [n.port for n in self.nodes], self.logs
        )
        self.control_planes: list[ManagedProcess] = []
        self._api_balancer: ManagedProcess | None = None
        self._api_ports: list[int] = []
        self.workers: list[ManagedProcess] = []
        self._exit = ExitStack()

    def __enter__(self) -> MultiNodeStack:
        try:
            services: list[Postgres | Redis | LiveKit] = [
                self.postgres, self.redis, self.livekit_redis, *self.nodes
            ]  # fmt: skip
            for svc in services:
                self._exit.callback(svc.stop)  # first: one that fails to start has a log open
                svc.start()
            self._start(self._livekit_balancer)
            lk_port = int(self.livekit_url.rsplit(":", 1)[1])
            self._livekit_balancer.wait_until(lambda: port_open(lk_port), 10)
        except BaseException:
            self._exit.close()
            raise
        return self

    def __exit__(self, *_: object) -> None:
        self._exit.close()

    def _start(
        self, proc: ManagedProcess, ready_url: str | None = None, timeout_s: float = 60
    ) -> None:
        proc.start()
        self._exit.callback(proc.stop, 20)
        if ready_url:
            proc.wait_until(lambda: http_ok(ready_url), timeout_s)

    def env(self, **extra: str) -> dict[str, str]:
        node = self.nodes[0]
        return {
            **os.environ,
            "PODIUM_ENVIRONMENT": "dev",
            "PODIUM_DATABASE_URL": self.postgres.url(),
            "PODIUM_REDIS_URL": self.redis.url(),
            "PODIUM_LIVEKIT_URL": self.livekit_url,
            "PODIUM_LIVEKIT_API_KEY": node.api_key,
            "PODIUM_LIVEKIT_API_SECRET": node.api_secret,
            "PODIUM_PUBLIC_URL": self.api_url,
            "PODIUM_CONTROL_PLANE_URL": self.api_url,
            "PODIUM_ASSET_ROOT": str(self.base / "assets"),
            **extra,
        }

    def start_control_planes(self, count: int = 2, timeout_s: float = 90, **env: str) -> None:
        """``count`` replicas on their own ports, and the balancer in front of them."""
        self._api_ports = [free_port() for _ in range(count)]
        for i, port in enumerate(self._api_ports):
            proc = ManagedProcess(
                f"control-plane-{i}",
                [sys.executable, "-m", "control_plane", "serve"],
                self.logs / f"control-plane-{i}.log",
                env=self.env(PODIUM_PORT=str(port), **env),
                cwd=ROOT,
            )
            self._start(proc, f"http://127.0.0.1:{port}/readyz", timeout_s)
            self.control_planes.append(proc)
        self._api_balancer = _balancer("api-balancer", self._api_port, self._api_ports, self.logs)
        self._start(self._api_balancer, f"{self.api_url}/healthz", 10)

    def replica_url(self, i: int) -> str:
        return f"http://127.0.0.1:{self._api_ports[i]}"

    def restart_control_plane(self, i: int, timeout_s: float = 90) -> None:
        """Start a stopped (or killed) replica again on its port."""
        proc = self.control_planes[i]
        proc.stop()
        proc.start()
        proc.wait_until(lambda: http_ok(f"{self.replica_url(i)}/readyz"), timeout_s)

    def start_worker(self, name: str, timeout_s: float = 120, **env: str) -> ManagedProcess:
        proc = ManagedProcess(
            name,
            [sys.executable, "-m", "agent_worker"],
            self.logs / f"{name}.log",
            env=self.env(PODIUM_HTTP_PORT=str(free_port()), PODIUM_WORKER_NAME=name, **env),
            cwd=ROOT,
        )
        offset = log_size(proc.log_path)
        self._start(proc)
        proc.wait_until(lambda: logged(proc.log_path, "registered worker", offset), timeout_s)
        self.workers.append(proc)
        return proc

    def revive_worker(self, proc: ManagedProcess, timeout_s: float = 120) -> None:
        proc.stop()
        offset = log_size(proc.log_path)
        proc.start()
        proc.wait_until(lambda: logged(proc.log_path, "registered worker", offset), timeout_s)

    def kill(self, proc: ManagedProcess) -> None:
        """SIGKILL a process and its group (a worker's job processes and Piper go with it)."""
        proc.signal(signal.SIGKILL)
        proc.stop()

    def restart_node(self, i: int, timeout_s: float = 20) -> None:
        node = self.nodes[i]
        node.process.stop()
        node.start(timeout_s)

    def restart_postgres(self) -> None:
        """A fast shutdown (sessions aborted) and a start on the same port and data."""
        self.postgres.stop()
        self.postgres.start()

    def restart_redis(self) -> None:
        """Stopped and started empty (it keeps nothing on disk)."""
        self.redis.stop()
        self.redis.start()

    def create_tenant(self, name: str) -> TenantKey:
        out = subprocess.run(
            [sys.executable, "-m", "control_plane", "admin", "create-tenant", name, "--json"],
            env=self.env(),
            check=True,
            capture_output=True,
            text=True,
            cwd=ROOT,
        )
        data = json.loads(out.stdout)
        return TenantKey(data["tenant_id"], data["api_key"])


def _balancer(name: str, port: int, backends: list[int], logs: Path) -> ManagedProcess:
    return ManagedProcess(
        name,
        [sys.executable, "-m", "shared.devstack.balancer", str(port), *map(str, backends)],
        logs / f"{name}.log",
        cwd=ROOT,
    )
