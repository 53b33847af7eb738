"""A Spanish deck presented and answered in Spanish through a real LiveKit room. No Spanish
recogniser ships offline (docs/languages.md), so the worker hears through Deepgram's protocol fake
(asked for language=es) and speaks through ElevenLabs' (told the language); the offline
responder decides and words the answers, from the control plane's search of the deck indexed
with the multilingual model. The captions (the transcription text stream) are what is checked."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import httpx
import pytest

from shared.devstack.services import ManagedProcess
from shared.devstack.stack import EphemeralStack
from tests.data.languages.spanish_deck import make_spanish_deck
from tests.e2e.audience import Audience
from tests.e2e.conftest import upload_ready
from tests.fakes import DeepgramFake, ElevenLabsFake

pytestmark = pytest.mark.e2e


@dataclass(frozen=True)
class Cloud:
    deepgram: DeepgramFake
    elevenlabs: ElevenLabsFake


@pytest.fixture(scope="module")
async def cloud() -> AsyncIterator[Cloud]:
    async with DeepgramFake() as dg, ElevenLabsFake() as eleven:
        yield Cloud(dg, eleven)


# One worker takes this agent name's dispatches at a time: the suite's offline worker stands
# down while this module runs (as in test_cloud_pipeline.py).
@pytest.fixture(scope="module")
def spanish_worker(
    control_plane: EphemeralStack, cloud: Cloud, worker: ManagedProcess
) -> Iterator[ManagedProcess]:
    worker.stop()
    proc = control_plane.start_worker(
        name="spanish-worker",
        PODIUM_STT_PROVIDER="deepgram",
        PODIUM_DEEPGRAM_API_KEY=cloud.deepgram.api_key,
        PODIUM_DEEPGRAM_BASE_URL=cloud.deepgram.listen_url,
        PODIUM_LLM_PROVIDER="local",
        PODIUM_TTS_PROVIDER="elevenlabs",
        PODIUM_ELEVENLABS_API_KEY=cloud.elevenlabs.api_key,
        PODIUM_ELEVENLABS_BASE_URL=cloud.elevenlabs.base_url,
    )
    yield proc
    proc.stop()
    control_plane.revive_worker(worker)


def _said(lines: list[str], pattern: str) -> bool:
    return any(re.search(pattern, line) for line in lines)


async def test_a_spanish_deck_is_presented_and_answered_in_spanish(
    api: httpx.AsyncClient,
    control_plane: EphemeralStack,
    cloud: Cloud,
    spanish_worker: ManagedProcess,
) -> None:
    owner = control_plane.create_tenant("spanish-deck")
    deck_id = await upload_ready(api, owner, "rutalia.pptx", make_spanish_deck())
    deck = (await api.get(f"/v1/decks/{deck_id}", headers=owner.headers)).json()
    assert (deck["language"], deck["embedding_model"]) == ("es", "multilingual-e5-small-q4")
    resp = await api.post(
        "/v1/sessions",
        headers=owner.headers,
        json={"deck_id": deck_id, "participant": {"identity": "ada", "name": "Ada"}},
    )
    assert resp.status_code == 201, resp.text
    session = resp.json()
    cloud.elevenlabs.seconds_per_char = 0.02
    try:
        async with Audience(session["livekit_url"], session["token"], voice="espeak") as ada:
            await ada.until(lambda: _said(ada.agent_said(), r"^Hola"), 60, "no Spanish greeting")
            await ada.until(
                lambda: "Diapositiva 1: Rutalia: logística sin sorpresas." in ada.agent_said(),
                60,
                "the first slide was not narrated in Spanish",
            )
            question = "¿Cuánto cuesta el plan básico?"
            speaking = asyncio.create_task(ada.say(question))
            await asyncio.sleep(0.8)
            cloud.deepgram.script(question, after_audio_s=0.0)
            asked, _ = await speaking
            await ada.until(
                lambda: _said(ada.agent_said(asked), r"^Eso está en la diapositiva 4, Precios\."),
                30,
                "no Spanish answer citing the pricing slide",
            )
            await ada.until(
                lambda: "¿Sigo con la presentación?" in ada.agent_said(asked),
                30,
                "no Spanish offer to carry on",
            )
    finally:
        await api.post(f"/v1/sessions/{session['session_id']}/end", headers=owner.headers)
    print("\ntranscript:", *[f"{line.identity}: {line.text}" for line in ada.lines], sep="\n  ")
    listens = [c for c in cloud.deepgram.connections if c.path.endswith("/listen")]
    assert listens and listens[-1].query.get("language") == "es", listens[-1].query
    assert any(text.startswith("Eso está en la diapositiva 4") for text in cloud.elevenlabs.spoken)
