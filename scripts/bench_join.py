"""Join-time benchmark: POST /v1/sessions -> first non-silent agent audio at a real client.

Runs the real stack on loopback, then measures N sessions against a worker that keeps prewarmed
idle processes (warm) and N against one that keeps none (cold: each job spawns and prewarms a
process), with the presenter dispatched when the session is created (the default), and N warm
ones dispatched when the first participant joins (``PODIUM_DISPATCH_MODE=on_join``: LiveKit's
participant_joined webhook → the control plane → a dispatch), in one run. Admission is on, as
in production. Prints p50/p95 and the ratios; writes a plot under docs/. The client subscribes
to every track, as the SDK does by default, and also notes when the presenter's video track was
subscribed, relative to its first audible audio (waiting up to 10 s for it after the voice).

    .venv/bin/python scripts/bench_join.py [--sessions 10] [--plot docs/benchmarks/join.png]
        [--modes warm cold "warm on_join"]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from shared.devstack.probe import listen_for_agent_voice  # noqa: E402
from shared.devstack.stack import EphemeralStack, TenantKey  # noqa: E402


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def measure(
    api_url: str,
    tenant: TenantKey,
    n: int,
    label: str,
    subscribed: list[float] | None = None,
    gap_s: float = 0.5,
    video: list[float | None] | None = None,
) -> list[float]:
    """N sessions one after another: POST, join, first agent audio, end; ``gap_s`` between."""
    out: list[float] = []
    async with httpx.AsyncClient(base_url=api_url, timeout=10) as client:
        for i in range(n):
            t0 = time.perf_counter()
            resp = await client.post("/v1/sessions", headers=tenant.headers, json={})
            resp.raise_for_status()
            session = resp.json()
            heard = await listen_for_agent_voice(
                session["livekit_url"],
                session["token"],
                timeout_s=60,
                started_at=t0,
                video_within_s=10 if video is not None else 0,
            )
            out.append(heard.first_voice_s * 1000)
            if subscribed is not None:
                subscribed.append(heard.subscribed_s * 1000)
            seen = ""
            if video is not None:
                after = heard.video_after_voice_s
                video.append(None if after is None else after * 1000)
                seen = "; video " + ("none in 10 s" if after is None else f"{after * 1000:+.0f} ms")
            print(
                f"  {label} #{i + 1}: {out[-1]:7.0f} ms "
                f"(agent track subscribed at {heard.subscribed_s * 1000:.0f} ms{seen})",
                flush=True,
            )
            await client.post(f"/v1/sessions/{session['session_id']}/end", headers=tenant.headers)
            await asyncio.sleep(gap_s)  # the worker replenishes its idle pool, as between arrivals
    return out


def plot(results: dict[str, list[float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    ax.boxplot(list(results.values()), tick_labels=list(results.keys()), showmeans=True)
    for i, values in enumerate(results.values(), start=1):
        ax.scatter([i] * len(values), values, alpha=0.5, s=12)
    ax.axhline(700, color="tab:red", linestyle="--", linewidth=1, label="warm target p50 700 ms")
    ax.set_ylabel("POST /v1/sessions → first agent audio (ms)")
    ax.set_title("Podium join time at a real LiveKit client (offline stack, 2 cores)")
    ax.legend(loc="upper left")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=10, help="sessions per mode")
    parser.add_argument("--plot", type=Path, default=ROOT / "docs/benchmarks/join.png")
    parser.add_argument("--logs", type=Path, help="keep the services' logs in this folder")
    parser.add_argument("--modes", nargs="+", default=["warm", "cold", "warm on_join"])
    args = parser.parse_args()

    results: dict[str, list[float]] = {}
    subscribed: dict[str, list[float]] = {}
    video: dict[str, list[float | None]] = {}
    runs = [
        run
        for run in (
            ("warm", "2", "on_create"),
            ("cold", "0", "on_create"),
            ("warm on_join", "2", "on_join"),
        )
        if run[0] in args.modes
    ]
    with tempfile.TemporaryDirectory() as tmp, EphemeralStack(Path(tmp), logs=args.logs) as stack:
        tenant: TenantKey | None = None
        for label, idle, dispatch in runs:
            if stack.api_process is not None:
                stack.api_process.stop(20)
            # heartbeats every second: admission sees a freed slot at once between sessions
            stack.start_control_plane(PODIUM_DISPATCH_MODE=dispatch)
            tenant = tenant or stack.create_tenant("bench")
            proc = stack.start_worker(
                f"worker-{label.replace(' ', '-')}",
                PODIUM_NUM_IDLE_PROCESSES=idle,
                PODIUM_HEARTBEAT_INTERVAL_SECONDS="1",
            )
            asyncio.run(measure(stack.api_url, tenant, 1, f"{label} (discarded warm-up)"))
            subscribed[label] = []
            video[label] = []
            results[label] = asyncio.run(
                measure(
                    stack.api_url,
                    tenant,
                    args.sessions,
                    label,
                    subscribed[label],
                    video=video[label],
                )
            )
            proc.stop(20)

    print(f"\n{'mode':<13} {'n':>3} {'p50 ms':>8} {'p95 ms':>8} {'mean ms':>8} {'track p50':>10}")
    for label, values in results.items():
        print(
            f"{label:<13} {len(values):>3} {pct(values, 0.5):>8.0f} {pct(values, 0.95):>8.0f} "
            f"{statistics.mean(values):>8.0f} {pct(subscribed[label], 0.5):>10.0f}"
        )
    print("\npresenter's video track subscribed, from its first audible audio:")
    print(f"{'mode':<13} {'n':>3} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} {'none in 10 s':>13}")
    for label, gaps in video.items():
        seen = [gap for gap in gaps if gap is not None]
        if seen:
            print(
                f"{label:<13} {len(gaps):>3} {pct(seen, 0.5):>8.0f} {pct(seen, 0.95):>8.0f} "
                f"{max(seen):>8.0f} {len(gaps) - len(seen):>13}"
            )
        else:
            print(f"{label:<13} {len(gaps):>3} {'-':>8} {'-':>8} {'-':>8} {len(gaps):>13}")
    if "warm" in results and "cold" in results:
        warm = pct(results["warm"], 0.5)
        print(f"cold/warm p50 ratio: {pct(results['cold'], 0.5) / warm:.2f}x")
    if "warm" in results and "warm on_join" in results:
        ratio = pct(results["warm on_join"], 0.5) / pct(results["warm"], 0.5)
        print(f"on_join/on_create (warm) p50 ratio: {ratio:.2f}x")
    plot(results, args.plot)
    print(f"plot: {args.plot}")


if __name__ == "__main__":
    main()
