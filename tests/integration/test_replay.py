"""``podium replay`` against a real control plane: recorded turns re-driven through the presenter
with the offline responder reproduce the recorded tool calls, move only a private copy of the
slide state, and a turn that recorded something else is reported as different."""

from __future__ import annotations

import asyncio
import io
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from agent_worker.replay import run, same_tools
from shared.devstack.stack import EphemeralStack, TenantKey
from tests.e2e.conftest import ProductDeck, upload_ready
from tests.factories import make_product_deck
from tests.fakes.openai_server import OpenAIFake

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def _turn(n: int, user: str, tools: list[tuple[str, str]], before: int, after: int) -> Any:
    start = T0 + timedelta(seconds=20 * n)
    return {
        "turn_id": f"speech_r{n}",
        "started_at": start.isoformat(),
        "ended_at": (start + timedelta(seconds=2)).isoformat(),
        "user_text": user,
        "agent_text": "recorded answer",
        "tool_calls": [
            {
                "call_id": f"c{n}{i}",
                "name": name,
                "arguments": args,
                "output": f"recorded result {n}",
                "started_at": start.timestamp() + 0.5,
                "duration": 0.05,
            }
            for i, (name, args) in enumerate(tools)
        ],
        "slide_before": before,
        "slide_after": after,
        "version_before": 5,
        "timings": {
            "user_stopped_at": start.timestamp(),
            "end_of_turn_delay": 0.45,
            "transcription_delay": 0.2,
            "llm_ttft": 0.01,
            "tts_ttfb": 0.09,
            "e2e_latency": 0.7,
        },
        "calls": [
            {
                "stage": "llm",
                "request_id": f"r{n}",
                "model": "podium-offline-responder",
                "started_at": start.timestamp() + 0.46,
                "duration": 0.02,
                "first_output": 0.01,
            },
            {
                "stage": "tts",
                "request_id": f"t{n}",
                "model": "piper",
                "started_at": start.timestamp() + 0.5,
                "duration": 0.3,
                "first_output": 0.09,
            },
        ],
        "providers": {"llm": "podium/podium-offline-responder"},
    }


@pytest.fixture(scope="module")
async def product_deck(control_plane: EphemeralStack) -> ProductDeck:
    owner = control_plane.create_tenant("replay")
    async with httpx.AsyncClient(base_url=control_plane.api_url, timeout=10) as api:
        return ProductDeck(owner, await upload_ready(api, owner, "acme.pptx", make_product_deck()))


