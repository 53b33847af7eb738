"""Admission benchmark: one tenant bursts session creations; does the next tenant still get a
presenter as fast as on an idle stack?

On the real stack (loopback, default settings: admission on, default tenant limits, one worker
with PODIUM_MAX_SESSIONS slots), in one run:
  1. idle: tenant B creates a session and joins it, N times (POST -> first agent audio);
  2. burst: tenant A runs C closed-loop clients sending POST /v1/sessions for D seconds and
     never joins (the integrator bug of issue 14): answers by status, latency, throughput;
  3. after: tenant B again, N times, while A's unjoined sessions still hold their slots.
Prints a table; writes a plot.

    .venv/bin/python scripts/bench_admission.py [--joins 5] [--clients 16] [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from bench_join import measure, pct  # noqa: E402

from shared.devstack.stack import EphemeralStack, TenantKey  # noqa: E402


async def joins(api_url: str, tenant: TenantKey, n: int, label: str) -> list[float]:
    # The next arrival comes once the slot is free again everywhere: a worker reports a freed
    # slot 3 s after its job ended (when livekit-server has heard of it too).
    return await measure(api_url, tenant, n, label, gap_s=4)


async def burst(
    api_url: str, tenant: TenantKey, clients: int, seconds: float
) -> tuple[collections.Counter[int], list[float], float]:
    statuses: collections.Counter[int] = collections.Counter()
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=clients)
    async with httpx.AsyncClient(base_url=api_url, timeout=30, limits=limits) as client:

        async def loop() -> None:
            while time.perf_counter() < deadline:
                t0 = time.perf_counter()
                resp = await client.post("/v1/sessions", headers=tenant.headers, json={})
                latencies.append((time.perf_counter() - t0) * 1000)
                statuses[resp.status_code] += 1

        started = time.perf_counter()
        await asyncio.gather(*(loop() for _ in range(clients)))
        elapsed = time.perf_counter() - started
    return statuses, latencies, elapsed


def plot(idle: list[float], after: list[float], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.boxplot([idle, after], tick_labels=["idle stack", "after tenant A's burst"], showmeans=True)
    for i, values in enumerate((idle, after), start=1):
        ax.scatter([i] * len(values), values, alpha=0.5, s=12)
    ax.set_ylabel("tenant B: POST /v1/sessions → first agent audio (ms)")
    ax.set_title("Another tenant's join time, idle vs after a burst (2 cores)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--joins", type=int, default=5, help="tenant B's sessions per phase")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--plot", type=Path, default=ROOT / "docs/benchmarks/admission.png")
    parser.add_argument("--logs", type=Path, help="keep the services' logs in this folder")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp, EphemeralStack(Path(tmp), logs=args.logs) as stack:
        stack.start_control_plane()
        stack.start_worker("worker", PODIUM_HEARTBEAT_INTERVAL_SECONDS="1")
        noisy, quiet = stack.create_tenant("tenant-a"), stack.create_tenant("tenant-b")
        asyncio.run(joins(stack.api_url, quiet, 1, "warm-up (discarded)"))
        idle = asyncio.run(joins(stack.api_url, quiet, args.joins, "B idle"))
        statuses, latencies, elapsed = asyncio.run(
            burst(stack.api_url, noisy, args.clients, args.seconds)
        )
        after = asyncio.run(joins(stack.api_url, quiet, args.joins, "B after burst"))

    total = sum(statuses.values())
    print(f"\ntenant A's burst: {args.clients} clients x {args.seconds:.0f} s, {total} requests")
    for code, n in sorted(statuses.items()):
        print(f"  {code}: {n:6d}  ({n / total:6.1%})")
    print(
        f"  {total / elapsed:.0f} answers/s; latency p50 {pct(latencies, 0.5):.0f} ms, "
        f"p99 {pct(latencies, 0.99):.0f} ms"
    )
    print(f"\n{'tenant B':<22} {'n':>3} {'p50 ms':>8} {'p95 ms':>8}")
    for label, values in (("idle stack", idle), ("after A's burst", after)):
        print(f"{label:<22} {len(values):>3} {pct(values, 0.5):>8.0f} {pct(values, 0.95):>8.0f}")
    print(f"after/idle p50 ratio: {pct(after, 0.5) / pct(idle, 0.5):.2f}x")
    print(f"the first session after the burst: {after[0]:.0f} ms")
    plot(idle, after, args.plot)
    print(f"plot: {args.plot}")


if __name__ == "__main__":
    main()
