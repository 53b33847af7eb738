"""Opt-in session recording: the framework's recorder writes the session's audio (the user and
the presenter, one channel each, Ogg/Opus) into the job's session directory; when the job ends,
the file is uploaded to the control plane, which keeps it in asset storage."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

from livekit.agents import AgentSession, RecordingOptions

from .control_plane_client import ControlPlaneError, SessionApi

logger = logging.getLogger(__name__)

AUDIO_FILE = "audio.ogg"  # where the framework's RecorderIO writes


def recording_options(enabled: bool) -> RecordingOptions:
    """Audio only: traces, logs and transcripts are ours (the turn log), not a cloud's."""
    return RecordingOptions(audio=enabled, traces=False, logs=False, transcript=False)


class RecordingUpload:
    def __init__(self, session: AgentSession[Any], directory: Path, deck: SessionApi) -> None:
        self._session = session
        self._path = directory / AUDIO_FILE
        self._deck = deck

    async def aclose(self) -> None:
        """Close the session (which finishes the file), then upload it."""
        await self._session.aclose()
        if not self._path.is_file() or self._path.stat().st_size == 0:
            logger.warning("no session recording to upload")
            return
        audio = await asyncio.to_thread(self._path.read_bytes)
        try:
            await self._deck.put_recording(audio)
        except ControlPlaneError as exc:
            logger.error(
                "could not upload the session recording",
                extra={"status": exc.status_code, "bytes": len(audio)},
            )
            return
        logger.info("session recording uploaded", extra={"bytes": len(audio)})
