"""What a worker sends is redacted by its tenant's data policy before it is stored, through the
real control plane on Postgres: 'mask' replaces each finding by its type in messages, turns
(user and model words, tool arguments and results) and escalations; 'drop' keeps no text that
held any; 'off' stores the words as sent. A recording segment is silenced over the spans where
the user spoke personal data whether it arrives before the turn that names them or after."""

from __future__ import annotations

import io
import re
import time
from datetime import UTC, datetime
from typing import Any

import av
import httpx
import numpy as np
import pytest
from av.audio.frame import AudioFrame

from shared.devstack.stack import EphemeralStack, TenantKey

pytestmark = pytest.mark.integration

SAID = "Sure, my email is jane.doe@example.com and my number is +44 20 7946 0958."
ANSWERED = "Thanks, I will write to jane.doe@example.com."
CLEAN = "Can we go back to the pricing slide?"


async def _session(
    api: httpx.AsyncClient, stack: EphemeralStack, tenant: TenantKey, mode: str
) -> tuple[str, dict[str, str]]:
    policy = await api.put(
        "/v1/tenant/data-policy", headers=tenant.headers, json={"redaction": mode}
    )
    assert policy.status_code == 200, policy.text
    created = await api.post("/v1/sessions", headers=tenant.headers, json={"record": True})
    assert created.status_code == 201, created.text
    session = created.json()
    credential = await stack.worker_credential(session["room"])
    return session["session_id"], {"Authorization": f"Bearer {credential}"}


