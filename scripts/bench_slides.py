"""Slide-sync benchmark: POST /v1/sessions/{id}/slide -> every client has seen that version.

Runs the real stack on loopback (no worker: nothing here needs the agent), joins N clients to
one session's room as real LiveKit participants, and makes M slide changes through the API
(alternating next/previous, a unique Idempotency-Key each, at a modest random pace). For each
change it measures, from the moment the POST is sent:

- push: the ``room_metadata_changed`` event carrying that version (or a later one) at every
  client — the max over clients is "every client sees it";
- poll: the same clients also poll ``GET /v1/participant/slide`` every 2.5 s (their own
  participant token, random phase each), as the seed prototype's clients did; the first poll
  answer with that version or a later one, max over clients.

Both are measured on the same changes in one run. Prints p50/p95/max and the poll/push p95 ratio;
writes a CDF under docs/.

    .venv/bin/python scripts/bench_slides.py [--clients 5] [--changes 100] [--poll-s 2.5]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx
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
class Client:
    identity: str
    token: str
    room: rtc.Room = field(default_factory=rtc.Room)
    # first time (perf_counter) this client saw a version >= v, through each channel
    pushed: list[tuple[float, int]] = field(default_factory=list)
    polled: list[tuple[float, int]] = field(default_factory=list)


def first_seen(seen: list[tuple[float, int]], version: int) -> float | None:
    return next((t for t, v in seen if v >= version), None)


async def ready_deck(api: httpx.AsyncClient, owner: TenantKey, pages: int) -> str:
    pdf = make_pdf([[f"Slide {i} title", f"Body of slide {i}"] for i in range(1, pages + 1)])
    resp = await api.post("/v1/decks", headers=owner.headers, files={"file": ("d.pdf", pdf)})
    resp.raise_for_status()
    deck_id = str(resp.json()["deck_id"])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        deck = (await api.get(f"/v1/decks/{deck_id}", headers=owner.headers)).json()
        if deck["status"] == "ready":
            return deck_id
        if deck["status"] == "failed":
            raise RuntimeError(f"deck failed: {deck}")
        await asyncio.sleep(0.2)
    raise TimeoutError("deck not ingested in 60 s")


async def poll(api_url: str, client: Client, period_s: float, stop: asyncio.Event) -> None:
    """The seed prototype's client: GET the slide every ``period_s``, random phase."""
    await asyncio.sleep(random.uniform(0, period_s))
    headers = {"Authorization": f"Bearer {client.token}"}
    async with httpx.AsyncClient(base_url=api_url, timeout=10) as http:
        next_at = time.perf_counter()
        while not stop.is_set():
            resp = await http.get("/v1/participant/slide", headers=headers)
            resp.raise_for_status()
            client.polled.append((time.perf_counter(), int(resp.json()["version"])))
            next_at += period_s
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), max(0.0, next_at - time.perf_counter()))


async def run(api_url: str, owner: TenantKey, args: argparse.Namespace) -> dict[str, object]:
    async with httpx.AsyncClient(base_url=api_url, timeout=10) as api:
        deck_id = await ready_deck(api, owner, 5)
        resp = await api.post(
            "/v1/sessions",
            headers=owner.headers,
            json={"deck_id": deck_id, "participant": {"identity": "c0", "name": "c0"}},
        )
        resp.raise_for_status()
        session = resp.json()
        sid, url = session["session_id"], session["livekit_url"]
        clients = [Client("c0", session["token"])]
        for i in range(1, args.clients):
            tok = await api.post(
                f"/v1/sessions/{sid}/tokens",
                headers=owner.headers,
                json={"identity": f"c{i}", "name": f"c{i}", "role": "viewer"},
            )
            tok.raise_for_status()
            clients.append(Client(f"c{i}", tok.json()["token"]))

        for c in clients:

            def on_metadata(_old: str, new: str, c: Client = c) -> None:
                c.pushed.append((time.perf_counter(), metadata_version(new)))

            c.room.on("room_metadata_changed", on_metadata)
            await c.room.connect(url, c.token)
            assert metadata_version(c.room.metadata) == 1, c.room.metadata

        stop = asyncio.Event()
        pollers = [asyncio.create_task(poll(api_url, c, args.poll_s, stop)) for c in clients]
        await asyncio.sleep(args.poll_s + 0.5)  # every poller has started

        sent: dict[int, float] = {}  # version -> POST sent
        http_ms: list[float] = []
        for i in range(args.changes):
            action = "next" if i % 2 == 0 else "previous"
            headers = {**owner.headers, "Idempotency-Key": f"bench-{uuid.uuid4()}"}
            t0 = time.perf_counter()
            resp = await api.post(
                f"/v1/sessions/{sid}/slide", headers=headers, json={"action": action}
            )
            http_ms.append((time.perf_counter() - t0) * 1000)
            resp.raise_for_status()
            sent[int(resp.json()["version"])] = t0
            await asyncio.sleep(random.uniform(args.min_gap_s, args.max_gap_s))
        # let the slowest poller answer after the last change
        await asyncio.sleep(args.poll_s + 1.0)
        stop.set()
        await asyncio.gather(*pollers)
        for c in clients:
            await c.room.disconnect()
        await api.post(f"/v1/sessions/{sid}/end", headers=owner.headers)

    push: list[float] = []
    polled: list[float] = []
    push_each: list[float] = []  # every (client, change) pair, not just the slowest client
    poll_each: list[float] = []
    missing = 0
    skipped = 0
    for version, t0 in sorted(sent.items()):
        push_at = [first_seen(c.pushed, version) for c in clients]
        poll_at = [first_seen(c.polled, version) for c in clients]
        if any(t is None for t in push_at + poll_at):
            missing += 1
            continue
        skipped += sum(1 for c in clients if version not in {v for _, v in c.pushed})
        push.append((max(t for t in push_at if t is not None) - t0) * 1000)
        polled.append((max(t for t in poll_at if t is not None) - t0) * 1000)
        push_each += [(t - t0) * 1000 for t in push_at if t is not None]
        poll_each += [(t - t0) * 1000 for t in poll_at if t is not None]
    return {
        "push": push,
        "poll": polled,
        "push_each": push_each,
        "poll_each": poll_each,
        "http": http_ms,
        "missing": missing,
        "skipped": skipped,
        "clients": len(clients),
    }


