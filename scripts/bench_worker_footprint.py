"""CPU and memory of one worker's process tree with N presenting sessions (sizing deploy/k8s).

Starts the offline stack on loopback, one worker with a warm process, uploads the product deck,
then for each N creates N sessions at once with a listener in each room and samples the
worker's process tree (psutil) while the presenter narrates: CPU seconds consumed per second
("cores") and proportional set size. Narration only: user turns (Whisper) add bursts on top.

    .venv/bin/python scripts/bench_worker_footprint.py --window 30
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil
from livekit import rtc

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from shared.devstack.stack import EphemeralStack  # noqa: E402
from tests.factories import make_product_deck  # noqa: E402


def tree(pid: int) -> list[psutil.Process]:
    p = psutil.Process(pid)
    return [p, *p.children(recursive=True)]


def cpu_seconds(procs: list[psutil.Process]) -> float:
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


def pss_mb(procs: list[psutil.Process]) -> float:
    total = 0
    for p in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            total += p.memory_full_info().pss
    return total / 2**20


async def wait_ready(api: httpx.AsyncClient, headers: dict[str, str], deck_id: str) -> None:
    for _ in range(600):
        deck = (await api.get(f"/v1/decks/{deck_id}", headers=headers)).json()
        if deck["status"] == "ready":
            return
        await asyncio.sleep(0.2)
    raise RuntimeError("the deck was not ingested in 2 minutes")


async def main(counts: list[int], window_s: float) -> None:
    with tempfile.TemporaryDirectory() as tmp, EphemeralStack(Path(tmp)) as stack:
        stack.start_control_plane()
        worker = stack.start_worker("cap", PODIUM_MAX_SESSIONS="8", PODIUM_NUM_IDLE_PROCESSES="1")
        assert worker.proc is not None
        tenant = stack.create_tenant("cap")
        async with httpx.AsyncClient(base_url=stack.api_url, timeout=10) as api:
            resp = await api.post(
                "/v1/decks", headers=tenant.headers, files={"file": ("a.pptx", make_product_deck())}
            )
            deck_id = resp.json()["deck_id"]
            await wait_ready(api, tenant.headers, deck_id)
            await asyncio.sleep(5)
            procs = tree(worker.proc.pid)
            c0 = cpu_seconds(procs)
            await asyncio.sleep(window_s)
            idle_cores = (cpu_seconds(tree(worker.proc.pid)) - c0) / window_s
            print(f"sessions=0 cores={idle_cores:.2f} pss_mb={pss_mb(tree(worker.proc.pid)):.0f}")
            for n in counts:
                rooms: list[rtc.Room] = []
                ids = []
                for _ in range(n):
                    s = (
                        await api.post(
                            "/v1/sessions",
                            headers=tenant.headers,
                            json={"deck_id": deck_id, "participant": {"name": "Ada"}},
                        )
                    ).json()
                    ids.append(s["session_id"])
                    room = rtc.Room()
                    await room.connect(s["livekit_url"], s["token"])
                    rooms.append(room)
                await asyncio.sleep(8)  # greetings done, narration running
                procs = tree(worker.proc.pid)
                c0 = cpu_seconds(procs)
                t0 = time.monotonic()
                await asyncio.sleep(window_s)
                cores = (cpu_seconds(tree(worker.proc.pid)) - c0) / (time.monotonic() - t0)
                print(
                    f"sessions={n} cores={cores:.2f} pss_mb={pss_mb(tree(worker.proc.pid)):.0f} "
                    f"load1={os.getloadavg()[0]:.1f}",
                    flush=True,
                )
                for room in rooms:
                    await room.disconnect()
                for sid in ids:
                    await api.post(f"/v1/sessions/{sid}/end", headers=tenant.headers)
                await asyncio.sleep(6)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--window", type=float, default=30, help="sampling window, seconds")
    parser.add_argument("--sessions", type=int, nargs="+", default=[1, 2, 4])
    args = parser.parse_args()
    asyncio.run(main(args.sessions, args.window))
