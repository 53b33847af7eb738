"""Two sessions on one deck with known records and timestamps, sent through the real API as a
listener, an integrator and the presenter's job would (analytics API and page tests).

The product deck (8 slides). Times are set afterwards in Postgres, so every figure is exact:

session A, from T0 (ended early, on slide 3):
  0 s slide 1 → 60 s slide 2 (narration) → 90 s slide 4 (spoken "go to pricing") → 95 s the
  presenter is cut off → 100 s asks the price (answered) → 120 s asks about Salesforce
  (declined) → 150 s slide 3 (a listener's "previous") → 180 s paused → 200 s resumed → escalates
  → 260 s ends.
session B, from T0 + 1 h (to the last slide):
  0 s slide 1 → 30 s slide 2 (narration) → 40 s "Is there a Salesforce integration?" and 50 s
  "What's the weather in Lisbon today?" (both declined) → 60 s slide 3 (narration) → 100 s
  slide 8 (the API's "last") → 130 s ends.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx

from agent_worker.presenter import ANSWERED, NO_MATCH, NOT_COVERED
from shared.devstack.stack import EphemeralStack, TenantKey
from shared.intents import DOESNT_COVER
from tests.factories import PRODUCT_DECK, make_pdf

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
T1 = T0 + timedelta(hours=1)
PRICE = "How much does the Team plan cost?"
SALESFORCE_A = "Do you integrate with Salesforce?"
SALESFORCE_B = "Is there a Salesforce integration?"
WEATHER = "What's the weather in Lisbon today?"
ESCALATION = "Wants a custom quote for 300 seats"


@dataclass
class TwoSessions:
    owner: TenantKey
    deck_id: str
    a: str
    b: str


async def product_deck(api: httpx.AsyncClient, owner: TenantKey) -> str:
    pdf = make_pdf([[title, *body.split("\n")] for title, body, _ in PRODUCT_DECK])
    resp = await api.post("/v1/decks", headers=owner.headers, files={"file": ("acme.pdf", pdf)})
    assert resp.status_code == 202, resp.text
    deck_id = str(resp.json()["deck_id"])
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        deck = (await api.get(f"/v1/decks/{deck_id}", headers=owner.headers)).json()
        if deck["status"] in ("ready", "failed"):
            assert deck["status"] == "ready", deck
            return deck_id
        await asyncio.sleep(0.2)
    raise AssertionError(f"deck {deck_id} not ingested in 90 s")


def _turn(n: int, at: datetime, slide: int, text: str, output: str, answer: str) -> dict[str, Any]:
    return {
        "turn_id": f"speech_{n}",
        "started_at": at.isoformat(),
        "ended_at": (at + timedelta(seconds=3)).isoformat(),
        "user_text": text,
        "speaker": "ada",
        "agent_text": answer,
        "tool_calls": [
            {
                "call_id": f"call_{n}",
                "name": "search_slides",
                "arguments": json.dumps({"query": text}),
                "output": output,
            }
        ],
        "slide_before": slide,
        "slide_after": slide,
    }


def _hits(output_verdict: str) -> str:
    return "\n".join(
        [
            "<deck_data>",
            "Slide 4 (Pricing), relevance 0.700: Starter Team Enterprise",
            "</deck_data>",
            output_verdict,
        ]
    )


class _Session:
    def __init__(self, api: httpx.AsyncClient, stack: EphemeralStack, owner: TenantKey) -> None:
        self.api, self.stack, self.owner = api, stack, owner

    async def create(self, deck_id: str) -> None:
        created = await self.api.post(
            "/v1/sessions", headers=self.owner.headers, json={"deck_id": deck_id}
        )
        assert created.status_code == 201, created.text
        body = created.json()
        self.sid, self.token = body["session_id"], body["token"]
        credential = await self.stack.worker_credential(body["room"])
        self.worker = {"Authorization": f"Bearer {credential}"}
        self.internal = f"/internal/v1/sessions/{self.sid}"
        joined = await self.api.post(f"{self.internal}/agent-joined", headers=self.worker)
        assert joined.status_code == 204, joined.text
        self.versions: dict[int, float] = {1: 0.0}

    async def move(self, by: str, at_s: float, action: str, **extra: Any) -> None:
        body = {"action": action, **extra}
        version = max(self.versions) + 1
        if by == "agent":  # the narration's key, or a tool call's
            key = f"narration-v{version - 1}" if action == "next" else f"tool-call_{version}"
            resp = await self.api.post(
                f"{self.internal}/slide", headers={**self.worker, "Idempotency-Key": key}, json=body
            )
        elif by == "listener":
            resp = await self.api.post(
                "/v1/participant/slide",
                headers={"Authorization": f"Bearer {self.token}", "Idempotency-Key": f"k{version}"},
                json=body,
            )
        else:
            resp = await self.api.post(
                f"/v1/sessions/{self.sid}/slide", headers=self.owner.headers, json=body
            )
        assert resp.status_code == 200, resp.text
        assert resp.json()["version"] == version
        self.versions[version] = at_s

    async def send(self, path: str, body: dict[str, Any], **headers: str) -> None:
        resp = await self.api.post(
            f"{self.internal}/{path}", headers={**self.worker, **headers}, json=body
        )
        assert resp.status_code in (201, 204), resp.text

    async def end(self) -> None:
        ended = await self.api.post(f"/v1/sessions/{self.sid}/end", headers=self.owner.headers)
        assert ended.status_code == 200, ended.text

    async def set_times(self, conn: asyncpg.Connection, zero: datetime, end_s: float) -> None:
        await conn.execute(
            """UPDATE sessions SET created_at = $2, started_at = $2, ended_at = $3,
            last_activity_at = $3 WHERE id = $1""",
            self.sid,
            zero,
            zero + timedelta(seconds=end_s),
        )
        for version, at_s in self.versions.items():
            await conn.execute(
                """UPDATE slide_transitions SET created_at = $3
                WHERE session_id = $1 AND version = $2""",
                self.sid,
                version,
                zero + timedelta(seconds=at_s),
            )


async def two_sessions(
    api: httpx.AsyncClient, stack: EphemeralStack, owner: TenantKey, deck_id: str
) -> TwoSessions:
    a = _Session(api, stack, owner)
    await a.create(deck_id)
    await a.move("agent", 60, "next")
    await a.move("agent", 90, "goto", index=4)
    await a.send(
        "messages",
        {
            "messages": [
                {
                    "item_id": "n1",
                    "role": "assistant",
                    "text": "Slide 4: Pricing. Plans start at",
                    "interrupted": True,
                    "started_at": (T0 + timedelta(seconds=92)).isoformat(),
                    "ended_at": (T0 + timedelta(seconds=95)).isoformat(),
                },
                {"item_id": "u1", "role": "user", "text": PRICE, "speaker": "ada"},
            ]
        },
    )
    price = "That's on slide 4, Pricing. Plans start at 49 dollars per month for five seats."
    await a.send(
        "turns",
        {
            "turns": [
                _turn(1, T0 + timedelta(seconds=100), 4, PRICE, _hits(ANSWERED), price),
                _turn(
                    2,
                    T0 + timedelta(seconds=120),
                    4,
                    SALESFORCE_A,
                    _hits(NOT_COVERED),
                    DOESNT_COVER,
                ),
            ]
        },
    )
    await a.move("listener", 150, "previous")
    await a.move("api", 180, "pause")
    await a.move("api", 200, "resume")
    await a.send(
        "escalations",
        {"reason": ESCALATION, "slide_index": 3, "last_question": "Can I talk to sales?"},
        **{"Idempotency-Key": "esc-1"},
    )
    await a.end()

    b = _Session(api, stack, owner)
    await b.create(deck_id)
    await b.move("agent", 30, "next")
    await b.send(
        "turns",
        {
            "turns": [
                _turn(1, T1 + timedelta(seconds=40), 2, SALESFORCE_B, NO_MATCH, DOESNT_COVER),
                _turn(2, T1 + timedelta(seconds=50), 2, WEATHER, _hits(NOT_COVERED), DOESNT_COVER),
            ]
        },
    )
    await b.move("agent", 60, "next")
    await b.move("api", 100, "last")
    await b.end()

    conn = await asyncpg.connect(stack.postgres.url())
    try:
        await a.set_times(conn, T0, 260)
        await b.set_times(conn, T1, 130)
    finally:
        await conn.close()
    return TwoSessions(owner, deck_id, a.sid, b.sid)