def plot(results: dict[str, list[float]], poll_s: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    colors = {"push": "tab:blue", "poll": "tab:orange"}
    for label, values in results.items():
        ordered = sorted(values)
        ys = [(i + 1) / len(ordered) for i in range(len(ordered))]
        ax.step(
            ordered,
            ys,
            where="post",
            color=colors[label.split(",")[0].split()[0]],
            linestyle="-" if "every" in label else ":",
            label=f"{label} (p95 {pct(values, 0.95):.0f} ms)",
        )
    ax.axvline(100, color="black", linestyle="--", linewidth=1, label="target p95 100 ms")
    ax.set_xscale("log")
    ax.set_xlabel("POST /slide sent → the client(s) have the new version (ms, log scale)")
    ax.set_ylabel("fraction of changes")
    ax.set_title(f"Slide sync: LiveKit room metadata push vs {poll_s:g} s polling")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="center", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=5)
    parser.add_argument("--changes", type=int, default=100)
    parser.add_argument("--poll-s", type=float, default=2.5, help="the baseline's poll period")
    parser.add_argument("--min-gap-s", type=float, default=0.2)
    parser.add_argument("--max-gap-s", type=float, default=0.4)
    parser.add_argument("--plot", type=Path, default=ROOT / "docs/benchmarks/slides.png")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp, EphemeralStack(Path(tmp)) as stack:
        # no worker: the session only carries slide state, so it needs no presenter's slot
        stack.start_control_plane(PODIUM_ADMISSION_ENABLED="false")
        tenant = stack.create_tenant("bench")
        out = asyncio.run(run(stack.api_url, tenant, args))

    push, polled, http_ms = out["push"], out["poll"], out["http"]
    assert isinstance(push, list) and isinstance(polled, list) and isinstance(http_ms, list)
    print(
        f"\n{out['clients']} clients, {len(push)} changes measured "
        f"({out['missing']} not seen by every client; {out['skipped']} client-versions "
        f"coalesced into a later push)"
    )
    print(f"{'channel':<26} {'n':>4} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} {'mean ms':>8}")
    push_each, poll_each = out["push_each"], out["poll_each"]
    assert isinstance(push_each, list) and isinstance(poll_each, list)
    rows = {
        "push, every client": push,
        f"poll {args.poll_s:g} s, every client": polled,
        "push, each client": push_each,
        f"poll {args.poll_s:g} s, each client": poll_each,
        "POST /slide response": http_ms,
    }
    for label, values in rows.items():
        print(
            f"{label:<26} {len(values):>4} {pct(values, 0.5):>8.1f} {pct(values, 0.95):>8.1f} "
            f"{max(values):>8.1f} {statistics.mean(values):>8.1f}"
        )
    print(
        f"poll/push p95 ratio (every client): {pct(polled, 0.95) / pct(push, 0.95):.0f}x; "
        f"p50 ratio: {pct(polled, 0.5) / pct(push, 0.5):.0f}x"
    )
    plot(
        {
            "push, every client": push,
            f"poll {args.poll_s:g} s, every client": polled,
            "push, each client": push_each,
            f"poll {args.poll_s:g} s, each client": poll_each,
        },
        args.poll_s,
        args.plot,
    )
    print(f"plot: {args.plot}")


if __name__ == "__main__":
    main()
