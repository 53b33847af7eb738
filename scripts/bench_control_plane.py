"""Control-plane throughput: closed-loop clients against the real stack on loopback.

Starts its own EphemeralStack (Postgres without fsync, Redis, livekit-server) and the control
plane (``podium serve``, ``--workers`` processes), then for each scenario and client count runs
C clients for D seconds, each sending its next request as soon as its previous one answered:

- ``create``: ``POST /v1/sessions`` (no deck), a fresh tenant per run;
- ``slide-one``: ``POST /v1/sessions/{id}/slide`` next/previous on one session (a 150-slide deck;
  each client moves towards the middle from the index it last saw, so no move hits an end), with
  its own ``Idempotency-Key`` each;
- ``slide-many``: the same, each client on its own session;
- ``slide-read``: ``GET /v1/sessions/{id}/slide`` on one session.

What the bench configures, so that the figures measure the control plane and not a refusal:
- the benchmark tenants' limits raised through ``podium admin limits`` (the operator's CLI) to
  the maximum (10,000): slide_changes_per_second, sessions_per_minute, concurrent_sessions;
- admission off (``PODIUM_ADMISSION_ENABLED=false``): no worker runs, so admission would answer
  ``503 no_capacity``; without it a session is still recorded, its room created in LiveKit and
  the presenter dispatched (the dispatch waits in livekit-server for a worker);
- everything else at its default, the audit trail included (one entry per mutating call).

Reports per run: ok/s, p50/p95/p99 latency, errors by status, the per-second throughput over
the run (min/max of the whole seconds: 1.0 is flat), and the CPU used over the run by the
control plane's processes, Postgres, Redis, livekit-server and this load generator (in cores:
1.0 = one core busy). Writes a plot (per-second throughput of every run) to docs/benchmarks/.

    .venv/bin/python scripts/bench_control_plane.py [--clients 16 64] [--duration 10]
        [--scenarios create slide-one slide-many slide-read] [--workers 1] [--plot PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import httpx
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from shared.devstack.stack import EphemeralStack, TenantKey  # noqa: E402
from tests.factories import make_pdf  # noqa: E402

SCENARIOS = ("create", "slide-one", "slide-many", "slide-read")
SLIDES = 150  # the swing of 64 clients in flight around the middle stays inside
MAX_LIMIT = 10_000  # control_plane.limits.models.MAX_LIMIT
REQUEST_TIMEOUT_S = 30.0
# Sends one request; answers its status and when it was sent (perf_counter).
Request = Callable[[aiohttp.ClientSession, int], Awaitable[tuple[int, float]]]


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


@dataclass
class Run:
    scenario: str
    clients: int
    duration_s: float
    latencies: list[float] = field(default_factory=list)
    done_at: list[float] = field(default_factory=list)  # ok answers, seconds from the start
    errors: collections.Counter[str] = field(default_factory=collections.Counter)
    cpu: dict[str, float] = field(default_factory=dict)  # cores, over the run

    @property
    def ok_per_s(self) -> float:
        return len(self.latencies) / self.duration_s

    def server_cpu_ms_per_ok(self) -> float:
        """CPU of every server process (control plane, Postgres, Redis, livekit-server) per ok
        answer: what a request costs, whatever else shares the machine."""
        busy = sum(v for k, v in self.cpu.items() if k != "loadgen") * self.duration_s
        return busy * 1000 / len(self.latencies) if self.latencies else float("nan")

    def per_second(self) -> list[int]:
        buckets = [0] * int(self.duration_s)
        for t in self.done_at:
            if int(t) < len(buckets):
                buckets[int(t)] += 1
        return buckets


class CpuMeter:
    """CPU seconds of process trees (a process and its children), read before and after."""

    def __init__(self, roots: dict[str, int]) -> None:
        self._roots = roots

    def read(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for name, pid in self._roots.items():
            total = 0.0
            try:
                root = psutil.Process(pid)
                # This process's children are the stack's services: counted under their names.
                tree = [root] if pid == os.getpid() else [root, *root.children(recursive=True)]
                for proc in tree:
                    try:
                        t = proc.cpu_times()
                        total += t.user + t.system
                    except psutil.NoSuchProcess:
                        pass
            except psutil.NoSuchProcess:
                pass
            out[name] = total
        return out


async def ready_deck(api: httpx.AsyncClient, owner: TenantKey) -> str:
    pdf = make_pdf([[f"Slide {i}", f"Body of slide {i}"] for i in range(1, SLIDES + 1)])
    resp = await api.post("/v1/decks", headers=owner.headers, files={"file": ("d.pdf", pdf)})
    resp.raise_for_status()
    deck_id = str(resp.json()["deck_id"])
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        deck = (await api.get(f"/v1/decks/{deck_id}", headers=owner.headers)).json()
        if deck["status"] == "ready":
            return deck_id
        if deck["status"] == "failed":
            raise RuntimeError(f"deck failed: {deck}")
        await asyncio.sleep(0.2)
    raise TimeoutError("deck not ingested in 120 s")


def new_tenant(stack: EphemeralStack, name: str) -> TenantKey:
    tenant = stack.create_tenant(name)
    stack.set_limits(
        tenant,
        slide_changes_per_second=MAX_LIMIT,
        sessions_per_minute=MAX_LIMIT,
        concurrent_sessions=MAX_LIMIT,
    )
    return tenant


async def new_sessions(api: httpx.AsyncClient, tenant: TenantKey, deck: str, n: int) -> list[str]:
    ids = []
    for _ in range(n):
        resp = await api.post("/v1/sessions", headers=tenant.headers, json={"deck_id": deck})
        resp.raise_for_status()
        ids.append(resp.json()["session_id"])
    return ids


async def closed_loop(
    base_url: str,
    run: Run,
    request: Request,
    meter: CpuMeter,
) -> None:
    connector = aiohttp.TCPConnector(limit=run.clients, force_close=False)
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
    async with aiohttp.ClientSession(base_url, connector=connector, timeout=timeout) as http:
        start = time.perf_counter()
        stop_at = start + run.duration_s
        before = meter.read()

        async def client(no: int) -> None:
            while time.perf_counter() < stop_at:
                try:
                    status, sent = await request(http, no)
                except (aiohttp.ClientError, TimeoutError) as exc:
                    run.errors[type(exc).__name__] += 1
                    continue
                now = time.perf_counter()
                if 200 <= status < 300:
                    run.latencies.append(now - sent)
                    run.done_at.append(now - start)
                else:
                    run.errors[str(status)] += 1

        await asyncio.gather(*(client(i) for i in range(run.clients)))
        elapsed = time.perf_counter() - start
        after = meter.read()
    run.cpu = {name: (after[name] - before[name]) / elapsed for name in after}


def slide_mover(tenant: TenantKey, sessions: list[str]) -> Request:
    seen: dict[int, int] = {}

    async def move(http: aiohttp.ClientSession, no: int) -> tuple[int, float]:
        sid = sessions[no % len(sessions)]
        action = "next" if seen.get(no, 1) <= SLIDES // 2 else "previous"
        headers = {**tenant.headers, "Idempotency-Key": uuid.uuid4().hex}
        sent = time.perf_counter()
        async with http.post(
            f"/v1/sessions/{sid}/slide", json={"action": action}, headers=headers
        ) as resp:
            body = await resp.json(content_type=None)
            index = body.get("index") or (body.get("state") or {}).get("index")
            if index:
                seen[no] = int(index)
            return resp.status, sent

    return move


@dataclass
class Slides:
    tenant: TenantKey
    deck: str


async def scenario_run(
    stack: EphemeralStack,
    scenario: str,
    clients: int,
    duration: float,
    meter: CpuMeter,
    slides: Slides,
    profile: Path | None = None,
) -> Run:
    run = Run(scenario, clients, duration)
    request: Request
    async with httpx.AsyncClient(base_url=stack.api_url, timeout=60) as api:
        if scenario == "create":
            # Its own tenant: each run starts from no open sessions.
            tenant = new_tenant(stack, f"bench {scenario} {clients}")

            async def create(http: aiohttp.ClientSession, _: int) -> tuple[int, float]:
                sent = time.perf_counter()
                async with http.post("/v1/sessions", json={}, headers=tenant.headers) as resp:
                    await resp.read()
                    return resp.status, sent

            request = create
        else:
            tenant = slides.tenant
            count = clients if scenario == "slide-many" else 1
            sessions = await new_sessions(api, tenant, slides.deck, count)
            if scenario == "slide-read":
                url = f"/v1/sessions/{sessions[0]}/slide"

                async def read(http: aiohttp.ClientSession, _: int) -> tuple[int, float]:
                    sent = time.perf_counter()
                    async with http.get(url, headers=tenant.headers) as resp:
                        await resp.read()
                        return resp.status, sent

                request = read
            else:
                request = slide_mover(tenant, sessions)
    spy = None
    if profile is not None:
        assert stack.api_process is not None and stack.api_process.proc is not None
        spy = await asyncio.create_subprocess_exec(
            "py-spy", "record", "--pid", str(stack.api_process.proc.pid), "--subprocesses",
            "--nonblocking", "--format", "raw", "--duration", str(int(duration)),
            "--output", str(profile / f"{scenario}-{clients}.txt"),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
    await closed_loop(stack.api_url, run, request, meter)
    if spy is not None:
        await spy.wait()
    return run


def table(runs: list[Run]) -> str:
    head = (
        f"{'scenario':<11} {'C':>3} {'ok/s':>7} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} "
        f"{'min/max 1s':>10} {'errors':<18} {'cpu: api':>8} {'pg':>5} {'redis':>5} {'lk':>5} "
        f"{'load':>5} {'cpu ms/ok':>9}"
    )
    lines = [head]
    for r in runs:
        ms = [s * 1000 for s in r.latencies]
        per_s = r.per_second()
        flat = f"{min(per_s)}/{max(per_s)}" if per_s and max(per_s) else "-"
        errors = ",".join(f"{k}:{v}" for k, v in sorted(r.errors.items())) or "0"
        lines.append(
            f"{r.scenario:<11} {r.clients:>3} {r.ok_per_s:>7.0f} {pct(ms, 0.5):>7.1f} "
            f"{pct(ms, 0.95):>7.1f} {pct(ms, 0.99):>7.1f} {flat:>10} {errors:<18} "
            f"{r.cpu.get('api', 0):>8.2f} {r.cpu.get('postgres', 0):>5.2f} "
            f"{r.cpu.get('redis', 0):>5.2f} {r.cpu.get('livekit', 0):>5.2f} "
            f"{r.cpu.get('loadgen', 0):>5.2f} {r.server_cpu_ms_per_ok():>9.2f}"
        )
    return "\n".join(lines)


def plot(runs: list[Run], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scenarios = list(dict.fromkeys(r.scenario for r in runs))
    fig, axes = plt.subplots(1, len(scenarios), figsize=(4.2 * len(scenarios), 3.6), squeeze=False)
    for ax, scenario in zip(axes[0], scenarios, strict=True):
        for r in (r for r in runs if r.scenario == scenario):
            per_s = r.per_second()
            ax.plot(range(1, len(per_s) + 1), per_s, marker="o", label=f"{r.clients} clients")
        ax.set_title(scenario)
        ax.set_xlabel("second of the run")
        ax.set_ylabel("ok answers / s")
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per run")
    parser.add_argument("--scenarios", nargs="+", choices=SCENARIOS, default=list(SCENARIOS))
    parser.add_argument("--workers", type=int, default=1, help="control-plane processes")
    parser.add_argument("--plot", type=Path, default=ROOT / "docs/benchmarks/control_plane.png")
    parser.add_argument("--label", default="", help="added to the plot's title")
    parser.add_argument(
        "--profile", type=Path, help="py-spy each run's control plane into DIR (collapsed stacks)"
    )
    args = parser.parse_args()
    if max(args.clients) > 1000 or args.duration > 120:
        parser.error("bounded: at most 1000 clients and 120 s a run")
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
    load = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp, EphemeralStack(Path(tmp)) as stack:
        stack.start_control_plane(
            timeout_s=180,  # each process imports and starts everything; slow on a busy box
            PODIUM_ADMISSION_ENABLED="false",
            PODIUM_WEB_CONCURRENCY=str(args.workers),
        )
        assert stack.api_process is not None and stack.api_process.proc is not None
        pids = {
            "api": stack.api_process.proc.pid,
            "postgres": _pid(stack.postgres.process),
            "redis": _pid(stack.redis.process),
            "livekit": _pid(stack.livekit.process),
            "loadgen": os.getpid(),
        }
        meter = CpuMeter(pids)
        tenant = new_tenant(stack, "bench slides")
        async with httpx.AsyncClient(base_url=stack.api_url, timeout=60) as api:
            slides = Slides(tenant, await ready_deck(api, tenant))
        runs = []
        for scenario in args.scenarios:
            for clients in args.clients:
                runs.append(
                    await scenario_run(
                        stack, scenario, clients, args.duration, meter, slides, args.profile
                    )
                )
                print(table(runs[-1:]).splitlines()[1], flush=True)
    end_load = os.getloadavg()
    print()
    print(
        f"{os.cpu_count()} cores; control plane: {args.workers} process(es); "
        f"load average before {load[0]:.2f}, after {end_load[0]:.2f} (1 min)"
    )
    print(
        "cpu columns: cores busy over the run (api = every control-plane process); cpu ms/ok: "
        "CPU of all server processes per ok answer"
    )
    print(table(runs))
    title = (
        f"control plane, {args.workers} process(es), {args.duration:.0f} s runs; "
        f"load avg {load[0]:.1f}-{end_load[0]:.1f} {args.label}"
    )
    plot(runs, args.plot, title)
    print(f"plot: {args.plot}")


def _pid(proc: object) -> int:
    popen = getattr(proc, "proc", None)
    return int(popen.pid) if popen is not None else -1


if __name__ == "__main__":
    asyncio.run(main())