def _turn(
    turn_id: str, user_text: str, words: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    now = datetime.now(UTC).isoformat()
    return {
        "turn_id": turn_id,
        "started_at": now,
        "ended_at": now,
        "user_text": user_text,
        "speaker": "jane",
        "user_words": words or [],
        "agent_text": ANSWERED,
        "tool_calls": [
            {
                "call_id": "c1",
                "name": "escalate_to_human",
                "arguments": '{"reason": "call jane.doe@example.com"}',
                "output": "Asked a colleague to call +44 20 7946 0958.",
            }
        ],
    }


async def _stored(api: httpx.AsyncClient, tenant: TenantKey, sid: str) -> tuple[Any, Any, Any]:
    turns = (await api.get(f"/v1/sessions/{sid}/turns", headers=tenant.headers)).json()["items"]
    messages = (await api.get(f"/v1/sessions/{sid}/transcript", headers=tenant.headers)).json()
    escalations = await api.get(f"/v1/sessions/{sid}/escalations", headers=tenant.headers)
    return turns, messages["items"], escalations.json()["items"]


async def _send_records(api: httpx.AsyncClient, sid: str, worker: dict[str, str]) -> None:
    path = f"/internal/v1/sessions/{sid}"
    now = datetime.now(UTC).isoformat()
    messages = [
        {"item_id": "m1", "role": "user", "text": SAID, "speaker": "jane", "started_at": now},
        {"item_id": "m2", "role": "assistant", "text": ANSWERED},
        {"item_id": "m3", "role": "user", "text": CLEAN, "speaker": "jane"},
    ]
    sent = await api.post(f"{path}/messages", headers=worker, json={"messages": messages})
    assert sent.status_code == 204, sent.text
    sent = await api.post(f"{path}/turns", headers=worker, json={"turns": [_turn("t1", SAID)]})
    assert sent.status_code == 204, sent.text
    escalated = await api.post(
        f"{path}/escalations",
        headers={**worker, "Idempotency-Key": "e1"},
        json={"reason": "Jane asked for a call", "last_question": SAID},
    )
    assert escalated.status_code == 201, escalated.text


async def test_mask_replaces_each_finding_by_its_type_in_every_record(
    api: httpx.AsyncClient, control_plane: EphemeralStack, tenant: TenantKey
) -> None:
    sid, worker = await _session(api, control_plane, tenant, "mask")
    await _send_records(api, sid, worker)
    turns, messages, escalations = await _stored(api, tenant, sid)
    (turn,) = turns
    assert turn["user_text"] == "Sure, my email is [EMAIL] and my number is [PHONE]."
    assert turn["agent_text"] == "Thanks, I will write to [EMAIL]."
    assert turn["tool_calls"][0]["arguments"] == '{"reason": "call [EMAIL]"}'
    assert turn["tool_calls"][0]["output"] == "Asked a colleague to call [PHONE]."
    assert turn["speaker"] == "jane"
    assert [m["text"] for m in messages] == [
        "Sure, my email is [EMAIL] and my number is [PHONE].",
        "Thanks, I will write to [EMAIL].",
        CLEAN,
    ]
    (escalation,) = escalations
    assert escalation["last_question"] == "Sure, my email is [EMAIL] and my number is [PHONE]."
    # the phone's digits as a group of their own: an id's hex or a timestamp may hold "7946"
    assert "jane.doe" not in str(escalation)
    assert not re.search(r"(?<![\w.-])7946(?![\w.-])|7946 0958", str(escalation))


async def test_drop_keeps_no_text_that_held_personal_data(
    api: httpx.AsyncClient, control_plane: EphemeralStack, tenant: TenantKey
) -> None:
    sid, worker = await _session(api, control_plane, tenant, "drop")
    await _send_records(api, sid, worker)
    turns, messages, _ = await _stored(api, tenant, sid)
    assert turns[0]["user_text"] == turns[0]["agent_text"] == "[removed: personal data]"
    assert [m["text"] for m in messages] == [
        "[removed: personal data]",
        "[removed: personal data]",
        CLEAN,
    ]


async def test_off_stores_the_words_as_sent(
    api: httpx.AsyncClient, control_plane: EphemeralStack, tenant: TenantKey
) -> None:
    sid, worker = await _session(api, control_plane, tenant, "off")
    await _send_records(api, sid, worker)
    turns, messages, _ = await _stored(api, tenant, sid)
    assert turns[0]["user_text"] == SAID and messages[0]["text"] == SAID


# -- recordings ---------------------------------------------------------------------------

RATE = 48_000


def _tone_ogg(seconds: float) -> bytes:
    """Stereo Ogg/Opus: a tone on both channels (the user left, the presenter right)."""
    out = io.BytesIO()
    with av.open(out, mode="w", format="ogg") as sink:
        stream = sink.add_stream("libopus", rate=RATE, layout="stereo")
        t = np.arange(int(seconds * RATE)) / RATE
        pcm = np.stack([0.3 * np.sin(2 * np.pi * 300 * t)] * 2).astype(np.float32)
        for i in range(0, pcm.shape[1], 960):
            frame = AudioFrame.from_ndarray(
                np.ascontiguousarray(pcm[:, i : i + 960]), format="fltp", layout="stereo"
            )
            frame.sample_rate = RATE
            for packet in stream.encode(frame):
                sink.mux(packet)
        for packet in stream.encode(None):
            sink.mux(packet)
    return out.getvalue()


def _user_rms(audio: bytes, start_s: float, end_s: float) -> float:
    with av.open(io.BytesIO(audio), mode="r") as container:
        pcm = np.concatenate([f.to_ndarray() for f in container.decode(audio=0)], axis=1)
    window = pcm[0, int(start_s * RATE) : int(end_s * RATE)].astype(np.float64)
    return float(np.sqrt(np.mean(np.square(window))))


@pytest.mark.parametrize("order", ["segment first", "turn first"])
async def test_the_user_channel_is_silenced_over_spoken_personal_data_in_either_order(
    api: httpx.AsyncClient, control_plane: EphemeralStack, tenant: TenantKey, order: str
) -> None:
    sid, worker = await _session(api, control_plane, tenant, "mask")
    started = await api.post(f"/internal/v1/sessions/{sid}/agent-joined", headers=worker)
    assert started.status_code == 204, started.text
    t0 = time.time()
    words = [
        "Sure,",
        "my",
        "email",
        "is",
        "jane.doe@example.com",
        "and",
        "my",
        "number",
        "is",
        "+44",
        "20",
        "7946",
        "0958.",
    ]
    # One word every 0.4 s from 1 s into the segment: the e-mail is word 4 (2.6-3.0 s), the
    # phone number words 9-12 (4.6-6.2 s).
    timed = [
        {"word": w, "start": t0 + 1.0 + 0.4 * i, "end": t0 + 1.4 + 0.4 * i}
        for i, w in enumerate(words)
    ]
    segment = _tone_ogg(8.0)

    async def upload() -> None:
        put = await api.put(
            f"/internal/v1/sessions/{sid}/recording/segments/0",
            params={"job_id": "AJ_x", "started_at": t0, "duration_s": 8.0},
            headers={**worker, "Content-Type": "audio/ogg"},
            content=segment,
        )
        assert put.status_code == 204, put.text

    async def turn() -> None:
        body = {"turns": [_turn("t1", SAID, timed)]}
        sent = await api.post(f"/internal/v1/sessions/{sid}/turns", headers=worker, json=body)
        assert sent.status_code == 204, sent.text

    for step in (upload, turn) if order == "segment first" else (turn, upload):
        await step()
    # Serving applies whatever the background pass has not yet.
    served = await api.get(f"/v1/sessions/{sid}/recording/segments/0", headers=tenant.headers)
    assert served.status_code == 200
    audio = served.content
    assert _user_rms(audio, 2.6, 3.0) < 0.001  # the e-mail
    assert _user_rms(audio, 4.6, 6.2) < 0.001  # the phone number
    assert _user_rms(audio, 1.0, 2.2) > 0.1  # "Sure, my email is": kept
    assert _user_rms(audio, 3.3, 4.3) > 0.1  # "and my number is": kept
    with av.open(io.BytesIO(audio), mode="r") as container:  # the presenter's channel: intact
        pcm = np.concatenate([f.to_ndarray() for f in container.decode(audio=0)], axis=1)
    assert float(np.sqrt(np.mean(np.square(pcm[1, : 7 * RATE])))) > 0.15


async def test_a_segment_that_cannot_be_decoded_is_replaced_by_silence_not_served(
    api: httpx.AsyncClient, control_plane: EphemeralStack, tenant: TenantKey
) -> None:
    sid, worker = await _session(api, control_plane, tenant, "mask")
    t0 = time.time()
    put = await api.put(
        f"/internal/v1/sessions/{sid}/recording/segments/0",
        params={"job_id": "AJ_x", "started_at": t0, "duration_s": 4.0},
        headers={**worker, "Content-Type": "audio/ogg"},
        content=b"OggS" + b"not really opus" * 200,
    )
    assert put.status_code == 204, put.text
    timed = [{"word": w, "start": t0 + i * 0.3, "end": t0 + i * 0.3 + 0.3} for i, w in
             enumerate(SAID.split())]  # fmt: skip
    body = {"turns": [_turn("t1", SAID, timed)]}
    sent = await api.post(f"/internal/v1/sessions/{sid}/turns", headers=worker, json=body)
    assert sent.status_code == 204, sent.text
    served = await api.get(f"/v1/sessions/{sid}/recording/segments/0", headers=tenant.headers)
    assert served.status_code == 200
    assert b"not really opus" not in served.content
    assert _user_rms(served.content, 0.0, 3.9) == 0.0
