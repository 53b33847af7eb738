"""Fleet capacity simulation: a day of session arrivals against worker scaling policies.

Replays one simulated day (seeded) second by second: sessions arrive (diurnal curve, two
business peaks and a sudden burst), LiveKit hands each to the least-loaded ready worker with a
free slot, the autoscaler (KEDA polling the control plane's desired worker count) adds or
drains workers, and each policy is scored on join time and worker-hours.

Inputs and where they come from:
- warm / cold join time: measured by scripts/bench_join.py on this machine (docs/benchmarks.md):
  warm p50 800 / p95 971 ms, cold (no idle process) p50 714 / p95 882 ms; sampled from
  log-normals with those quantiles.
- pod cold start (decision to a registered worker): an ASSUMPTION. Measured here: a worker
  process needs 3.3-7.1 s (median 4.3 s, 10 starts) from its first log line to registered
  (Piper, the warm job process, registration). Scheduling,
  image pull and container start are not measurable without a cluster; the default 30 s assumes
  the image is cached on a node with room, --cold-start 120 models a node scale-up.
- session length, arrival curve: ASSUMPTIONS (log-normal, median 12 min; ~2,800 sessions a day).

    .venv/bin/python scripts/fleet_sim.py                # table + docs/benchmarks/fleet.png
    .venv/bin/python scripts/fleet_sim.py --cold-start 120
    .venv/bin/python scripts/fleet_sim.py --plan 10000   # capacity plan (scripts/fleet_plan.py)
"""

from __future__ import annotations

import argparse
import heapq
import itertools
import math
import random
import sys
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fleet_plan import Inputs, plan, print_plan, print_variants  # noqa: E402

from shared.fleet import FleetPolicy, desired_workers  # noqa: E402
from shared.settings import ControlPlaneSettings  # noqa: E402

DAY_S = 24 * 3600

# Measured by scripts/bench_join.py (docs/benchmarks.md), milliseconds.
WARM_P50, WARM_P95 = 800.0, 971.0
COLD_P50, COLD_P95 = 714.0, 882.0
IDLE_REFILL_S = 1.0
BURST_AT_S = 14 * 3600  # a job process forks and loads VAD + Whisper in ~0.6 s (worker logs)


@dataclass(frozen=True)
class Policy:
    name: str
    headroom_sessions: int
    headroom_ratio: float
    min_workers: int = 1
    max_workers: int = 200
    static_workers: int | None = None  # no autoscaling: always this many

    def desired(self, sessions: int, slots: int) -> int:
        if self.static_workers is not None:
            return self.static_workers
        # the control plane's own formula
        policy = FleetPolicy(
            sessions_per_worker=slots,
            headroom_sessions=self.headroom_sessions,
            headroom_ratio=self.headroom_ratio,
            min_workers=self.min_workers,
            max_workers=self.max_workers,
        )
        return desired_workers(sessions, policy)


@dataclass
class Worker:
    ready_at: float
    sessions: int = 0
    idle: int = 1
    refill_at: list[float] = field(default_factory=list)
    draining: bool = False


