"""The job's usage meter: what the providers report becomes cumulative totals, sent only when
they changed; a report the control plane did not take is carried by the next. The offline
responder spends no tokens and says so, under its own name."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest
from livekit.agents import AgentSession
from livekit.agents.metrics import STTMetrics, TTSMetrics
from livekit.agents.metrics.base import Metadata

from agent_worker.control_plane_client import ControlPlaneClient, ControlPlaneError
from agent_worker.presenter import Presenter
from agent_worker.responder import MODEL_NAME, OfflineResponder
from agent_worker.usage import UsageMeter


class _ControlPlane:
    """The control plane's side of the HTTP edge: records each usage report, fails on demand."""

    def __init__(self) -> None:
        self.reports: list[dict[str, Any]] = []
        self.failing = 0

    def handle(self, request: httpx.Request) -> httpx.Response:
        if self.failing:
            self.failing -= 1
            return httpx.Response(503)
        self.reports.append(json.loads(request.content))
        return httpx.Response(204)


def _meter(edge: _ControlPlane) -> tuple[UsageMeter, ControlPlaneClient]:
    client = ControlPlaneClient(
        "http://control-plane", timeout_seconds=1, transport=httpx.MockTransport(edge.handle)
    )
    meter = UsageMeter(client.for_session(uuid.uuid4(), "credential"), job_id="AJ_unit")
    return meter, client


def _totals(report: dict[str, Any]) -> dict[tuple[str, str], float]:
    return {(t["meter"], t["dimension"]): t["quantity"] for t in report["totals"]}


async def test_the_offline_responder_is_metered_as_zero_tokens_under_its_name() -> None:
    edge = _ControlPlane()
    meter, client = _meter(edge)
    responder = OfflineResponder()
    meter.watch(responder)
    async with AgentSession[None](llm=responder) as session:
        await session.start(Presenter(deck=None))
        await session.run(user_input="next slide please")
    await meter.report()
    await client.aclose()
    [report] = edge.reports
    assert report["job_id"] == "AJ_unit"
    assert _totals(report) == {
        ("llm_input_tokens", MODEL_NAME): 0,
        ("llm_output_tokens", MODEL_NAME): 0,
    }


def _tts(characters: int) -> TTSMetrics:
    return TTSMetrics(
        label="t",
        request_id="r",
        timestamp=0,
        ttfb=0.1,
        duration=1,
        audio_duration=1,
        cancelled=False,
        characters_count=characters,
        streamed=True,
        metadata=Metadata(model_provider="ElevenLabs", model_name="eleven_flash_v2_5"),
    )


async def test_totals_are_cumulative_and_sent_when_they_change() -> None:
    edge = _ControlPlane()
    meter, client = _meter(edge)
    meter._on_metrics(_tts(40))
    meter._on_metrics(
        STTMetrics(
            label="s",
            request_id="r",
            timestamp=0,
            duration=0,
            audio_duration=5.0,
            streamed=True,
            metadata=Metadata(model_provider="Deepgram", model_name="nova-3"),
        )
    )
    await meter.report()
    await meter.report()  # nothing new: nothing sent
    assert len(edge.reports) == 1
    meter._on_metrics(_tts(2))
    edge.failing = 3  # the control plane restarting: every retry of this report fails
    with pytest.raises(ControlPlaneError):
        await meter.report()
    meter._on_metrics(_tts(3))
    await meter.report()  # the next report carries what the lost one held
    await client.aclose()
    assert [_totals(r) for r in edge.reports] == [
        {("tts_characters", "ElevenLabs"): 40, ("stt_audio_seconds", "Deepgram"): 5.0},
        {("tts_characters", "ElevenLabs"): 45, ("stt_audio_seconds", "Deepgram"): 5.0},
    ]
