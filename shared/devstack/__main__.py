"""``scripts/dev``: the whole local stack in the foreground; Ctrl-C stops it in order."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from types import FrameType

from shared.devstack.services import (
    LiveKit,
    ManagedProcess,
    Postgres,
    Redis,
    ServiceError,
    port_open,
)
from shared.devstack.stack import log_size, logged

ROOT = Path(__file__).resolve().parents[2]
STATE = Path(os.environ.get("PODIUM_STATE_DIR", ROOT / ".state"))
LOGS = STATE / "logs"

PG_PORT = int(os.environ.get("PODIUM_DEV_PG_PORT", "54329"))
REDIS_PORT = int(os.environ.get("PODIUM_DEV_REDIS_PORT", "63799"))
LIVEKIT_PORT = int(os.environ.get("PODIUM_DEV_LIVEKIT_PORT", "7880"))
API_PORT = int(os.environ.get("PODIUM_DEV_API_PORT", "8000"))
WORKER_HEALTH_PORT = int(os.environ.get("PODIUM_DEV_WORKER_PORT", "8081"))


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=0.5) as resp:  # noqa: S310 (loopback only)
            return int(resp.status) == 200
    except OSError:
        return False


def _dev_tenant(env: dict[str, str]) -> dict[str, str]:
    """Create the 'dev' tenant once and keep its key under .state/ for local convenience."""
    path = STATE / "dev-tenant.json"
    if path.exists():
        saved: dict[str, str] = json.loads(path.read_text())
        return saved
    out = subprocess.run(
        [sys.executable, "-m", "control_plane", "admin", "create-tenant", "dev", "--json"],
        env=env, check=True, capture_output=True, text=True,
    )  # fmt: skip
    path.write_text(out.stdout)
    path.chmod(0o600)
    created: dict[str, str] = json.loads(out.stdout)
    return created


def main() -> int:
    LOGS.mkdir(parents=True, exist_ok=True)
    postgres = Postgres(STATE / "postgres", PG_PORT, LOGS / "postgres.log")
    redis = Redis(REDIS_PORT, LOGS / "redis.log")
    livekit = LiveKit(
        LIVEKIT_PORT,
        LIVEKIT_PORT + 1,
        LIVEKIT_PORT + 2,
        LOGS / "livekit.log",
        webhook_url=f"http://127.0.0.1:{API_PORT}/livekit/webhook",
    )
    api_url = f"http://127.0.0.1:{API_PORT}"
    env = {
        **os.environ,
        "PODIUM_ENVIRONMENT": "dev",
        "PODIUM_DATABASE_URL": postgres.url(),
        "PODIUM_REDIS_URL": redis.url(),
        "PODIUM_LIVEKIT_URL": livekit.url,
        "PODIUM_PUBLIC_URL": api_url,
        "PODIUM_PORT": str(API_PORT),
        "PODIUM_CONTROL_PLANE_URL": api_url,
        "PODIUM_HTTP_PORT": str(WORKER_HEALTH_PORT),
        "PODIUM_DEMO_PAGE": "true",
    }
    api = ManagedProcess(
        "control-plane",
        [sys.executable, "-m", "control_plane", "serve"],
        LOGS / "control-plane.log",
        env=env,
    )
    worker = ManagedProcess(
        "worker", [sys.executable, "-m", "agent_worker"], LOGS / "worker.log", env=env
    )

    def shutdown(*_: object) -> None:
        print("\nStopping Podium…", flush=True)
        # A second SIGTERM tells the worker to cut its drain short: locally, stop means now.
        worker.signal(signal.SIGTERM)
        time.sleep(0.5)
        worker.stop(timeout_s=15)
        api.stop()
        livekit.stop()
        redis.stop()
        postgres.stop()

    stopping = False

    def on_signal(signum: int, _: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        for name, svc in (("Postgres", postgres), ("Redis", redis), ("livekit-server", livekit)):
            print(f"  starting {name}…", flush=True)
            svc.start()
        if port_open(API_PORT):
            raise ServiceError(f"port {API_PORT} is taken; the control plane needs it free")
        print("  starting control plane…", flush=True)
        api.start()
        api.wait_until(lambda: _http_ok(f"{api_url}/readyz"), 60)
        tenant = _dev_tenant(env)
        print("  starting worker (loading models)…", flush=True)
        offset = log_size(worker.log_path)
        worker.start()
        # Ready means registered with LiveKit: only then are sessions dispatched to it.
        worker.wait_until(lambda: logged(worker.log_path, "registered worker", offset), 120)
    except (ServiceError, subprocess.CalledProcessError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        shutdown()
        return 1
    print(
        f"Podium is ready at {api_url} (logs in {LOGS}). Dev tenant API key: {tenant['api_key']}\n"
        f"  Try it in a browser: {api_url}/demo#key={tenant['api_key']}\n"
        f"  Or: curl -s -X POST {api_url}/v1/sessions -H 'Authorization: Bearer "
        f"{tenant['api_key']}' -H 'Content-Type: application/json' -d '{{}}'   — Ctrl-C stops.",
        flush=True,
    )
    try:
        while not stopping:
            for proc in (api, worker, livekit.process, redis.process, postgres.process):
                if not proc.alive():
                    print(f"error: {proc.name} exited; see {proc.log_path}", file=sys.stderr)
                    shutdown()
                    return 1
            time.sleep(0.5)
    finally:
        if stopping:
            shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
