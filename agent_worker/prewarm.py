"""Per-process warm-up, run by the framework in each job process before it takes a job."""

from __future__ import annotations

import asyncio
import logging
import time

from livekit.agents import JobProcess, vad
from livekit.plugins import silero

from .config import JobConfig
from .providers import build_tts

logger = logging.getLogger(__name__)

_VAD_KEY = "podium.vad"


def prewarm(config: JobConfig, proc: JobProcess) -> None:
    started = time.monotonic()
    proc.userdata[_VAD_KEY] = silero.VAD.load()  # the ONNX model ships in the wheel
    asyncio.run(_warm_up_tts(config))
    logger.info("job process warmed", extra={"seconds": round(time.monotonic() - started, 2)})


def prewarmed_vad(proc: JobProcess) -> vad.VAD:
    loaded = proc.userdata[_VAD_KEY]
    assert isinstance(loaded, vad.VAD)
    return loaded


async def _warm_up_tts(config: JobConfig) -> None:
    """Run one tiny synthesis through the same path a greeting takes, so the first one is fast.

    A failure is only logged: the process can still serve, through the fallback engine.
    """
    engine = build_tts(config)
    try:
        await engine.synthesize("Hello.").collect()
    except Exception:
        logger.warning("TTS warm-up failed", exc_info=True)
    finally:
        await engine.aclose()
