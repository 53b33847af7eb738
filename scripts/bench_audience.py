"""Audience benchmark: one presentation, one participant and N viewers in one room.

Runs the real stack on loopback (livekit-server, control plane, one worker presenting), joins a
participant (the presenter greets them, then the presentation is paused so nothing narrates
during the measurement) and then N viewers, each a real LiveKit client in this process that
follows the room metadata and subscribes nothing (50 Python clients in one process subscribing
audio overran this loaded machine: livekit-server logged "track not bound after timeout").
Measured, first with no viewers and then with N:

- CPU (share of one core) and memory (RSS of the process tree) of the worker, livekit-server,
  the control plane and the clients' process, over a quiet window;
- then M slide changes through the API (alternating next/previous): from the POST being sent to
  each viewer's ``room_metadata_changed`` with that version (each viewer, and the slowest of
  them: "every viewer sees it"), with CPU over the changes.

Prints a table, writes a plot and the table under docs/benchmarks/.

    .venv/bin/python scripts/bench_audience.py [--viewers 50] [--changes 60] [--quiet-s 20]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil
from livekit import rtc

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from control_plane.slides.publisher import metadata_version  # noqa: E402
from shared.devstack.stack import EphemeralStack, TenantKey  # noqa: E402
from tests.factories import make_pdf  # noqa: E402


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


@dataclass
class Viewer:
    token: str
    room: rtc.Room = field(default_factory=rtc.Room)
    seen: list[tuple[float, int]] = field(default_factory=list)  # (perf_counter, version)

    def first_seen(self, version: int) -> float | None:
        return next((t for t, v in self.seen if v >= version), None)


class Meter:
    """CPU seconds and RSS of process trees (a process and its children)."""

    def __init__(self, roots: dict[str, int]) -> None:
        self._roots = roots

    def _tree(self, pid: int) -> list[psutil.Process]:
        root = psutil.Process(pid)
        # this process's children are the stack's services: counted under their own names
        return [root] if pid == os.getpid() else [root, *root.children(recursive=True)]

    def cpu(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for name, pid in self._roots.items():
            total = 0.0
            for proc in self._tree(pid):
                try:
                    t = proc.cpu_times()
                    total += t.user + t.system
                except psutil.NoSuchProcess:
                    pass
            out[name] = total
        return out

    def rss_mb(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for name, pid in self._roots.items():
            total = 0
            for proc in self._tree(pid):
                with contextlib.suppress(psutil.NoSuchProcess):
                    total += proc.memory_info().rss
            out[name] = total / 2**20
        return out


@dataclass
class Window:
    label: str
    cpu_pct: dict[str, float]
    rss_mb: dict[str, float]


async def measure(meter: Meter, label: str, seconds: float) -> Window:
    before, t0 = meter.cpu(), time.perf_counter()
    await asyncio.sleep(seconds)
    after, wall = meter.cpu(), time.perf_counter() - t0
    return Window(label, {k: 100 * (after[k] - before[k]) / wall for k in after}, meter.rss_mb())


async def ready_deck(api: httpx.AsyncClient, owner: TenantKey) -> str:
    pdf = make_pdf([[f"Slide {i} title", f"Body of slide {i}"] for i in range(1, 6)])
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


async def run(
    api_url: str, owner: TenantKey, meter: Meter, args: argparse.Namespace
) -> dict[str, object]:
    async with httpx.AsyncClient(base_url=api_url, timeout=30) as api:
        deck_id = await ready_deck(api, owner)
        resp = await api.post(
            "/v1/sessions",
            headers=owner.headers,
            json={"deck_id": deck_id, "participant": {"identity": "host", "name": "Hana"}},
        )
        resp.raise_for_status()
        session = resp.json()
        sid, url = session["session_id"], session["livekit_url"]
        paused = await api.post(
            f"/v1/sessions/{sid}/slide",
            headers={**owner.headers, "Idempotency-Key": "bench-pause"},
            json={"action": "pause"},
        )
        paused.raise_for_status()
        participant = rtc.Room()
        await participant.connect(url, session["token"])
        # the presenter joins and greets; give it time to finish before measuring
        deadline = time.monotonic() + 60
        while not any(
            p.identity.startswith("agent-") for p in participant.remote_participants.values()
        ):
            if time.monotonic() > deadline:
                raise TimeoutError("no presenter joined")
            await asyncio.sleep(0.2)
        await asyncio.sleep(args.settle_s)
        windows = [await measure(meter, "idle, 0 viewers", args.quiet_s)]

        viewers: list[Viewer] = []
        for i in range(args.viewers):
            tok = await api.post(
                f"/v1/sessions/{sid}/tokens",
                headers=owner.headers,
                json={"identity": f"v{i}", "name": f"Viewer {i}", "role": "viewer"},
            )
            tok.raise_for_status()
            viewers.append(Viewer(tok.json()["token"]))
        joined_at = time.perf_counter()
        for v in viewers:

            def on_metadata(_old: str, new: str, v: Viewer = v) -> None:
                v.seen.append((time.perf_counter(), metadata_version(new)))

            v.room.on("room_metadata_changed", on_metadata)
        # a few at a time: the SDK fails a connect whose callback waits too long on a busy loop
        for start in range(0, len(viewers), 5):
            await asyncio.gather(
                *(
                    v.room.connect(url, v.token, rtc.RoomOptions(auto_subscribe=False))
                    for v in viewers[start : start + 5]
                )
            )
        join_s = time.perf_counter() - joined_at
        await asyncio.sleep(args.settle_s)
        windows.append(await measure(meter, f"idle, {len(viewers)} viewers", args.quiet_s))

        sent: dict[int, float] = {}
        before, t_changes = meter.cpu(), time.perf_counter()
        for i in range(args.changes):
            headers = {**owner.headers, "Idempotency-Key": f"bench-{uuid.uuid4()}"}
            t0 = time.perf_counter()
            resp = await api.post(
                f"/v1/sessions/{sid}/slide",
                headers=headers,
                json={"action": "next" if i % 2 == 0 else "previous"},
            )
            resp.raise_for_status()
            sent[int(resp.json()["version"])] = t0
            await asyncio.sleep(args.gap_s)
        await asyncio.sleep(1.0)
        after, wall = meter.cpu(), time.perf_counter() - t_changes
        windows.append(
            Window(
                f"slide changes, {len(viewers)} viewers",
                {k: 100 * (after[k] - before[k]) / wall for k in after},
                meter.rss_mb(),
            )
        )
        await asyncio.gather(*(v.room.disconnect() for v in viewers), return_exceptions=True)
        await participant.disconnect()
        await api.post(f"/v1/sessions/{sid}/end", headers=owner.headers)

    each: list[float] = []
    every: list[float] = []
    missing = 0
    for version, t0 in sorted(sent.items()):
        seen = [v.first_seen(version) for v in viewers]
        if any(t is None for t in seen):
            missing += 1
            continue
        times = [(t - t0) * 1000 for t in seen if t is not None]
        each += times
        every.append(max(times))
    return {
        "windows": windows,
        "each": each,
        "every": every,
        "missing": missing,
        "join_s": join_s,
    }


def table(out: dict[str, object], viewers: int) -> str:
    windows = out["windows"]
    each, every = out["each"], out["every"]
    assert isinstance(windows, list) and isinstance(each, list) and isinstance(every, list)
    names = list(windows[0].cpu_pct)
    lines = [
        f"{viewers} viewers joined in {out['join_s']:.1f} s; {len(every)} slide changes measured "
        f"({out['missing']} not seen by every viewer)",
        "",
        "| window | " + " | ".join(f"{n} CPU % / RSS MB" for n in names) + " |",
        "|---|" + "---|" * len(names),
    ]
    for w in windows:
        cells = [f"{w.cpu_pct[n]:.1f} / {w.rss_mb[n]:.0f}" for n in names]
        lines.append(f"| {w.label} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "| slide change → viewer has it | n | p50 ms | p95 ms | max ms | mean ms |",
        "|---|---|---|---|---|---|",
    ]
    for label, values in (("each viewer", each), ("every viewer (slowest)", every)):
        lines.append(
            f"| {label} | {len(values)} | {pct(values, 0.5):.1f} | {pct(values, 0.95):.1f} | "
            f"{max(values):.1f} | {statistics.mean(values):.1f} |"
        )
    return "\n".join(lines)


def plot(out: dict[str, object], viewers: int, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    windows = out["windows"]
    assert isinstance(windows, list)
    fig, (lat, cpu) = plt.subplots(1, 2, figsize=(11, 4.2))
    for label, key, style in (("each viewer", "each", ":"), ("every viewer", "every", "-")):
        values = out[key]
        assert isinstance(values, list)
        ordered = sorted(values)
        ys = [(i + 1) / len(ordered) for i in range(len(ordered))]
        lat.step(
            ordered, ys, where="post", linestyle=style,
            label=f"{label} (p95 {pct(values, 0.95):.0f} ms)",
        )  # fmt: skip
    lat.axvline(100, color="black", linestyle="--", linewidth=1, label="target p95 100 ms")
    lat.set_xlabel("POST /slide sent → viewer's room metadata has it (ms)")
    lat.set_ylabel("fraction of changes")
    lat.set_title(f"Slide fan-out, {viewers} viewers in one room")
    lat.grid(True, alpha=0.3)
    lat.legend(fontsize=8)
    names = list(windows[0].cpu_pct)
    width = 0.8 / len(windows)
    for i, w in enumerate(windows):
        cpu.bar(
            [n + i * width for n in range(len(names))],
            [w.cpu_pct[n] for n in names],
            width,
            label=w.label,
        )
    cpu.set_xticks([n + width * (len(windows) - 1) / 2 for n in range(len(names))], names)
    cpu.set_ylabel("CPU, % of one core")
    cpu.set_title("CPU by process")
    cpu.grid(True, axis="y", alpha=0.3)
    cpu.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--viewers", type=int, default=50)
    parser.add_argument("--changes", type=int, default=60)
    parser.add_argument("--gap-s", type=float, default=0.5)
    parser.add_argument("--quiet-s", type=float, default=20.0)
    parser.add_argument("--settle-s", type=float, default=8.0)
    parser.add_argument("--out", type=Path, default=ROOT / "docs/benchmarks/audience")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp, EphemeralStack(Path(tmp)) as stack:
        stack.start_control_plane(PODIUM_ADMISSION_ENABLED="false")
        worker = stack.start_worker()
        tenant = stack.create_tenant("bench")
        pids = {
            "worker": worker.proc.pid if worker.proc else 0,
            "livekit-server": stack.livekit.process.proc.pid if stack.livekit.process.proc else 0,
            "control plane": stack.api_process.proc.pid
            if stack.api_process and stack.api_process.proc
            else 0,
            "clients": os.getpid(),
        }
        out = asyncio.run(run(stack.api_url, tenant, Meter(pids), args))

    text = table(out, args.viewers)
    print("\n" + text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".md").write_text(text + "\n")
    plot(out, args.viewers, args.out.with_suffix(".png"))
    print(f"table: {args.out.with_suffix('.md')}\nplot: {args.out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