@dataclass
class Result:
    policy: Policy
    joins_ms: list[float]
    waited: int
    waited_in_burst: int
    worker_hours: float
    peak_workers: int
    peak_sessions: int
    timeline: list[tuple[float, int, int]]  # (t, open sessions, workers incl. starting)

    def pct(self, q: float) -> float:
        ordered = sorted(self.joins_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def lognormal(rng: random.Random, p50: float, p95: float) -> float:
    sigma = (math.log(p95) - math.log(p50)) / 1.645
    return rng.lognormvariate(math.log(p50), sigma)


def arrival_rate(t: float) -> float:
    """Sessions per second at time of day ``t``: night trickle, 10:00 and 15:00 peaks."""
    hour = t / 3600
    base = 0.004
    morning = 0.14 * math.exp(-(((hour - 10.0) / 1.4) ** 2))
    afternoon = 0.11 * math.exp(-(((hour - 15.0) / 1.6) ** 2))
    return base + morning + afternoon


def arrivals(seed: int, burst_at_s: float, burst_size: int) -> list[float]:
    rng = random.Random(seed)
    times = []
    for second in range(DAY_S):
        rate = arrival_rate(second)
        # thinning a Poisson process per second (rates are well under 1/s)
        n = 0
        p = math.exp(-rate)
        u = rng.random()
        cum = p
        while u > cum:
            n += 1
            p *= rate / n
            cum += p
        times.extend(second + rng.random() for _ in range(n))
    # a webinar starts: many people open the page within a minute
    times.extend(burst_at_s + rng.random() * 60 for _ in range(burst_size))
    return sorted(times)


def simulate(
    policy: Policy,
    times: list[float],
    *,
    seed: int,
    slots: int,
    cold_start_s: float,
    poll_s: float,
    scale_down_window_s: float,
    scale_down_step: int,
    session_median_s: float,
) -> Result:
    rng = random.Random(seed + 1)
    durations = [rng.lognormvariate(math.log(session_median_s), 0.6) for _ in times]
    initial = policy.desired(0, slots)
    workers = [Worker(ready_at=0.0) for _ in range(initial)]
    ends: list[tuple[float, int, Worker]] = []  # heap by end time
    order = itertools.count()
    queue: list[float] = []
    joins: list[float] = []
    waited = 0
    waited_in_burst = 0
    worker_seconds = 0.0
    desired_history: list[tuple[float, int]] = []
    timeline: list[tuple[float, int, int]] = []
    last_down = -1e9
    peak = initial
    i = 0

    def assign(t: float, arrived: float) -> bool:
        ready = [w for w in workers if not w.draining and w.ready_at <= t and w.sessions < slots]
        if not ready:
            return False
        w = min(ready, key=lambda x: x.sessions)  # LiveKit dispatches to the least loaded
        w.sessions += 1
        if w.idle > 0:
            w.idle -= 1
            w.refill_at.append(t + IDLE_REFILL_S)
            join = lognormal(rng, WARM_P50, WARM_P95)
        else:
            join = lognormal(rng, COLD_P50, COLD_P95)
        # arrivals inside this second are placed at once; queued ones waited until now
        joins.append(max(0.0, t - arrived) * 1000 + join)
        heapq.heappush(ends, (t + durations[len(joins) - 1], next(order), w))
        return True

    for second in range(DAY_S):
        t = float(second)
        # sessions end; a drained worker with nothing left exits
        while ends and ends[0][0] <= t:
            heapq.heappop(ends)[2].sessions -= 1
        workers = [w for w in workers if not (w.draining and w.sessions == 0)]
        for w in workers:
            if w.refill_at and w.refill_at[0] <= t:
                w.refill_at.pop(0)
                w.idle = min(1, slots - w.sessions)
        # waiting sessions take freed or new slots first
        while queue and assign(t, queue[0]):
            queue.pop(0)
        while i < len(times) and times[i] < t + 1:
            if not assign(t, times[i]):
                queue.append(times[i])
                waited += 1
                waited_in_burst += BURST_AT_S <= times[i] < BURST_AT_S + 60
            i += 1
        # the autoscaler: KEDA polls the desired count, HPA applies it
        if second % int(poll_s) == 0:
            serving = sum(w.sessions for w in workers if not w.draining) + len(queue)
            want = policy.desired(serving, slots)
            desired_history.append((t, want))
            live = [w for w in workers if not w.draining]
            if want > len(live):
                workers.extend(Worker(ready_at=t + cold_start_s) for _ in range(want - len(live)))
            else:
                # scale-down stabilisation: the highest wish over the window wins
                window = [d for s, d in desired_history if s >= t - scale_down_window_s]
                target = max(window)
                if target < len(live) and t - last_down >= 120:
                    # ReplicaSets remove not-yet-ready pods first, then the newest ones
                    victims = sorted(live, key=lambda w: (w.ready_at <= t, -w.ready_at))
                    for w in victims[: min(scale_down_step, len(live) - target)]:
                        w.draining = True
                    last_down = t
        peak = max(peak, len(workers))
        worker_seconds += len(workers)
        if second % 60 == 0:
            open_sessions = sum(w.sessions for w in workers) + len(queue)
            timeline.append((t, open_sessions, len(workers)))
    peak_sessions = max(s for _, s, _ in timeline)
    return Result(
        policy,
        joins,
        waited,
        waited_in_burst,
        worker_seconds / 3600,
        peak,
        peak_sessions,
        timeline,
    )


def pooled(runs: list[Result]) -> Result:
    """One policy over several simulated days: joins pooled, waits summed, hours per day."""
    return Result(
        runs[0].policy,
        [j for r in runs for j in r.joins_ms],
        sum(r.waited for r in runs),
        sum(r.waited_in_burst for r in runs),
        sum(r.worker_hours for r in runs) / len(runs),
        max(r.peak_workers for r in runs),
        max(r.peak_sessions for r in runs),
        runs[0].timeline,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=1, help="first day's seed")
    parser.add_argument("--days", type=int, default=5, help="simulated days (seeds)")
    parser.add_argument("--slots", type=int, default=4, help="sessions per worker")
    parser.add_argument(
        "--cold-start", type=float, default=30.0, help="ASSUMED pod cold start, seconds"
    )
    parser.add_argument("--poll", type=float, default=15.0, help="KEDA polling + HPA sync, s")
    parser.add_argument("--session-minutes", type=float, default=12.0)
    parser.add_argument("--burst", type=int, default=40, help="sessions in the 14:00 burst")
    parser.add_argument("--plot", type=Path, default=ROOT / "docs" / "benchmarks" / "fleet.png")
    parser.add_argument(
        "--plan", type=int, metavar="N", help="print the capacity plan for N concurrent sessions"
    )
    parser.add_argument("--audio-only", action="store_true", help="plan without the avatar")
    parser.add_argument("--job-heartbeat", type=float, default=2.0, help="plan: job alive, s")
    parser.add_argument("--headroom-ratio", type=float, default=0.15, help="plan: warm share")
    args = parser.parse_args()
    if args.plan:
        inputs = Inputs(
            concurrent=args.plan,
            avatar=not args.audio_only,
            job_heartbeat_s=args.job_heartbeat,
            headroom_ratio=args.headroom_ratio,
            slots_per_worker=args.slots,
        )
        print_plan(plan(inputs))
        print_variants(inputs)
        return

    seeds = list(range(args.seed, args.seed + args.days))
    days = [arrivals(seed, burst_at_s=BURST_AT_S, burst_size=args.burst) for seed in seeds]
    policies = [
        Policy("reactive (no headroom)", 0, 0.0),
        Policy("headroom 4 slots", 4, 0.0),
        Policy("headroom 4 + 25 %", 4, 0.25),
        Policy("headroom 8 + 25 %", 8, 0.25),
        Policy("headroom 4 + 50 %", 4, 0.5),
        Policy("headroom 8 + 50 %", 8, 0.5),
    ]
    fields = ControlPlaneSettings.model_fields
    chosen = (fields["fleet_headroom_sessions"].default, fields["fleet_headroom_ratio"].default)
    policies = [
        Policy(f"{p.name} (default)", p.headroom_sessions, p.headroom_ratio)
        if (p.headroom_sessions, p.headroom_ratio) == chosen
        else p
        for p in policies
    ]

    def run(policy: Policy) -> Result:
        return pooled(
            [
                simulate(
                    policy,
                    times,
                    seed=seed,
                    slots=args.slots,
                    cold_start_s=args.cold_start,
                    poll_s=args.poll,
                    scale_down_window_s=600,
                    scale_down_step=2,
                    session_median_s=args.session_minutes * 60,
                )
                for seed, times in zip(seeds, days, strict=True)
            ]
        )

    results = [run(p) for p in policies]
    # the cost baseline: enough workers for the busiest day's peak plus one, all day
    peak_sessions = results[-1].peak_sessions
    results.append(
        run(
            Policy(
                "static, sized for peak",
                0,
                0.0,
                static_workers=math.ceil(peak_sessions / args.slots) + 1,
            )
        )
    )

    sessions = sum(len(t) for t in days)
    print(
        f"{args.days} simulated days (seeds {seeds[0]}-{seeds[-1]}), {sessions} sessions, "
        f"a burst of {args.burst} in one minute at 14:00 each day; {args.slots} sessions/worker, "
        f"ASSUMED pod cold start {args.cold_start:.0f} s, autoscaler period {args.poll:.0f} s"
    )
    header = (
        f"{'policy':30} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>8} {'max s':>6} "
        f"{'waited':>7} {'in burst':>8} {'worker-h/day':>12} {'peak':>5}"
    )
    print(header)
    for r in results:
        max_join = max(r.joins_ms) / 1000
        print(
            f"{r.policy.name:30} {r.pct(0.5):7.0f} {r.pct(0.95):7.0f} {r.pct(0.99):8.0f} "
            f"{max_join:6.1f} {r.waited:7d} {r.waited_in_burst:8d} {r.worker_hours:12.1f} "
            f"{r.peak_workers:5d}"
        )

    fig, (ax_time, ax_cost) = plt.subplots(1, 2, figsize=(13, 4.8))
    default = next((r for r in results if "default" in r.policy.name), results[2])
    hours = [t / 3600 for t, _, _ in default.timeline]
    ax_time.plot(hours, [s for _, s, _ in default.timeline], label="open sessions")
    ax_time.plot(
        hours,
        [w * args.slots for _, _, w in default.timeline],
        label=f"slots of all workers ({args.slots}/worker, incl. starting/draining), default",
    )
    reactive = results[0]
    ax_time.plot(
        hours,
        [w * args.slots for _, _, w in reactive.timeline],
        label="worker slots, reactive",
        alpha=0.6,
    )
    ax_time.set_xlabel("hour of day")
    ax_time.set_ylabel("sessions / slots")
    ax_time.set_title(f"Simulated day (seed {seeds[0]})")
    ax_time.legend(fontsize=8)
    names = [r.policy.name for r in results]
    ax_cost.barh(names, [r.worker_hours for r in results], color="#8fb3d9")
    for y, r in enumerate(results):
        ax_cost.text(
            r.worker_hours + 8,
            y,
            f"p99 {r.pct(0.99) / 1000:.1f} s, max {max(r.joins_ms) / 1000:.1f} s, "
            f"{r.waited} waited ({r.waited_in_burst} in the burst)",
            va="center",
            fontsize=8,
        )
    ax_cost.invert_yaxis()
    ax_cost.set_xlim(0, max(r.worker_hours for r in results) * 1.45)
    ax_cost.set_xlabel(f"worker-hours per day (mean of {args.days} days)")
    ax_cost.set_title(f"Cost and join tail (ASSUMED pod cold start {args.cold_start:.0f} s)")
    fig.tight_layout()
    args.plot.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.plot, dpi=110)
    print(f"plot: {args.plot}")


if __name__ == "__main__":
    main()
