"""An ephemeral Podium on free loopback ports: the test suite's and benchmarks' stack."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared.devstack.services import LiveKit, ManagedProcess, Postgres, Redis, free_port

ROOT = Path(__file__).resolve().parents[2]


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=0.5) as resp:  # noqa: S310 (loopback only)
            return int(resp.status) == 200
    except OSError:
        return False


def log_size(log: Path) -> int:
    return log.stat().st_size if log.exists() else 0


def logged(log: Path, text: str, offset: int) -> bool:
    """Whether ``text`` appeared in the log after ``offset`` (logs are appended across runs)."""
    if not log.exists():
        return False
    with log.open("rb") as f:
        f.seek(offset)
        return text.encode() in f.read()


@dataclass(frozen=True)
class TenantKey:
    tenant_id: str
    api_key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}


class EphemeralStack:
    """Postgres (no fsync), Redis and livekit-server now; control plane and workers on demand."""

    def __init__(
        self, base: Path, *, logs: Path | None = None, images: Mapping[str, str] | None = None
    ) -> None:
        self.base = base
        # role ("control-plane", "worker") -> container image run with podman instead of this
        # checkout's code (scripts/images; the e2e suite reads PODIUM_E2E_IMAGES)
        self.images = dict(images or {})
        self.logs = logs or base / "logs"
        self.postgres = Postgres(
            base / "pg", free_port(), self.logs / "postgres.log", durable=False
        )
        self.redis = Redis(free_port(), self.logs / "redis.log")
        # The control plane's port is chosen now: LiveKit posts its webhooks there.
        self._api_port = free_port()
        self.livekit = LiveKit(
            free_port(),
            free_port(),
            free_port(),
            self.logs / "livekit.log",
            webhook_url=f"http://127.0.0.1:{self._api_port}/livekit/webhook",
        )
        self._exit = ExitStack()
        self.api_url = ""
        self.api_env: dict[str, str] = {}
        self.api_process: ManagedProcess | None = None
        self._api_overrides: dict[str, str] = {}

    def __enter__(self) -> EphemeralStack:
        try:
            for svc in (self.postgres, self.redis, self.livekit):
                svc.start()
                self._exit.callback(svc.stop)
        except BaseException:
            self._exit.close()
            raise
        return self

    def __exit__(self, *_: object) -> None:
        self._exit.close()

    def env(self, **extra: str) -> dict[str, str]:
        return {
            **os.environ,
            # The stack runs with the development placeholder secrets (the tests sign with them):
            # only an explicit dev accepts those.
            "PODIUM_ENVIRONMENT": "dev",
            "PODIUM_DATABASE_URL": self.postgres.url(),
            "PODIUM_REDIS_URL": self.redis.url(),
            "PODIUM_LIVEKIT_URL": self.livekit.url,
            "PODIUM_LIVEKIT_API_KEY": self.livekit.api_key,
            "PODIUM_LIVEKIT_API_SECRET": self.livekit.api_secret,
            **extra,
        }

    def start_control_plane(self, timeout_s: float = 60, **env: str) -> ManagedProcess:
        """The control plane; ``env`` adds PODIUM_* overrides. Restarting reuses the port."""
        port = self._api_port
        self.api_url = f"http://127.0.0.1:{port}"
        self.api_env = self.env(
            PODIUM_PORT=str(port),
            PODIUM_PUBLIC_URL=self.api_url,
            PODIUM_CONTROL_PLANE_URL=self.api_url,
            PODIUM_ASSET_ROOT=str(self.base / "assets"),
            **env,
        )
        proc = ManagedProcess(
            "control-plane",
            self._command(
                "control-plane",
                ["-m", "control_plane", "serve"],
                ["serve"],
                self.api_env,
                writable=self.base / "assets",
            ),
            self.logs / "control-plane.log",
            env=self.api_env,
            cwd=ROOT,
        )
        self._start(proc, f"{self.api_url}/readyz", timeout_s)
        self.api_process = proc
        self._api_overrides = env
        return proc

    def restart_control_plane(self, *, hard: bool = True, timeout_s: float = 60) -> ManagedProcess:
        """Kill (SIGKILL when ``hard``) and start the control plane again on the same port."""
        if self.api_process is None:
            raise RuntimeError("the control plane is not running")
        self.api_process.signal(signal.SIGKILL if hard else signal.SIGTERM)
        self.api_process.stop()
        return self.start_control_plane(timeout_s, **self._api_overrides)

    def start_worker(
        self, name: str = "worker", timeout_s: float = 120, **env: str
    ) -> ManagedProcess:
        """A worker process; ``env`` adds PODIUM_* overrides (e.g. PODIUM_NUM_IDLE_PROCESSES)."""
        if not self.api_url:
            raise RuntimeError("start the control plane before a worker")
        port = free_port()
        worker_env = {**self.api_env, "PODIUM_HTTP_PORT": str(port), **env}
        proc = ManagedProcess(
            name,
            self._command("worker", ["-m", "agent_worker"], [], worker_env),
            self.logs / f"{name}.log",
            env=worker_env,
            cwd=ROOT,
        )
        offset = log_size(proc.log_path)
        self._start(proc, f"http://127.0.0.1:{port}/", timeout_s)
        # Healthy is not enough: LiveKit only dispatches to a worker once it has registered,
        # which happens after its idle processes are warm.
        proc.wait_until(lambda: logged(proc.log_path, "registered worker", offset), timeout_s)
        return proc

    def revive_worker(self, proc: ManagedProcess, timeout_s: float = 120) -> None:
        """Start a stopped (or killed) worker again, with its port and settings."""
        proc.stop()
        offset = log_size(proc.log_path)
        proc.start()
        proc.wait_until(lambda: logged(proc.log_path, "registered worker", offset), timeout_s)

    def _command(
        self,
        role: str,
        python_args: list[str],
        image_args: list[str],
        env: Mapping[str, str],
        writable: Path | None = None,
    ) -> list[str]:
        """This checkout's Python, or the role's image in podman on the host's network (the
        stack is on loopback), read-only like the pods, with the PODIUM_* settings passed."""
        image = self.images.get(role)
        if image is None:
            return [sys.executable, *python_args]
        command = ["podman", "run", "--rm", "--network", "host", "--read-only"]
        if writable is not None:
            writable.mkdir(parents=True, exist_ok=True)
            writable.chmod(0o777)  # the image runs as uid 10001
            command += ["-v", f"{writable}:{writable}"]
        for key, value in sorted(env.items()):
            if key.startswith("PODIUM_"):
                command += ["-e", f"{key}={value}"]
        return [*command, image, *image_args]

    def _start(self, proc: ManagedProcess, ready_url: str, timeout_s: float) -> None:
        proc.start()
        self._exit.callback(proc.stop, 20)
        proc.wait_until(lambda: http_ok(ready_url), timeout_s)

    async def worker_credential(self, room: str) -> str:
        """The session credential in the room's agent dispatch, read as a worker job would."""
        from livekit import api as lk

        from shared.schemas import DispatchMetadata

        lkapi = lk.LiveKitAPI(
            self.livekit.url.replace("ws://", "http://"),
            self.livekit.api_key,
            self.livekit.api_secret,
        )
        try:
            dispatch = (await lkapi.agent_dispatch.list_dispatch(room))[0]
        finally:
            await lkapi.aclose()
        return DispatchMetadata.model_validate_json(dispatch.metadata).credential

    def create_tenant(self, name: str = "acme") -> TenantKey:
        """Through the real CLI, as an operator would."""
        out = subprocess.run(
            [sys.executable, "-m", "control_plane", "admin", "create-tenant", name, "--json"],
            env=self.api_env or self.env(),
            check=True,
            capture_output=True,
            text=True,
            cwd=ROOT,
        )
        data = json.loads(out.stdout)
        return TenantKey(data["tenant_id"], data["api_key"])

    def limits(self, tenant: TenantKey, *args: str) -> dict[str, Any]:
        """``podium admin limits TENANT [args] --json`` through the real CLI: the tenant's
        effective limits and which are the defaults, after any ``--set``/``--reset`` in args."""
        out = subprocess.run(
            [sys.executable, "-m", "control_plane", "admin", "limits", tenant.tenant_id,
             *args, "--json"],
            env=self.api_env or self.env(),
            check=True,
            capture_output=True,
            text=True,
            cwd=ROOT,
        )  # fmt: skip
        data: dict[str, Any] = json.loads(out.stdout)
        return data

    def set_limits(self, tenant: TenantKey, **values: int) -> dict[str, Any]:
        """Set some of a tenant's limits, as an operator would."""
        return self.limits(tenant, *(f"--set={name}={value}" for name, value in values.items()))
