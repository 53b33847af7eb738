"""With PODIUM_METRICS_PORT, /metrics is served on that port only: the API port (public,
behind the ingress) answers 404 for it, and a NetworkPolicy can keep the metrics port for
Prometheus. Both ports stop together."""

from __future__ import annotations

import asyncio
import signal
import sys

import httpx

from shared.devstack.services import ManagedProcess, free_port, port_open
from shared.devstack.stack import ROOT, EphemeralStack, TenantKey, http_ok, logged


async def test_metrics_on_the_api_port_name_no_tenant(
    api: httpx.AsyncClient, tenant: TenantKey
) -> None:
    """/metrics on the API port answers without a key: one tenant must not read another's id or
    load there (found by scripts/fuzz_api.py)."""
    created = await api.post("/v1/sessions", headers=tenant.headers, json={})
    assert created.status_code == 201, created.text
    try:
        await asyncio.sleep(6)  # a metrics refresh (every 5 s) has seen the open session
        text = (await api.get("/metrics")).text
        assert "podium_fleet_active_sessions" in text
        assert tenant.tenant_id not in text
    finally:
        await api.post(f"/v1/sessions/{created.json()['session_id']}/end", headers=tenant.headers)


async def test_metrics_move_to_their_own_port(
    control_plane: EphemeralStack, tenant: TenantKey
) -> None:
    port, metrics_port = free_port(), free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **control_plane.api_env,
        "PODIUM_PORT": str(port),
        "PODIUM_PUBLIC_URL": url,
        "PODIUM_METRICS_PORT": str(metrics_port),
    }
    proc = ManagedProcess(
        "control-plane-metrics-port",
        [sys.executable, "-m", "control_plane", "serve"],
        control_plane.logs / "control-plane-metrics-port.log",
        env=env,
        cwd=ROOT,
    )
    proc.start()
    try:
        proc.wait_until(lambda: http_ok(f"{url}/readyz"), 60)
        async with httpx.AsyncClient(timeout=10) as client:
            assert (await client.get(f"{url}/healthz")).status_code == 200
            assert (await client.get(f"{url}/metrics")).status_code == 404
            created = await client.post(f"{url}/v1/sessions", headers=tenant.headers, json={})
            assert created.status_code == 201, created.text
            await asyncio.sleep(6)  # a metrics refresh
            scraped = await client.get(f"http://127.0.0.1:{metrics_port}/metrics")
            assert scraped.status_code == 200
            assert "podium_http_requests_total" in scraped.text
            # Prometheus alone reaches this port: it sees open sessions by tenant
            assert f'podium_tenant_sessions{{tenant="{tenant.tenant_id}"}} 1.0' in scraped.text
            sid = created.json()["session_id"]
            await client.post(f"{url}/v1/sessions/{sid}/end", headers=tenant.headers)
            assert (await client.get(f"http://127.0.0.1:{metrics_port}/healthz")).status_code == 404
        # uvicorn shuts down gracefully, then re-raises the signal (exit status -15)
        proc.signal(signal.SIGTERM)
        assert proc.proc is not None
        proc.proc.wait(20)
        assert not port_open(port) and not port_open(metrics_port)
        assert logged(proc.log_path, "Finished server process", 0)
    finally:
        proc.stop()
