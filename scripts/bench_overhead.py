"""Podium's own overhead: voice-to-voice at a real client with zero-latency provider fakes.

Runs the real stack on loopback (control plane, livekit-server, one worker configured for the
cloud providers) against the local protocol fakes of Deepgram, OpenAI and ElevenLabs
(``tests/fakes``) with no injected latency, so what remains of end of speech -> first agent
audio is Podium and its framework: VAD end-of-turn silence, endpointing, the turn-detector
model, tool calls through the control plane, TTS plumbing and LiveKit transport.

One real LiveKit participant joins each session (paused before joining, so narration does not
interleave), waits for the greeting, then speaks espeak-ng (or Piper) recordings in real time
followed by continuing silence. For each utterance Deepgram's fake is told to transcribe it the
moment the last sample plays out (a zero-latency recogniser), and OpenAI's fake is scripted for
the turn, rotating three kinds: a ``next_slide`` tool call then a short text; a
``search_slides`` tool call then an answer; a plain text answer.

Measured at the client, per turn: the last non-silent sample played out -> first agent audio
frame (int16 RMS >= 300), split by the agent's ``lk.agent.state`` attribute (-> ``thinking``,
``thinking`` -> first audio). From the control plane: its own time answering the tool routes
(the ``podium_http_request_duration_seconds`` histogram). Prints a table, writes a plot.

    .venv/bin/python scripts/bench_overhead.py [--turns 24] [--turns-per-session 6]
        [--voice espeak|piper] [--worker-env PODIUM_TURN_DETECTION=vad]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from livekit import rtc

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from bench_voice import (  # noqa: E402
    Listener,
    Microphone,
    paused_session,
    pct,
    ready_deck,
    speech,
)

from shared.devstack.stack import EphemeralStack, TenantKey  # noqa: E402
from shared.settings import WorkerSettings  # noqa: E402
from tests.fakes import DeepgramFake, ElevenLabsFake, OpenAIFake  # noqa: E402

# (kind, what the user says, the model's scripted replies for the turn)
Reply = tuple[str, list[tuple[str, dict[str, Any]]]]
TURNS: list[tuple[str, str, list[Reply]]] = [
    ("next_slide", "Next slide, please.", [("", [("next_slide", {})]), ("Here it is.", [])]),
    (
        "search",
        "How much does it cost?",
        [
            ("", [("search_slides", {"query": "How much does it cost?"})]),
            ("That's on slide 4: plans start at 49 dollars a month.", []),
        ],
    ),
    ("plain", "Who are you?", [("I'm Podium, your presenter.", [])]),
]
# What the slide tools call on the control plane, and the histogram that times it there.
TOOL_ROUTES = [
    ("POST", "/internal/v1/sessions/{session_id}/slide"),
    ("GET", "/internal/v1/sessions/{session_id}/search"),
]
HISTOGRAM = "podium_http_request_duration_seconds"


@dataclass
class Turn:
    kind: str
    phrase: str
    total_ms: float | None = None
    to_thinking_ms: float | None = None
    thinking_to_voice_ms: float | None = None
    # 'thinking' -> 'speaking' is the agent's own work (the framework sets 'speaking' when the
    # first frame goes out); 'speaking' -> first audio is media transport less signal transport
    thinking_to_speaking_ms: float | None = None
    chat_requests: int = 0


@dataclass
class Fakes:
    openai: OpenAIFake
    deepgram: DeepgramFake
    elevenlabs: ElevenLabsFake


async def run_session(
    api: httpx.AsyncClient,
    owner: TenantKey,
    deck_id: str,
    fakes: Fakes,
    plan: list[tuple[str, str, list[Reply]]],
    label: str,
    voice: str,
) -> list[Turn]:
    session = await paused_session(api, owner, deck_id)
    listener = Listener()
    room = rtc.Room()
    readers = listener.follow(room)
    recordings = [(k, phrase, replies, *speech(phrase, voice)) for k, phrase, replies in plan]
    mic = Microphone(recordings[0][4])
    turns: list[Turn] = []
    try:
        await room.connect(session["livekit_url"], session["token"])
        track = rtc.LocalAudioTrack.create_audio_track("mic", mic.source)
        await room.local_participant.publish_track(
            track, rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
        )
        mic.start()

        def greeted() -> bool:
            spoke = [t for t, s in listener.states if s == "speaking"]
            return bool(spoke) and listener.state_now() == "listening"

        if not await listener.wait_for(greeted, 60):
            raise TimeoutError(f"{label}: the agent never finished greeting")
        await asyncio.sleep(0.5)

        for kind, phrase, replies, samples, _rate in recordings:
            turn = Turn(kind, phrase)
            for text, calls in replies:
                fakes.openai.llm.push_reply(text=text, tool_calls=calls)
            asked_before = len(fakes.openai.chat_requests)
            ended_at = await mic.say(samples)
            # A zero-latency recogniser: the final transcript as the last sample plays out.
            await asyncio.sleep(max(0.0, ended_at - time.perf_counter()))
            fakes.deepgram.say(phrase)
            heard = await listener.wait_for(
                lambda e=ended_at: listener.first_after(e) is not None, 15
            )
            if heard:
                voice_at = listener.first_after(ended_at)
                assert voice_at is not None
                turn.total_ms = (voice_at - ended_at) * 1000
                thinking_at = listener.first_after(ended_at, "thinking")
                if thinking_at is not None and thinking_at <= voice_at:
                    turn.to_thinking_ms = (thinking_at - ended_at) * 1000
                    turn.thinking_to_voice_ms = (voice_at - thinking_at) * 1000
                    speaking_at = listener.first_after(thinking_at, "speaking")
                    if speaking_at is not None:
                        turn.thinking_to_speaking_ms = (speaking_at - thinking_at) * 1000
            await listener.wait_for(
                lambda: (
                    listener.state_now() == "listening"
                    and (listener.voice[-1] if listener.voice else 0) < time.perf_counter() - 0.3
                ),
                30,
            )
            turn.chat_requests = len(fakes.openai.chat_requests) - asked_before
            turns.append(turn)
            shown = f"{turn.total_ms:5.0f} ms" if turn.total_ms is not None else "no answer"
            split = (
                f"(end->thinking {turn.to_thinking_ms:4.0f}, thinking->voice "
                f"{turn.thinking_to_voice_ms:4.0f}, {turn.chat_requests} model requests)"
                if turn.to_thinking_ms is not None and turn.thinking_to_voice_ms is not None
                else ""
            )
            print(f"  {label} {kind:<10} {phrase!r:<26} {shown} {split}", flush=True)
            if turn.chat_requests != len(replies):
                # the script and the conversation no longer line up: stop this session
                raise RuntimeError(
                    f"{label}: {turn.chat_requests} model requests for {phrase!r}, "
                    f"scripted {len(replies)}"
                )
            await asyncio.sleep(0.5)
    finally:
        for reader in readers:
            reader.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
        await mic.aclose()
        await room.disconnect()
        await api.post(f"/v1/sessions/{session['session_id']}/end", headers=owner.headers)
    return turns


def route_seconds(metrics: str) -> dict[tuple[str, str], tuple[float, float]]:
    """Per (method, route) the tools call: (requests, seconds) the control plane spent on them."""
    out: dict[tuple[str, str], tuple[float, float]] = {}
    for method, route in TOOL_ROUTES:
        labels = f'method="{method}",route="{route}"'
        count = total = 0.0
        for line in metrics.splitlines():
            if labels in line and line.startswith(f"{HISTOGRAM}_count"):
                count = float(line.rsplit(" ", 1)[1])
            elif labels in line and line.startswith(f"{HISTOGRAM}_sum"):
                total = float(line.rsplit(" ", 1)[1])
        out[(method, route)] = (count, total)
    return out


async def measure(
    stack: EphemeralStack, owner: TenantKey, args: argparse.Namespace, worker_env: dict[str, str]
) -> Any:
    async with OpenAIFake() as oai, DeepgramFake() as dg, ElevenLabsFake() as eleven:
        fakes = Fakes(oai, dg, eleven)
        # Zero latency is the fakes' default; said here so a change of default shows.
        for fake in (oai, dg, eleven):
            fake.set_latency(ttfb_s=0.0, chunk_interval_s=0.0)
        # The worker start blocks for seconds: off the loop, so the fakes keep answering.
        env = {
            "PODIUM_STT_PROVIDER": "deepgram",
            "PODIUM_DEEPGRAM_API_KEY": dg.api_key,
            "PODIUM_DEEPGRAM_BASE_URL": dg.listen_url,
            "PODIUM_LLM_PROVIDER": "openai",
            "PODIUM_OPENAI_API_KEY": oai.api_key,
            "PODIUM_OPENAI_BASE_URL": f"{oai.url}/v1",
            "PODIUM_TTS_PROVIDER": "elevenlabs",
            "PODIUM_ELEVENLABS_API_KEY": eleven.api_key,
            "PODIUM_ELEVENLABS_BASE_URL": eleven.base_url,
            **worker_env,
        }
        await asyncio.to_thread(lambda: stack.start_worker("worker", 120, **env))
        turns: list[Turn] = []
        loads: list[float] = []
        async with httpx.AsyncClient(base_url=stack.api_url, timeout=15) as api:
            deck_id = await ready_deck(api, owner)
            # one discarded warm-up session (first model calls of a fresh job process)
            await run_session(api, owner, deck_id, fakes, TURNS[:1], "warm-up", args.voice)
            before = route_seconds((await api.get("/metrics")).text)
            done = session_no = 0
            while done < args.turns:
                session_no += 1
                count = min(args.turns_per_session, args.turns - done)
                plan = [TURNS[(done + i) % len(TURNS)] for i in range(count)]
                loads.append(os.getloadavg()[0])
                turns += await asyncio.wait_for(
                    run_session(api, owner, deck_id, fakes, plan, f"s{session_no}", args.voice),
                    60 + 30 * count,
                )
                done += count
            loads.append(os.getloadavg()[0])
            after = route_seconds((await api.get("/metrics")).text)
        server = {
            key: (after[key][0] - before[key][0], after[key][1] - before[key][1]) for key in after
        }
        return turns, loads, server


def plot(turns: list[Turn], path: Path, max_delay: float, subtitle: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    at_once = [t for t in turns if t.to_thinking_ms is not None and t.to_thinking_ms < max_delay]
    series: dict[str, list[float]] = {
        "end of speech\n→ first audio\n(all)": [t.total_ms for t in turns if t.total_ms],
        "end of speech\n→ first audio\n(ended at once)": [
            t.total_ms for t in at_once if t.total_ms
        ],
        "end of speech\n→ 'thinking'\n(ended at once)": [
            t.to_thinking_ms for t in at_once if t.to_thinking_ms
        ],
    }
    for kind, _, _ in TURNS:
        series[f"'thinking'\n→ first audio\n({kind})"] = [
            t.thinking_to_voice_ms for t in turns if t.kind == kind and t.thinking_to_voice_ms
        ]
    fig, ax = plt.subplots(figsize=(10, 4.8))
    ax.boxplot(list(series.values()), tick_labels=list(series.keys()), showmeans=True)
    ax.tick_params(axis="x", labelsize=8)
    for i, values in enumerate(series.values(), start=1):
        ax.scatter([i] * len(values), values, alpha=0.5, s=12)
    ax.axhline(60, color="tab:red", linestyle="--", linewidth=1, label="overhead target 60 ms")
    ax.set_yscale("log")
    ax.set_ylabel("ms (log scale)")
    ax.set_title(f"Voice-to-voice with zero-latency provider fakes ({subtitle})", fontsize=10)
    ax.legend(loc="lower left")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


def row(label: str, maybe: list[float | None]) -> str:
    values = [v for v in maybe if v is not None]
    if not values:
        return f"{label:<44} {0:>3}"
    return (
        f"{label:<44} {len(values):>3} {pct(values, 0.5):>8.0f} {pct(values, 0.95):>8.0f} "
        f"{statistics.mean(values):>8.0f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=24)
    parser.add_argument("--turns-per-session", type=int, default=6)
    parser.add_argument("--plot", type=Path, default=ROOT / "docs/benchmarks/overhead.png")
    parser.add_argument("--voice", choices=["espeak", "piper"], default="espeak")
    parser.add_argument("--logs", type=Path, default=None, help="keep the stack's logs here")
    parser.add_argument(
        "--worker-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="worker setting to try, e.g. PODIUM_TURN_DETECTION=vad (repeatable)",
    )
    args = parser.parse_args()
    worker_env = dict(item.split("=", 1) for item in args.worker_env)

    with tempfile.TemporaryDirectory() as tmp, EphemeralStack(Path(tmp), logs=args.logs) as stack:
        stack.start_control_plane()
        tenant = stack.create_tenant("bench")
        turns, loads, server = asyncio.run(measure(stack, tenant, args, worker_env))

    fields = WorkerSettings.model_fields

    def setting(name: str) -> float:
        return float(worker_env.get(f"PODIUM_{name.upper()}", fields[name].default))

    silence = setting("vad_min_silence_seconds") * 1000
    max_delay = setting("endpointing_max_delay_seconds") * 1000
    answered = [t for t in turns if t.total_ms is not None]
    split = [t for t in answered if t.to_thinking_ms is not None and t.thinking_to_voice_ms]
    # The turn detector judged these unfinished: the session waited the endpointing max delay.
    held = [t for t in split if t.to_thinking_ms and t.to_thinking_ms >= max_delay]
    at_once = [t for t in split if t not in held]
    print(f"\nworker settings: {worker_env or 'defaults'}; the user's voice: {args.voice}")
    print(f"{len(turns)} turns, {len(turns) - len(answered)} without an answer within 15 s")
    print(
        f"load average (1 min) during the run: {min(loads):.2f}-{max(loads):.2f}; "
        f"VAD silence {silence:.0f} ms; endpointing max delay {max_delay:.0f} ms"
    )
    print(f"{'span':<44} {'n':>3} {'p50 ms':>8} {'p95 ms':>8} {'mean ms':>8}")
    print(row("end of speech -> first agent audio, all", [t.total_ms for t in answered]))
    print(row("  turns ended at once", [t.total_ms for t in at_once]))
    print(row("  turns the detector held (max delay)", [t.total_ms for t in held]))
    print("turns ended at once:")
    print(row("  end of speech -> 'thinking'", [t.to_thinking_ms for t in at_once]))
    print(row("    minus the VAD silence", [t.to_thinking_ms - silence for t in at_once]))
    print(row("  'thinking' -> first audio, all", [t.thinking_to_voice_ms for t in split]))
    for kind, _, _ in TURNS:
        values = [t.thinking_to_voice_ms for t in split if t.kind == kind]
        print(row(f"    {kind}", values))
    print(row("  'thinking' -> 'speaking', all", [t.thinking_to_speaking_ms for t in split]))
    for kind, _, _ in TURNS:
        values = [t.thinking_to_speaking_ms for t in split if t.kind == kind]
        print(row(f"    {kind}", values))
    voice_after_speaking = [
        t.thinking_to_voice_ms - t.thinking_to_speaking_ms
        for t in split
        if t.thinking_to_voice_ms is not None and t.thinking_to_speaking_ms is not None
    ]
    print(row("  'speaking' -> first audio at the client", voice_after_speaking))
    for (method, route), (count, seconds) in server.items():
        if count:
            mean_ms = seconds / count * 1000
            print(f"control plane answering {method} {route}: n={count:.0f}, mean {mean_ms:.1f} ms")
    if answered:
        subtitle = f"{args.voice} voice, load avg {min(loads):.1f}-{max(loads):.1f}, 2 cores"
        plot(split, args.plot, max_delay, subtitle)
        print(f"plot: {args.plot}")


if __name__ == "__main__":
    main()
