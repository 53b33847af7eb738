"""Audit trail benchmark: what one entry's write adds to an audited call.

On the real stack (loopback Postgres without fsync, as the tests run it, and the control plane):
  1. C closed-loop clients read GET /v1/sessions/{id}/events (audited: a records:read route)
     N times in all; the answer's latency, and the control plane's own measure of the write
     inside it (podium_audit_write_seconds: pool acquire + INSERT, before the answer leaves);
  2. the INSERT alone through an asyncpg pool like the control plane's, at concurrency 1 and C.

    .venv/bin/python scripts/bench_audit.py [--requests 2000] [--clients 8]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg
import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from control_plane import db  # noqa: E402
from control_plane.audit import repository  # noqa: E402
from control_plane.audit.schemas import AuditRecord  # noqa: E402
from shared.devstack.stack import EphemeralStack  # noqa: E402


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def row(label: str, seconds: list[float]) -> str:
    ms = [s * 1000 for s in seconds]
    return (
        f"{label:<44} {len(ms):>6} {statistics.mean(ms):>8.2f} {pct(ms, 50):>8.2f} "
        f"{pct(ms, 95):>8.2f} {pct(ms, 99):>8.2f}"
    )


async def _histogram(api: httpx.AsyncClient) -> tuple[float, float]:
    total = count = 0.0
    for line in (await api.get("/metrics")).text.splitlines():
        if line.startswith("podium_audit_write_seconds_sum"):
            total = float(line.split()[-1])
        elif line.startswith("podium_audit_write_seconds_count"):
            count = float(line.split()[-1])
    return total, count


async def through_the_api(stack: EphemeralStack, requests: int, clients: int) -> list[str]:
    tenant = stack.create_tenant("bench audit")
    async with httpx.AsyncClient(base_url=stack.api_url, timeout=30) as api:
        resp = await api.post("/v1/sessions", headers=tenant.headers, json={})
        resp.raise_for_status()
        url = f"/v1/sessions/{resp.json()['session_id']}/events"
        for _ in range(50):  # warm the pools and the key cache
            (await api.get(url, headers=tenant.headers)).raise_for_status()
        before = await _histogram(api)
        latencies: list[float] = []
        left = requests

        async def client() -> None:
            nonlocal left
            while left > 0:
                left -= 1
                started = time.perf_counter()
                answer = await api.get(url, headers=tenant.headers)
                latencies.append(time.perf_counter() - started)
                answer.raise_for_status()

        await asyncio.gather(*(client() for _ in range(clients)))
        after = await _histogram(api)
    writes = after[1] - before[1]
    mean_write_ms = (after[0] - before[0]) / writes * 1000
    label = "  of which the audit write (in-process mean)"
    return [
        row(f"GET …/events, {clients} clients (audited)", latencies),
        f"{label:<44} {int(writes):>6} {mean_write_ms:>8.2f}",
    ]


async def _inserts(
    pool: asyncpg.Pool, entry: AuditRecord, requests: int, concurrency: int
) -> list[float]:
    times: list[float] = []
    left = requests

    async def writer() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            started = time.perf_counter()
            await repository.insert(pool, entry)
            times.append(time.perf_counter() - started)

    await asyncio.gather(*(writer() for _ in range(concurrency)))
    return times


async def insert_alone(stack: EphemeralStack, requests: int, clients: int) -> list[str]:
    pool = await db.create_pool(stack.postgres.url(), min_size=2, max_size=10)
    entry = AuditRecord(
        tenant_id=uuid.uuid4(),
        key_id=uuid.uuid4(),
        actor="key",
        method="GET",
        route="/v1/sessions/{session_id}/events",
        target_id=str(uuid.uuid4()),
        status=200,
        client_ip=None,
    )
    lines = []
    try:
        for concurrency in sorted({1, clients}):
            times = await _inserts(pool, entry, requests, concurrency)
            lines.append(row(f"INSERT alone, concurrency {concurrency}", times))
        size = await pool.fetchrow(
            "SELECT count(*) AS n, pg_total_relation_size('audit_log') AS bytes FROM audit_log"
        )
        lines.append(f"audit_log: {size['n']} entries, {size['bytes'] / size['n']:.0f} bytes each")
    finally:
        await pool.close()
    return lines


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, EphemeralStack(Path(tmp)) as stack:
        stack.start_control_plane(PODIUM_ADMISSION_ENABLED="false")
        lines = await through_the_api(stack, args.requests, args.clients)
        lines += await insert_alone(stack, args.requests, args.clients)
    print(f"{'':<44} {'n':>6} {'mean ms':>8} {'p50':>8} {'p95':>8} {'p99':>8}")
    print("\n".join(lines))


if __name__ == "__main__":
    asyncio.run(main())
