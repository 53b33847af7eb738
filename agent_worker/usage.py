"""Usage metering in the job: what its providers report, sent as cumulative totals.

The providers' own ``metrics_collected`` events are the source (heard on the STT, LLM and TTS
objects themselves, so the greeting rendered before the session starts counts too):
``STTMetrics.audio_duration`` and ``TTSMetrics.characters_count`` by provider,
``LLMMetrics.prompt_tokens``/``completion_tokens`` by model (the offline responder reports 0
tokens as ``podium-offline-responder``: nothing was spent), and the seconds the avatar showed a
face, read from the agent's ``podium.avatar`` attribute, by provider (``local`` or the vendor).

Every ``interval_s`` and at the job's end the totals since the job started go to the control
plane, which counts only what grew: a lost report is covered by the next, a resent one adds
nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

from livekit import rtc
from livekit.agents.metrics import LLMMetrics, STTMetrics, TTSMetrics

from shared.usage import UsageReport, UsageTotal

from .avatar.presence import AUDIO_ONLY, AVATAR_ATTRIBUTE
from .control_plane_client import ControlPlaneError, SessionApi

logger = logging.getLogger(__name__)

# Metrics of the last requests (a Deepgram stream's final usage, a TTS segment's) are emitted as
# the providers close, just after the job starts shutting down.
_SETTLE_SECONDS = 0.5
_CLOSE_ATTEMPTS = 3


class _Emitter(Protocol):
    def on(self, event: str, callback: Callable[..., Any] | None = None) -> Any: ...


class UsageMeter:
    def __init__(
        self,
        api: SessionApi,
        *,
        job_id: str,
        avatar_mode: Callable[[], str | None] | None = None,
        interval_s: float = 10.0,
        tick_s: float = 1.0,
    ) -> None:
        self._api = api
        self._job_id = job_id
        self._avatar_mode = avatar_mode
        self._interval = interval_s
        self._tick = tick_s
        self._totals: dict[tuple[str, str], float] = {}
        self._sent: dict[tuple[str, str], float] = {}
        self._avatar_since = time.monotonic()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start counting the avatar's time and reporting (once the job presents)."""
        self._avatar_since = time.monotonic()
        self._task = asyncio.create_task(self._run(), name="usage_meter")

    def watch(self, *providers: _Emitter) -> None:
        """Count what these providers report (an STT, LLM or TTS, or a fallback chain of them:
        the framework's adapters pass their members' metrics on)."""
        for provider in providers:
            provider.on("metrics_collected", self._on_metrics)

    @property
    def totals(self) -> dict[tuple[str, str], float]:
        return dict(self._totals)

    def _add(self, meter: str, dimension: str, amount: float) -> None:
        key = (meter, dimension[:200] or "unknown")
        self._totals[key] = self._totals.get(key, 0.0) + max(amount, 0.0)

    def _on_metrics(self, m: object) -> None:
        meta = getattr(m, "metadata", None)
        provider = (meta.model_provider if meta else None) or getattr(m, "label", "") or "unknown"
        model = (meta.model_name if meta else None) or provider
        if isinstance(m, STTMetrics):
            self._add("stt_audio_seconds", provider, m.audio_duration)
        elif isinstance(m, TTSMetrics):
            self._add("tts_characters", provider, m.characters_count)
        elif isinstance(m, LLMMetrics):
            self._add("llm_input_tokens", model, m.prompt_tokens)
            self._add("llm_output_tokens", model, m.completion_tokens)

    def _count_avatar(self) -> None:
        now = time.monotonic()
        elapsed, self._avatar_since = now - self._avatar_since, now
        mode = self._avatar_mode() if self._avatar_mode else None
        if mode and mode != AUDIO_ONLY:
            self._add("avatar_seconds", mode.removeprefix("vendor:"), elapsed)

    async def _run(self) -> None:
        last_report = time.monotonic()
        while True:
            await asyncio.sleep(self._tick)
            self._count_avatar()
            if time.monotonic() - last_report >= self._interval:
                last_report = time.monotonic()
                with contextlib.suppress(ControlPlaneError):  # the next report carries it
                    await self.report()

    async def report(self) -> None:
        """Send the totals if they changed since the last report the control plane took."""
        totals = dict(self._totals)
        if not totals or totals == self._sent:
            return
        body = UsageReport(
            job_id=self._job_id,
            totals=[
                UsageTotal(meter=meter, dimension=dimension, quantity=quantity)
                for (meter, dimension), quantity in sorted(totals.items())
            ],
        )
        await self._api.report_usage(body)
        self._sent = totals

    async def aclose(self) -> None:
        """The last report, once the providers' final metrics are in."""
        if self._task is None:
            return
        await asyncio.sleep(_SETTLE_SECONDS)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._count_avatar()
        for attempt in range(_CLOSE_ATTEMPTS):
            try:
                await self.report()
                return
            except ControlPlaneError as exc:
                if exc.status_code is not None and 400 <= exc.status_code < 500:
                    logger.warning(
                        "control plane refused the usage report", extra={"status": exc.status_code}
                    )
                    return
                await asyncio.sleep(0.5 * 2**attempt)
        logger.warning("usage report left unsent at shutdown", extra={"job_id": self._job_id})


def avatar_mode_of(room: rtc.Room) -> Callable[[], str | None]:
    """What the agent participant's ``podium.avatar`` attribute says now (None before joining)."""

    def read() -> str | None:
        if not room.isconnected():  # not yet in the room, or left it: no face shown
            return None
        value: str | None = room.local_participant.attributes.get(AVATAR_ATTRIBUTE)
        return value

    return read
