"""Local avatar benchmark: what the face costs, how it arrives and how its lips keep time.

1. Render cost, in-process (no room): the per-frame work of FaceVideoGenerator (Motion from the
   frame's audio slice, FaceRenderer composing the RGBA frame, the rtc frames) at 640x360 and
   1280x720 while speaking (espeak-ng audio pushed as 10 ms TTS frames) and idle, plus the
   RGBA -> I420 conversion the video source does next; the share of one core 25 fps costs.
2-4. The real stack on loopback (livekit-server, control plane, one worker with the offline
   pipeline), a 32-slide deck narrated sentence by sentence (not paused). For N = 1..4
   concurrent sessions, each with one listening client (tests/e2e/audience.py) that does not
   subscribe to video, except session 1's probe client, which decodes every frame and measures
   how open the mouth is (face.mouth_opening). Per N: the worker process tree's CPU (psutil,
   the worker, its job processes and Piper) over a window of narration, then every session is
   paused and the probe's idle fps measured. Once with PODIUM_AVATAR_PROVIDER=local, once with
   none (audio-only), same deck, same windows.
   Lip-sync at the probe: for each speech onset (agent audio audible, int16 RMS >= 300, after
   >= 300 ms without), the arrival of the first video frame with mouth_opening > 0.02 minus the
   arrival of that first audible audio frame; closings likewise (last audible frame -> first
   shut frame). Both are arrival times at a Python client: no receiver-side A/V sync, no
   playout delay; a browser's jitter buffers would shift audio and video by their own delays.
5. docs/avatar-sample.png (a pose from the speaking run, mid-word) and docs/avatar-styles.png.

    .venv/bin/python scripts/bench_avatar.py [--sessions 1 2 3 4] [--window 30]
        [--lipsync-window 60] [--logs DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import functools
import itertools
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import httpx
import numpy as np
from livekit import rtc
from livekit.agents.voice.avatar import AudioSegmentEnd
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from bench_voice import pct  # noqa: E402
from bench_worker_footprint import cpu_seconds, tree, wait_ready  # noqa: E402

from agent_worker.avatar.face import FaceRenderer, Pose  # noqa: E402
from agent_worker.avatar.generator import FaceVideoGenerator  # noqa: E402
from agent_worker.avatar.motion import Motion  # noqa: E402
from agent_worker.avatar.presence import SAMPLE_RATE  # noqa: E402
from shared.devstack.stack import EphemeralStack, TenantKey  # noqa: E402
from shared.schemas import AvatarStyle  # noqa: E402
from tests.e2e.audience import MOUTH_OPEN, Audience, Seen  # noqa: E402
from tests.e2e.speech import espeak  # noqa: E402
from tests.factories import PRODUCT_DECK, make_pdf  # noqa: E402

FPS = 25.0
SIZES = [(640, 360), (1280, 720)]
SPOKEN = (
    "Plans start at forty nine dollars per month for five seats. Setup takes about fifteen "
    "minutes with the Snowflake or BigQuery connector, and forecasting ships in the spring."
)
QUIET_GAP_S = 0.3  # an onset is audible audio after at least this long without
FRAME_S = 0.01  # AudioStream delivers 10 ms frames
SETTLE_S = 8.0  # after joining: greetings done, narration under way
IDLE_S = 5.0
STYLES = {
    "default": AvatarStyle(),
    "short hair, glasses": AvatarStyle(
        hair_style="short", glasses=True, skin="#F1C6A8", hair="#6B4A2B", accent="#0F9D77"
    ),
    "long hair": AvatarStyle(
        hair_style="long",
        skin="#A8704B",
        hair="#1B1412",
        jacket="#5A2336",
        background="#F4EDE4",
        accent="#D9822B",
    ),
    "no hair, brand navy": AvatarStyle(
        hair_style="none",
        skin="#C68A62",
        jacket="#2B2F36",
        shirt="#DDE8F7",
        background="#DCE3EC",
        accent="#1B2A6B",
    ),
}


# -- 1. render cost (and the sample frame) ----------------------------------------------------


@dataclass
class RenderCost:
    width: int
    height: int
    speaking_ms: list[float]
    idle_ms: list[float]
    draw_ms: float  # RenderStats: FaceRenderer.rgba alone, speaking and idle frames
    convert_ms: list[float]
    poses: list[Pose]

    @property
    def core_share(self) -> float:
        return statistics.mean(self.speaking_ms) * FPS / 1000


def the_voice() -> np.ndarray[Any, np.dtype[np.int16]]:
    samples, rate = espeak(SPOKEN)
    at = np.linspace(0, len(samples) - 1, int(len(samples) * SAMPLE_RATE / rate))
    resampled: np.ndarray[Any, np.dtype[np.int16]] = np.interp(
        at, np.arange(len(samples)), samples
    ).astype(np.int16)
    return resampled


async def render_cost(width: int, height: int, voice: np.ndarray[Any, Any]) -> RenderCost:
    renderer = FaceRenderer(AvatarStyle(), width, height)
    generator = FaceVideoGenerator(renderer, fps=FPS, sample_rate=SAMPLE_RATE, seed=1)
    step = SAMPLE_RATE // 100
    for _ in range(3):
        for start in range(0, len(voice) - step + 1, step):
            chunk = voice[start : start + step].tobytes()
            await generator.push_audio(rtc.AudioFrame(chunk, SAMPLE_RATE, 1, step))
    await generator.push_audio(AudioSegmentEnd())
    # All the audio is queued, so the generator never waits: the time from handing out one
    # frame's audio to the next video frame is that frame's work.
    speaking: list[float] = []
    poses: list[Pose] = []
    stream = cast(AsyncGenerator[Any, None], generator.__aiter__())
    mark = time.perf_counter()
    async for item in stream:
        if isinstance(item, rtc.VideoFrame):
            speaking.append((time.perf_counter() - mark) * 1000)
            poses.append(generator.last_pose)
        elif isinstance(item, AudioSegmentEnd):
            break
        mark = time.perf_counter()
    await stream.aclose()
    # Idle frames are paced by the generator's clock; their work is Motion.silent + a draw.
    motion = Motion(FPS, scale=renderer.scale, seed=1)
    idle: list[float] = []
    convert: list[float] = []
    for _ in range(250):
        started = time.perf_counter()
        frame = rtc.VideoFrame(
            width, height, rtc.VideoBufferType.RGBA, renderer.rgba(motion.silent())
        )
        idle.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        frame.convert(rtc.VideoBufferType.I420)
        convert.append((time.perf_counter() - started) * 1000)
    return RenderCost(width, height, speaking, idle, generator.stats.mean_ms, convert, poses)


def save_images(poses: list[Pose], docs: Path) -> None:
    """A pose the speaking run produced mid-word (wide open, eyes open), and four styles."""
    mid_word = max(
        (p for p in poses if p.eyes == "open" and p.shape == "neutral"),
        key=lambda p: (p.mouth, -abs(p.dx)),
    )
    FaceRenderer(AvatarStyle()).frame(mid_word).convert("RGB").save(docs / "avatar-sample.png")
    tiles = [
        FaceRenderer(style).frame(mid_word if i == 0 else Pose())
        for i, style in enumerate(STYLES.values())
    ]
    sheet = Image.new("RGB", (1280, 720))
    for i, tile in enumerate(tiles):
        sheet.paste(tile.convert("RGB"), ((i % 2) * 640, (i // 2) * 360))
    sheet.save(docs / "avatar-styles.png")


# -- 2-4. sessions through a real room ----------------------------------------------------------


@dataclass
class Step:
    provider: str
    n: int
    window_s: float
    cores: float
    load: float
    speaking_fps: float | None
    idle_fps: float | None
    longest_frame_gap_ms: float | None
    onsets_ms: list[float]
    closings_ms: list[float]
    onsets_unmatched: int
    audible_s_per_min: float  # mean over the sessions' clients
    dropouts_per_min: float  # 100-300 ms holes in audible speech, per audible minute
    sfu_cores: float = 0.0  # livekit-server, forwarding every session's media
    client_cores: float = 0.0  # this process: the clients, and the probe decoding video


def long_deck() -> bytes:
    """32 slides (the product deck's titles and bullets, four times): narration never ends
    within a window, and every bullet is its own sentence with a pause before it."""
    pages = [[title, *body.split("\n")] for title, body, _ in PRODUCT_DECK]
    return make_pdf(pages * 4)


def speech_edges(voiced: list[float], start: float, end: float) -> list[tuple[float, float]]:
    """(end of a stretch of speech, start of the next) for every quiet gap in [start, end]."""
    return [
        (prev, cur)
        for prev, cur in itertools.pairwise(voiced)
        if cur - prev >= QUIET_GAP_S and start <= prev and cur <= end
    ]


def lip_sync(
    frames: list[Seen], voiced: list[float], start: float, end: float
) -> tuple[list[float], list[float], int]:
    """Mouth-open minus audio onset, and mouth-shut minus audio end (ms), at each quiet gap;
    and how many onsets had no clean mouth opening (still open from before, or none)."""
    onsets: list[float] = []
    closings: list[float] = []
    unmatched = 0
    for quiet_from, voice_at in speech_edges(voiced, start, end):
        # the mouth eases shut over ~5 frames: look from there, or 300 ms before the voice
        lo = max(quiet_from + 0.2, voice_at - 0.3)
        window = [f for f in frames if lo <= f.at <= voice_at + 0.5]
        opened = next((f.at for f in window if f.mouth > MOUTH_OPEN), None)
        if not window or window[0].mouth > MOUTH_OPEN or opened is None:
            unmatched += 1
        else:
            onsets.append((opened - voice_at) * 1000)
        gap = [f for f in frames if quiet_from - 0.3 <= f.at < voice_at - 0.1]
        last_open = max((i for i, f in enumerate(gap) if f.mouth > MOUTH_OPEN), default=None)
        if last_open is not None and last_open + 1 < len(gap):
            closings.append((gap[last_open + 1].at - quiet_from) * 1000)
    return onsets, closings, unmatched


def frame_rate(frames: list[Seen], keep: Any) -> float | None:
    """Frames per second over the intervals that end in a frame ``keep`` accepts."""
    intervals = [b.at - a.at for a, b in itertools.pairwise(frames) if keep(b)]
    return len(intervals) / sum(intervals) if intervals else None


def audio_health(voiced: list[float], start: float, end: float) -> tuple[float, float]:
    heard = [t for t in voiced if start <= t <= end]
    audible_min = len(heard) * FRAME_S / 60
    holes = sum(0.1 <= b - a < QUIET_GAP_S for a, b in itertools.pairwise(heard))
    return audible_min * 60 / ((end - start) / 60), holes / audible_min if audible_min else 0.0


async def start_session(api: httpx.AsyncClient, owner: TenantKey, deck_id: str) -> dict[str, Any]:
    resp = await api.post(
        "/v1/sessions",
        headers=owner.headers,
        json={"deck_id": deck_id, "participant": {"name": "Ada"}},
    )
    resp.raise_for_status()
    return dict(resp.json())


async def run_step(
    api: httpx.AsyncClient,
    owner: TenantKey,
    deck_id: str,
    worker_pid: int,
    sfu_pid: int,
    provider: str,
    n: int,
    window_s: float,
) -> Step:
    sessions = [await start_session(api, owner, deck_id) for _ in range(n)]
    try:
        async with contextlib.AsyncExitStack() as clients:
            rooms = [
                await clients.enter_async_context(
                    Audience(s["livekit_url"], s["token"], watch=i == 0)
                )
                for i, s in enumerate(sessions)
            ]
            await asyncio.sleep(SETTLE_S)
            before, t0 = cpu_seconds(tree(worker_pid)), time.perf_counter()
            sfu_before, own_before = cpu_seconds(tree(sfu_pid)), time.process_time()
            await asyncio.sleep(window_s)
            t1 = time.perf_counter()
            cores = (cpu_seconds(tree(worker_pid)) - before) / (t1 - t0)
            sfu_cores = (cpu_seconds(tree(sfu_pid)) - sfu_before) / (t1 - t0)
            client_cores = (time.process_time() - own_before) / (t1 - t0)
            load = os.getloadavg()[0]
            for s in sessions:
                paused = await api.post(
                    f"/v1/sessions/{s['session_id']}/slide",
                    headers={**owner.headers, "Idempotency-Key": "bench-avatar-pause"},
                    json={"action": "pause"},
                )
                paused.raise_for_status()
            probe = rooms[0]
            quiet_from = await probe.until_silent(0.5, 20)
            await asyncio.sleep(max(0.0, quiet_from + 0.5 + IDLE_S - time.perf_counter()))
    finally:
        for s in sessions:
            await api.post(f"/v1/sessions/{s['session_id']}/end", headers=owner.headers)
    frames = [f for f in probe.frames if t0 <= f.at <= t1]
    idle = [f for f in probe.frames if quiet_from + 0.5 <= f.at <= quiet_from + 0.5 + IDLE_S]
    onsets, closings, unmatched = lip_sync(probe.frames, probe.voiced, t0, t1)
    health = [audio_health(r.voiced, t0, t1) for r in rooms]
    gaps = [b.at - a.at for a, b in itertools.pairwise(frames)]
    step = Step(
        provider,
        n,
        t1 - t0,
        cores,
        load,
        speaking_fps=frame_rate(frames, lambda f: probe.audible_between(f.at - 0.1, f.at + 0.1)),
        idle_fps=frame_rate(idle, lambda _: True),
        longest_frame_gap_ms=max(gaps) * 1000 if gaps else None,
        onsets_ms=onsets,
        closings_ms=closings,
        onsets_unmatched=unmatched,
        audible_s_per_min=statistics.mean(h[0] for h in health),
        dropouts_per_min=statistics.mean(h[1] for h in health),
        sfu_cores=sfu_cores,
        client_cores=client_cores,
    )
    print(
        f"  {provider:<6} N={n} cores {cores:.2f} ({cores / n:.2f}/session) load {load:.1f}; "
        f"probe {step.speaking_fps or 0:.1f} fps speaking, {step.idle_fps or 0:.1f} idle; "
        f"{len(onsets)} onsets; livekit-server {sfu_cores:.2f}, clients {client_cores:.2f} cores",
        flush=True,
    )
    return step


async def sweep(
    stack: EphemeralStack, owner: TenantKey, args: argparse.Namespace
) -> tuple[list[Step], dict[str, float]]:
    steps: list[Step] = []
    idle_cores: dict[str, float] = {}
    async with httpx.AsyncClient(base_url=stack.api_url, timeout=15) as api:
        resp = await api.post(
            "/v1/decks", headers=owner.headers, files={"file": ("long.pdf", long_deck())}
        )
        resp.raise_for_status()
        deck_id = str(resp.json()["deck_id"])
        assert stack.livekit.process.proc is not None
        sfu_pid = stack.livekit.process.proc.pid
        await wait_ready(api, owner.headers, deck_id)
        for provider in ("local", "none"):
            # the worker start blocks for seconds: off the loop
            worker = await asyncio.to_thread(
                functools.partial(
                    stack.start_worker,
                    f"worker-{provider}",
                    PODIUM_AVATAR_PROVIDER=provider,
                    PODIUM_MAX_SESSIONS="8",
                    PODIUM_NUM_IDLE_PROCESSES="1",
                )
            )
            assert worker.proc is not None
            pid = worker.proc.pid
            await asyncio.sleep(3)
            before, t0 = cpu_seconds(tree(pid)), time.perf_counter()
            await asyncio.sleep(10)
            idle_cores[provider] = (cpu_seconds(tree(pid)) - before) / (time.perf_counter() - t0)
            for n in args.sessions:
                window = args.lipsync_window if (n == 1 and provider == "local") else args.window
                steps.append(await run_step(api, owner, deck_id, pid, sfu_pid, provider, n, window))
                await asyncio.sleep(4)  # the jobs end before the next window
            await asyncio.to_thread(worker.stop)
    return steps, idle_cores


# -- report -----------------------------------------------------------------------------------


def stats_row(label: str, values: list[float], extra: str = "") -> str:
    if not values:
        return f"{label:<40} {0:>4}"
    return (
        f"{label:<40} {len(values):>4} {pct(values, 0.5):>+7.0f} {pct(values, 0.95):>+7.0f} "
        f"{min(values):>+7.0f} {max(values):>+7.0f} {statistics.mean(values):>+7.0f}{extra}"
    )


def plot(costs: list[RenderCost], steps: list[Step], docs: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    local = [s for s in steps if s.provider == "local"]
    fig, (ax_on, ax_off) = plt.subplots(1, 2, figsize=(11, 4.4))
    first = local[0].onsets_ms if local else []
    rest = [v for s in local[1:] for v in s.onsets_ms]
    bins = list(range(-200, 240, 20))
    ax_on.hist([first, rest], bins=bins, stacked=True, label=["N=1", "N>1 (probe session)"])
    ax_on.axvspan(-45, 45, color="tab:green", alpha=0.12, label="target ±45 ms")
    ax_on.set_xlabel("mouth opens - audio onset at the client (ms); > 0: mouth late")
    ax_on.set_ylabel("speech onsets")
    ax_on.set_title("Lip-sync at speech onsets", fontsize=10)
    ax_on.legend(fontsize=8)
    closings = [v for s in local for v in s.closings_ms]
    ax_off.hist(closings, bins=list(range(-200, 440, 20)), color="tab:purple")
    ax_off.set_xlabel("mouth shut - last audible audio at the client (ms)")
    ax_off.set_title("Closings (all N)", fontsize=10)
    fig.tight_layout()
    fig.savefig(docs / "bench-avatar-lipsync.png", dpi=110)

    fig, (ax_cpu, ax_fps) = plt.subplots(1, 2, figsize=(11, 4.4))
    for provider, colour in (("local", "tab:blue"), ("none", "tab:gray")):
        mine = [s for s in steps if s.provider == provider]
        label = "local avatar" if provider == "local" else "audio-only"
        ax_cpu.plot([s.n for s in mine], [s.cores for s in mine], "o-", color=colour, label=label)
        for s in mine:
            ax_cpu.annotate(
                f"{s.n / s.cores:.1f}/core",
                (s.n, s.cores),
                fontsize=7,
                textcoords="offset points",
                xytext=(4, -10),
            )
    ax_cpu.axhline(
        os.cpu_count() or 2, color="tab:red", linestyle="--", linewidth=1, label="machine's cores"
    )
    ax_cpu.set_xlabel("concurrent narrating sessions")
    ax_cpu.set_ylabel("worker process tree CPU (cores)")
    ax_cpu.set_title("Worker CPU; labels: sessions per core", fontsize=10)
    ax_cpu.legend(fontsize=8)
    for ax in (ax_cpu, ax_fps):
        ax.set_xticks(sorted({s.n for s in steps}))
    ns = [s.n for s in local]
    ax_fps.plot(ns, [s.speaking_fps or 0 for s in local], "o-", label="probe fps, speaking")
    ax_fps.plot(ns, [s.idle_fps or 0 for s in local], "s-", label="probe fps, idle")
    ax_fps.axhline(FPS, color="tab:green", linestyle=":", linewidth=1, label=f"{FPS:.0f} fps")
    ax_fps.set_ylim(0, FPS * 1.3)
    ax_fps.set_xlabel("concurrent narrating sessions (local avatar)")
    ax_fps.set_ylabel("frames per second at the probe client")
    share = ", ".join(f"{c.core_share:.1%} ({c.width}x{c.height})" for c in costs)
    ax_fps.set_title(f"Achieved fps; the drawing alone costs {share}", fontsize=9)
    ax_fps.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    fig.savefig(docs / "bench-avatar-sessions.png", dpi=110)


def report(
    costs: list[RenderCost], steps: list[Step], idle_cores: dict[str, float], loads: list[float]
) -> None:
    print(f"\nload average (1 min) during the run: {min(loads):.2f}-{max(loads):.2f}")
    print("\nrender cost per frame, in-process (ms)")
    print(
        f"{'size':<10} {'frames':>6} {'speak mean':>10} {'p95':>6} {'idle mean':>9} {'p95':>6} "
        f"{'draw only':>9} {'->I420':>7} {'core @25fps':>11}"
    )
    for c in costs:
        print(
            f"{f'{c.width}x{c.height}':<10} {len(c.speaking_ms):>6} "
            f"{statistics.mean(c.speaking_ms):>10.2f} "
            f"{pct(c.speaking_ms, 0.95):>6.2f} {statistics.mean(c.idle_ms):>9.2f} "
            f"{pct(c.idle_ms, 0.95):>6.2f} {c.draw_ms:>9.2f} "
            f"{statistics.mean(c.convert_ms):>7.2f} "
            f"{c.core_share:>10.1%}"
        )
    local = [s for s in steps if s.provider == "local"]
    print("\nlip-sync at the probe client (ms; > 0: the mouth is late)")
    print(f"{'':<40} {'n':>4} {'p50':>7} {'p95':>7} {'min':>7} {'max':>7} {'mean':>7}")
    if local:
        print(
            stats_row(
                "onset, N=1",
                local[0].onsets_ms,
                f"   ({local[0].onsets_unmatched} onsets unmatched)",
            )
        )
        within = [v for v in local[0].onsets_ms if abs(v) <= 45]
        if local[0].onsets_ms:
            print(f"  within ±45 ms: {len(within)}/{len(local[0].onsets_ms)}")
        print(stats_row("onset, all N", [v for s in local for v in s.onsets_ms]))
        print(stats_row("closing, N=1", local[0].closings_ms))
        print(stats_row("closing, all N", [v for s in local for v in s.closings_ms]))
    print(
        f"\nworker idle (no session): local {idle_cores.get('local', 0):.3f} cores, "
        f"none {idle_cores.get('none', 0):.3f} cores"
    )
    print(
        f"{'avatar':<7} {'N':>2} {'window s':>8} {'cores':>6} {'/session':>8} {'sess/core':>9} "
        f"{'vs audio':>8} {'fps spk':>7} {'fps idle':>8} {'max gap':>7} {'sync p5/p50/p95':>15} "
        f"{'audible s/min':>13} {'holes/min':>9} {'load1':>5}"
    )
    audio_only = {s.n: s for s in steps if s.provider == "none"}
    for s in steps:
        base = audio_only.get(s.n)
        ratio = f"{s.cores / base.cores:>7.2f}x" if base and s.provider == "local" else f"{'':>8}"
        fps = (
            f"{s.speaking_fps:>7.1f} {s.idle_fps or 0:>8.1f}"
            if s.speaking_fps
            else f"{'-':>7} {'-':>8}"
        )
        gap = f"{s.longest_frame_gap_ms:>7.0f}" if s.longest_frame_gap_ms else f"{'-':>7}"
        sync = (
            "/".join(f"{pct(s.onsets_ms, q):+.0f}" for q in (0.05, 0.5, 0.95))
            if s.onsets_ms
            else "-"
        )
        print(
            f"{s.provider:<7} {s.n:>2} {s.window_s:>8.0f} {s.cores:>6.2f} {s.cores / s.n:>8.2f} "
            f"{s.n / s.cores:>9.2f} {ratio} {fps} {gap} {sync:>15} {s.audible_s_per_min:>13.1f} "
            f"{s.dropouts_per_min:>9.1f} {s.sfu_cores:>5.2f} {s.client_cores:>6.2f} {s.load:>5.1f}"
        )
    slopes = {
        provider: float(np.polyfit([s.n for s in mine], [s.cores for s in mine], 1)[0])
        for provider in ("local", "none")
        if len(mine := [s for s in steps if s.provider == provider]) > 1
    }
    if len(slopes) == 2:
        print(
            f"marginal cores per added session (least squares over N): local "
            f"{slopes['local']:.3f}, audio-only {slopes['none']:.3f}, ratio "
            f"{slopes['local'] / slopes['none']:.2f}x; sessions per core "
            f"{1 / slopes['local']:.2f} vs {1 / slopes['none']:.2f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, nargs="+", default=[1, 2, 3, 4])
    parser.add_argument("--window", type=float, default=30, help="CPU window per N, seconds")
    parser.add_argument(
        "--lipsync-window", type=float, default=60, help="the N=1 window with the avatar on"
    )
    parser.add_argument("--docs", type=Path, default=ROOT / "docs")
    parser.add_argument("--logs", type=Path, default=None, help="keep the stack's logs here")
    parser.add_argument("--dump", type=Path, default=None, help="per-step results as JSON")
    parser.add_argument("--render-only", action="store_true", help="parts 1 and 5 only")
    args = parser.parse_args()

    args.docs.mkdir(parents=True, exist_ok=True)
    loads = [os.getloadavg()[0]]
    voice = the_voice()
    costs = [asyncio.run(render_cost(w, h, voice)) for w, h in SIZES]
    save_images(costs[0].poses, args.docs)
    steps: list[Step] = []
    idle_cores: dict[str, float] = {}
    if not args.render_only:
        with (
            tempfile.TemporaryDirectory() as tmp,
            EphemeralStack(Path(tmp), logs=args.logs) as stack,
        ):
            stack.start_control_plane()
            owner = stack.create_tenant("bench")
            steps, idle_cores = asyncio.run(sweep(stack, owner, args))
        loads += [s.load for s in steps]
    loads.append(os.getloadavg()[0])
    report(costs, steps, idle_cores, loads)
    if steps:
        if args.dump:
            args.dump.write_text(json.dumps([dataclasses.asdict(s) for s in steps], indent=1))
        plot(costs, steps, args.docs)
        print(f"plots: {args.docs}/bench-avatar-lipsync.png, bench-avatar-sessions.png")
    print(f"images: {args.docs}/avatar-sample.png, avatar-styles.png")


if __name__ == "__main__":
    main()
