"""Composition root of the worker: ``python -m agent_worker``.

Reads ``PODIUM_*`` settings once, starts the Piper child server, then runs the agent server
until SIGTERM/SIGINT, drains it, and stops Piper.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import sys

from livekit.agents.cli.log import setup_logging
from pydantic import ValidationError

from shared.settings import WorkerSettings

from .avatar.vendors import VENDORS, AvatarConfigError, VendorAvatarSettings, check_vendor
from .config import JobConfig
from .piper_process import piper_server
from .server import build_server, serve

logger = logging.getLogger("agent_worker")

_PIPER_VOICE = "piper:joe"
_ESPEAK_VOICE = "espeak"


async def _run(settings: WorkerSettings) -> None:
    espeak = shutil.which("espeak-ng")
    if settings.tts_voice not in (_PIPER_VOICE, _ESPEAK_VOICE):
        raise ValueError(f"PODIUM_TTS_VOICE must be {_PIPER_VOICE!r} or {_ESPEAK_VOICE!r}")
    if settings.tts_voice == _ESPEAK_VOICE and espeak is None:
        raise ValueError("PODIUM_TTS_VOICE is 'espeak' but espeak-ng is not installed")

    async with contextlib.AsyncExitStack() as stack:
        piper_url = None
        if settings.tts_voice == _PIPER_VOICE:
            piper_url = await stack.enter_async_context(piper_server())
        job_config = JobConfig(
            control_plane_url=settings.control_plane_url,
            request_timeout_seconds=settings.request_timeout_seconds,
            piper_url=piper_url,
            espeak_binary=espeak,  # the primary engine when Piper is off, else its fallback
        )
        logger.info(
            "worker starting",
            extra={
                "agent_name": settings.agent_name,
                "livekit_url": settings.livekit_url,
                "tts_voice": settings.tts_voice,
                "espeak_fallback": espeak is not None and piper_url is not None,
            },
        )
        await serve(build_server(settings, job_config), settings)


def main() -> int:
    setup_logging("INFO", devmode=False, console=False)
    try:
        settings = WorkerSettings()
    except ValidationError as exc:
        # pydantic's message echoes the raw input, secrets included: report only where and why
        problems = [f"{'.'.join(map(str, e['loc'])) or '-'}: {e['msg']}" for e in exc.errors()]
        logger.error("invalid settings", extra={"problems": problems})
        return 2
    if weak := settings.weak_secrets():  # only PODIUM_ENVIRONMENT=dev gets this far with them
        logger.warning(
            "PODIUM_ENVIRONMENT=dev: running with public development secrets; "
            "never expose this worker",
            extra={"secrets": weak},
        )
    if settings.avatar_provider in VENDORS:
        try:
            check_vendor(settings.avatar_provider, VendorAvatarSettings())
        except (AvatarConfigError, ValidationError) as exc:
            logger.error("invalid settings", extra={"problems": [str(exc)]})
            return 2
    try:
        asyncio.run(_run(settings))
    except Exception:
        logger.exception("worker failed")
        return 1
    logger.info("worker stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
