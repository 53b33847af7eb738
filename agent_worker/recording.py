"""Opt-in session recording, uploaded in segments while the session runs.

The framework's recorder writes the session's audio (the user left, the presenter right,
Ogg/Opus) into the job's session directory, but its Ogg muxer holds every page until the file is
closed: a growing file cannot be read. So the recorder is rotated: every ``segment_s`` (at the
first moment the presenter is not speaking, since the presenter's voice is placed on the timeline
only once its playout reports back), the open file is closed, which finishes it as a complete,
playable Ogg/Opus stream, and the recorder starts the next file. Each closed file is uploaded as
segment ``n`` of this job; a killed job loses the open segment and no more.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from livekit.agents import AgentSession, RecordingOptions

from .control_plane_client import ControlPlaneError, SessionApi

logger = logging.getLogger(__name__)

AUDIO_FILE = "audio.ogg"  # where the framework's RecorderIO writes the first segment
_POLL_S = 0.25
_RETRY_S = 5.0
# A presenter that talks on and on still gets its segment cut, at twice the length.
_MAX_STRETCH = 2.0
_OPUS_RATE = 48_000


def recording_options(enabled: bool) -> RecordingOptions:
    """Audio only: traces, logs and transcripts are ours (the turn log), not a cloud's."""
    return RecordingOptions(audio=enabled, traces=False, logs=False, transcript=False)


@dataclass(frozen=True)
class Segment:
    n: int
    path: Path
    started_at: float  # wall time the recorder started this file


class InvalidOgg(ValueError):
    pass


def opus_duration_s(data: bytes) -> float:
    """The playable length of an Ogg/Opus stream: its last granule position less the pre-skip
    its OpusHead declares (RFC 7845), at Opus's 48 kHz."""
    pre_skip: int | None = None
    granule = 0
    pos = 0
    while pos < len(data):
        if data[pos : pos + 4] != b"OggS" or len(data) < pos + 27:
            raise InvalidOgg(f"no Ogg page at byte {pos}")
        page_granule = struct.unpack_from("<q", data, pos + 6)[0]
        count = data[pos + 26]
        lacing = data[pos + 27 : pos + 27 + count]
        body = pos + 27 + count
        end = body + sum(lacing)
        if len(lacing) < count or end > len(data):
            raise InvalidOgg("the last Ogg page is cut short")
        if pre_skip is None:
            if data[body : body + 8] != b"OpusHead":
                raise InvalidOgg("the stream does not start with an OpusHead")
            pre_skip = struct.unpack_from("<H", data, body + 10)[0]
        elif page_granule >= 0:
            granule = page_granule
        pos = end
    if pre_skip is None:
        raise InvalidOgg("empty stream")
    return max(0, granule - pre_skip) / _OPUS_RATE


class RecordingSegments:
    """Rotates the framework's recorder into segments and uploads each, in order."""

    def __init__(
        self,
        session: AgentSession[Any],
        directory: Path,
        api: SessionApi,
        *,
        job_id: str,
        segment_s: float,
    ) -> None:
        self._session = session
        self._directory = directory
        self._api = api
        self._job_id = job_id
        self._segment_s = segment_s
        self._pending: list[Segment] = []
        self._open: Segment | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        recorder = self._recorder()
        if recorder is None or recorder.output_path is None:
            logger.warning("the session is not recording")
            return
        self._open = Segment(0, Path(recorder.output_path), recorder.recording_started_at)
        self._task = asyncio.create_task(self._run(), name="recording_segments")

    async def aclose(self) -> None:
        """Stop rotating, close the session (which finishes the open file), upload the rest."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._session.aclose()
        if self._open is not None and self._open.path.is_file():
            self._pending.append(self._open)
            self._open = None
        await self._upload_pending()
        if self._pending:
            logger.error(
                "session recording segments not uploaded", extra={"count": len(self._pending)}
            )

    def _recorder(self) -> Any:
        # The framework keeps its recorder private and has no rotation of its own; closing and
        # restarting it on a new path is the only way to get files finished mid-session.
        return getattr(self._session, "_recorder_io", None)

    async def _run(self) -> None:
        failed_at = 0.0
        while True:
            await asyncio.sleep(_POLL_S)
            recorder = self._recorder()
            if self._open is not None and recorder is not None and recorder.recording:
                age = time.time() - self._open.started_at
                quiet = self._session.agent_state != "speaking"
                if age >= self._segment_s * (1 if quiet else _MAX_STRETCH):
                    await self._rotate(recorder)
            due = self._pending and time.monotonic() - failed_at >= _RETRY_S
            if due and not await self._upload_pending():
                failed_at = time.monotonic()

    async def _rotate(self, recorder: Any) -> None:
        assert self._open is not None
        await recorder.aclose()  # finishes the file: a complete Ogg/Opus stream
        self._pending.append(self._open)
        n = self._open.n + 1
        path = self._directory / f"audio-{n:05d}.ogg"
        self._open = Segment(n, path, time.time())
        await recorder.start(output_path=path)
        self._open = Segment(n, path, recorder.recording_started_at or self._open.started_at)

    async def _upload_pending(self) -> bool:
        """Upload in order, stopping at the first failure (kept for the next try)."""
        while self._pending:
            segment = self._pending[0]
            if not await self._upload(segment):
                return False
            self._pending.pop(0)
            with contextlib.suppress(OSError):
                segment.path.unlink()
        return True

    async def _upload(self, segment: Segment) -> bool:
        try:
            audio = await asyncio.to_thread(segment.path.read_bytes)
            duration_s = opus_duration_s(audio)
        except (OSError, InvalidOgg):
            logger.exception("session recording segment unreadable", extra={"n": segment.n})
            return True  # nothing to retry: the encoder failed this file
        try:
            await self._api.put_recording_segment(
                segment.n,
                audio,
                job_id=self._job_id,
                started_at=segment.started_at,
                duration_s=duration_s,
            )
        except ControlPlaneError as exc:
            logger.warning(
                "could not upload a session recording segment",
                extra={"n": segment.n, "status": exc.status_code, "bytes": len(audio)},
            )
            return exc.status_code in (404, 409, 413, 422)  # sending it again will not help
        logger.info(
            "session recording segment uploaded",
            extra={"n": segment.n, "bytes": len(audio), "duration_s": duration_s},
        )
        return True
