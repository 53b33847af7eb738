"""PODIUM_WEB_CONCURRENCY: several control-plane processes serve one API port, each with its own
pools and background loops (as replicas have), and stop together."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys

import httpx
import psutil

from shared.devstack.services import ManagedProcess, free_port, port_open
from shared.devstack.stack import ROOT, EphemeralStack, TenantKey, http_ok


async def test_two_processes_serve_one_port(
    control_plane: EphemeralStack, tenant: TenantKey
) -> None:
    control_plane.set_limits(tenant, concurrent_sessions=100, sessions_per_minute=100)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **control_plane.api_env,
        "PODIUM_PORT": str(port),
        "PODIUM_PUBLIC_URL": url,
        "PODIUM_WEB_CONCURRENCY": "2",
    }
    proc = ManagedProcess(
        "control-plane-two-processes",
        [sys.executable, "-m", "control_plane", "serve"],
        control_plane.logs / "control-plane-two-processes.log",
        env=env,
        cwd=ROOT,
    )
    proc.start()
    try:
        proc.wait_until(lambda: http_ok(f"{url}/readyz"), 120)
        assert proc.proc is not None
        servers = [
            p
            for p in psutil.Process(proc.proc.pid).children()
            if "spawn_main" in " ".join(p.cmdline())  # not the resource tracker
        ]
        assert len(servers) == 2
        before = {p.pid: sum(p.cpu_times()[:2]) for p in servers}
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            created = await asyncio.gather(
                *(client.post("/v1/sessions", headers=tenant.headers, json={}) for _ in range(40))
            )
            assert [c.status_code for c in created] == [201] * 40
            ids = {c.json()["session_id"] for c in created}
            listed = await client.get("/v1/sessions", headers=tenant.headers, params={"limit": 200})
            assert ids <= {s["session_id"] for s in listed.json()["items"]}
            for sid in ids:
                await client.post(f"/v1/sessions/{sid}/end", headers=tenant.headers)
        # Both processes took requests (the kernel spreads the connections).
        assert all(sum(p.cpu_times()[:2]) > before[p.pid] for p in servers)
        proc.signal(signal.SIGTERM)
        proc.proc.wait(30)
        assert not port_open(port)
        assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in servers)
    finally:
        proc.stop()


def test_several_processes_refuse_a_metrics_port(control_plane: EphemeralStack) -> None:
    env = {
        **control_plane.api_env,
        "PODIUM_PORT": str(free_port()),
        "PODIUM_WEB_CONCURRENCY": "2",
        "PODIUM_METRICS_PORT": str(free_port()),
    }
    out = subprocess.run(
        [sys.executable, "-m", "control_plane", "serve"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode != 0
    assert "PODIUM_METRICS_PORT needs one process per replica" in out.stderr