async def _podium(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    """The ``podium`` command, as an engineer runs it."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "control_plane",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@pytest.fixture
async def recorded(
    api: httpx.AsyncClient, product_deck: ProductDeck, control_plane: EphemeralStack
) -> dict[str, Any]:
    owner = product_deck.owner
    resp = await api.post(
        "/v1/sessions", headers=owner.headers, json={"deck_id": product_deck.deck_id}
    )
    session: dict[str, Any] = resp.json()
    worker = {"Authorization": f"Bearer {await control_plane.worker_credential(session['room'])}"}
    base = f"/internal/v1/sessions/{session['session_id']}"
    turns = [
        _turn(
            1,
            "How much does it cost?",
            [("search_slides", '{"query": "How much does it cost?"}')],
            1,
            1,
        ),
        _turn(2, "Go to the next slide.", [("next_slide", "{}")], 3, 4),
        _turn(
            3, "Go back to the part about pricing.", [("goto_slide", '{"topic": "pricing"}')], 6, 4
        ),
        # Recorded with a different call than the responder makes today.
        _turn(4, "Next one please.", [("last_slide", "{}")], 2, 8),
    ]
    resp = await api.post(f"{base}/turns", headers=worker, json={"turns": turns})
    assert resp.status_code == 204, resp.text
    said = []
    for n, turn in enumerate(turns, start=1):
        start = datetime.fromisoformat(turn["started_at"])
        said += [
            {
                "item_id": f"u{n}",
                "role": "user",
                "text": turn["user_text"],
                "started_at": start.isoformat(),
            },
            {
                "item_id": f"a{n}",
                "role": "assistant",
                "text": f"answer {n}",
                "started_at": (start + timedelta(seconds=1)).isoformat(),
            },
        ]
    resp = await api.post(f"{base}/messages", headers=worker, json={"messages": said})
    assert resp.status_code == 204, resp.text
    return session


async def test_replay_reproduces_recorded_tool_calls_without_touching_the_session(
    api: httpx.AsyncClient,
    control_plane: EphemeralStack,
    product_deck: ProductDeck,
    recorded: dict[str, Any],
    tmp_path: Path,
) -> None:
    owner: TenantKey = product_deck.owner
    sid = recorded["session_id"]
    out = io.StringIO()
    results = await run(
        sid,
        api_url=control_plane.api_url,
        api_key=owner.api_key,
        turn_number=None,
        llm_spec="local",
        plot_path=None,
        out=out,
    )
    text = out.getvalue()
    print(text)
    verdicts = [same_tools(turn, replayed) for turn, replayed in results]
    assert verdicts == [True, True, True, False]
    pricing, nxt, back, wrong = (replayed for _, replayed in results)
    assert pricing.agent_text and pricing.agent_text.startswith("That's on slide 4, Pricing.")
    assert nxt.slide_after == 4  # from the recorded slide 3, not the live slide 1
    assert back.slide_after == 4
    assert wrong.slide_after == 3  # the responder moved one slide, not to the last
    assert "[DIFFERENT]" in text and "end of turn (EOU)" in text and "█" in text

    live = await api.get(f"/v1/sessions/{sid}/slide", headers=owner.headers)
    assert (live.json()["index"], live.json()["version"]) == (1, 1)  # untouched

    # The command, as an engineer runs it, with a plot.
    image = tmp_path / "waterfall.png"
    env = {
        **control_plane.api_env,
        "PODIUM_API_URL": control_plane.api_url,
        "PODIUM_API_KEY": owner.api_key,
    }
    code, stdout, stderr = await _podium(env, "replay", sid, "--turn", "2", "--plot", str(image))
    assert code == 0, stderr
    assert "Turn 2" in stdout and "[same]" in stdout and "Turn 1 " not in stdout
    assert image.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    code, _, stderr = await _podium(env, "replay", sid, "--turn", "99")
    assert code == 2
    assert "turn 99 is not in the log (it has 4 turns)" in stderr
    await api.post(f"/v1/sessions/{sid}/end", headers=owner.headers)


async def test_a_turn_re_run_against_another_model_shows_what_it_would_have_done(
    control_plane: EphemeralStack,
    product_deck: ProductDeck,
    recorded: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with OpenAIFake() as fake:
        monkeypatch.setenv("PODIUM_OPENAI_API_KEY", fake.api_key)
        monkeypatch.setenv("PODIUM_OPENAI_BASE_URL", f"{fake.url}/v1")
        fake.llm.push_reply(tool_calls=[("goto_slide", {"slide_number": 8})])
        fake.llm.push_reply(text="Here is the last slide.")
        out = io.StringIO()
        [(turn, replayed)] = await run(
            recorded["session_id"],
            api_url=control_plane.api_url,
            api_key=product_deck.owner.api_key,
            turn_number=2,
            llm_spec="openai:gpt-replay-test",
            plot_path=None,
            out=out,
        )
        requests = fake.chat_requests
    print(out.getvalue())
    assert not same_tools(turn, replayed)
    assert replayed.tool_calls[0][:2] == ("goto_slide", {"slide_number": 8})
    assert (replayed.slide_after, replayed.agent_text) == (8, "Here is the last slide.")
    assert replayed.model.endswith("gpt-replay-test")
    # The model was asked with the user's recorded words and the tools the presenter has.
    first = requests[0]
    assert first["model"] == "gpt-replay-test"
    # The conversation before the turn, with turn 1's tool call and its recorded result.
    seen = [(m["role"], m.get("content"), m.get("tool_calls")) for m in first["messages"]]
    roles = [role for role, _, _ in seen if role != "system"]
    assert roles == ["user", "assistant", "tool", "assistant", "user"], seen
    assert seen[-1][1] == "Go to the next slide."
    tool_result = next(m for m in first["messages"] if m["role"] == "tool")
    assert tool_result["content"] == "recorded result 1"
    assert {t["function"]["name"] for t in first["tools"]} >= {"next_slide", "goto_slide"}
