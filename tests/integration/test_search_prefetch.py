"""A deck search the model asks for starts as its tool call streams out, and the tool then reads
that one request's result: against a real control plane (Postgres, pgvector, the embedder)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
from livekit.agents import llm

from agent_worker.control_plane_client import ControlPlaneClient
from agent_worker.prefetch import SearchPrefetch
from shared.devstack.stack import EphemeralStack
from tests.e2e.conftest import upload_ready
from tests.factories import make_product_deck

SEARCH_ROUTE = 'method="GET",route="/internal/v1/sessions/{session_id}/search"'


async def _searches_answered(api: httpx.AsyncClient) -> float:
    """How many presenter searches the control plane has answered (its /metrics)."""
    for line in (await api.get("/metrics")).text.splitlines():
        if line.startswith("podium_http_request_duration_seconds_count") and SEARCH_ROUTE in line:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def _model_asks(name: str, arguments: dict[str, object]) -> AsyncIterator[llm.ChatChunk]:
    """What the framework's LLM node yields for a reply that calls one tool."""
    call = llm.FunctionToolCall(name=name, arguments=json.dumps(arguments), call_id="call_1")
    yield llm.ChatChunk(id="reply_1", delta=llm.ChoiceDelta(role="assistant", tool_calls=[call]))


async def test_the_search_starts_with_the_tool_call_and_the_tool_reuses_it(
    control_plane: EphemeralStack, api: httpx.AsyncClient
) -> None:
    owner = control_plane.create_tenant("prefetch")
    deck_id = await upload_ready(api, owner, "acme.pptx", make_product_deck())
    created = await api.post("/v1/sessions", headers=owner.headers, json={"deck_id": deck_id})
    assert created.status_code == 201, created.text
    session = created.json()
    credential = await control_plane.worker_credential(session["room"])
    async with ControlPlaneClient(control_plane.api_url, timeout_seconds=10) as client:
        searches = SearchPrefetch(client.for_session(session["session_id"], credential))
        try:
            before = await _searches_answered(api)
            question = "How much does it cost?"
            async for _ in searches.watch(_model_asks("search_slides", {"query": question})):
                pass
            topic = searches.watch(_model_asks("goto_slide", {"topic": "pricing"}))
            async for _ in topic:
                pass
            # The tools have not run: the model's stream alone sent both searches.
            found = await searches.search(question)
            navigate = await searches.search("pricing", 1, purpose="navigate")
            assert await _searches_answered(api) - before == 2  # no second round trip
            direct = await client.for_session(session["session_id"], credential).search(question)
            assert found == direct  # the prefetched answer is the tool's own
            assert navigate.hits and navigate.hits[0].title and "Pric" in navigate.hits[0].title
            # A search asked again, not prefetched this time, goes to the control plane.
            await searches.search(question)
            assert await _searches_answered(api) - before == 4
        finally:
            await searches.aclose()
            await api.post(f"/v1/sessions/{session['session_id']}/end", headers=owner.headers)
