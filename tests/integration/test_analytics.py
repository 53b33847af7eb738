"""Presentation analytics through the real control plane: two sessions on one deck (questions,
one asked off the deck in two wordings and one unrelated, spoken and clicked navigation, a
pause, an escalation, one session ended early) give exact time per slide, questions per slide
with their words, the off-deck question as one content gap, the drop-off slide and completion,
per session and for the deck over a time range; another tenant sees none of it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from shared.devstack.stack import EphemeralStack, TenantKey
from tests.analytics_fixture import (
    ESCALATION,
    PRICE,
    SALESFORCE_A,
    SALESFORCE_B,
    T0,
    T1,
    WEATHER,
    TwoSessions,
    product_deck,
    two_sessions,
)

pytestmark = pytest.mark.integration

RANGE = {"from": (T0 - timedelta(hours=1)).isoformat(), "to": (T1 + timedelta(days=1)).isoformat()}


@pytest.fixture(scope="module")
async def recorded(control_plane: EphemeralStack) -> TwoSessions:
    owner = control_plane.create_tenant("analytics")
    async with httpx.AsyncClient(base_url=control_plane.api_url, timeout=30) as api:
        deck_id = await product_deck(api, owner)
        return await two_sessions(api, control_plane, owner, deck_id)


async def _deck(api: httpx.AsyncClient, rec: TwoSessions, **params: str) -> dict[str, Any]:
    resp = await api.get(
        f"/v1/decks/{rec.deck_id}/analytics", headers=rec.owner.headers, params=params or RANGE
    )
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


async def test_session_analytics_has_exact_time_questions_and_drop_off(
    api: httpx.AsyncClient, recorded: TwoSessions
) -> None:
    resp = await api.get(f"/v1/sessions/{recorded.a}/analytics", headers=recorded.owner.headers)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    slides = {s["index"]: s for s in body["slides"]}
    assert body["slide_count"] == 8
    assert {i: s["seconds"] for i, s in slides.items() if s["seconds"]} == {
        1: 60.0,
        2: 30.0,
        4: 60.0,
        3: 90.0,  # 30 s before the pause and 60 s after it
    }
    assert slides[3]["paused_seconds"] == 20.0
    assert slides[4]["title"] == "Pricing"
    assert [(q["slide_index"], q["text"], q["declined"]) for q in body["questions"]] == [
        (4, PRICE, False),
        (4, SALESFORCE_A, True),
    ]
    assert slides[4]["questions"] == 2 and slides[4]["declined"] == 1
    summary = body["session"]
    assert summary["length_seconds"] == 260.0
    assert summary["drop_off_slide"] == 3
    assert summary["max_slide"] == 4 and summary["completion"] == 0.5
    assert slides[3]["drop_offs"] == 1
    assert [(n["by"], n["action"], n["to_index"]) for n in body["navigation"]] == [
        ("voice", "goto", 4),
        ("listener", "previous", 3),
    ]
    assert [(i["slide_index"]) for i in body["interruptions"]] == [4]
    assert slides[4]["interruptions"] == 1
    assert [(e["reason"], e["slide_index"]) for e in body["escalations"]] == [(ESCALATION, 3)]
    assert [g["question"] for g in body["content_gaps"]] == [SALESFORCE_A]


async def test_a_session_that_reached_the_last_slide_has_no_drop_off(
    api: httpx.AsyncClient, recorded: TwoSessions
) -> None:
    body = (
        await api.get(f"/v1/sessions/{recorded.b}/analytics", headers=recorded.owner.headers)
    ).json()
    assert body["session"]["drop_off_slide"] is None
    assert body["session"]["completion"] == 1.0
    assert [(n["by"], n["action"]) for n in body["navigation"]] == [("api", "last")]


async def test_deck_analytics_over_a_range_adds_the_sessions_up(
    api: httpx.AsyncClient, recorded: TwoSessions
) -> None:
    body = await _deck(api, recorded)
    assert body["sessions_count"] == 2 and body["sessions_truncated"] is False
    assert [s["session_id"] for s in body["sessions"]] == [recorded.b, recorded.a]
    slides = {s["index"]: s for s in body["slides"]}
    assert {i: s["seconds"] for i, s in slides.items()} == {
        1: 90.0,
        2: 60.0,
        3: 130.0,
        4: 60.0,
        5: 0.0,
        6: 0.0,
        7: 0.0,
        8: 30.0,
    }
    assert slides[3]["mean_seconds"] == 65.0
    assert {i: s["reached"] for i, s in slides.items()} == {
        1: 2,
        2: 2,
        3: 2,
        4: 1,
        5: 0,
        6: 0,
        7: 0,
        8: 1,
    }
    assert {i: s["questions"] for i, s in slides.items() if s["questions"]} == {2: 2, 4: 2}
    by_slide = [(q["slide_index"], q["text"]) for q in body["questions"]]
    assert by_slide == [(4, PRICE), (4, SALESFORCE_A), (2, SALESFORCE_B), (2, WEATHER)]
    assert body["ended_early"] == 1
    assert {i: s["drop_offs"] for i, s in slides.items() if s["drop_offs"]} == {3: 1}
    assert body["mean_completion"] == 0.75
    assert body["mean_length_seconds"] == 195.0
    assert body["navigation_requests"] == {"voice": 1, "listener": 1, "api": 1}
    assert body["escalation_reasons"] == {ESCALATION: 1}
    assert slides[1]["thumbnail_url"].startswith("http")


async def test_declined_paraphrases_are_one_content_gap_and_an_unrelated_one_another(
    api: httpx.AsyncClient, recorded: TwoSessions
) -> None:
    gaps = (await _deck(api, recorded))["content_gaps"]
    assert [(g["count"], sorted(g["examples"])) for g in gaps] == [
        (2, sorted([SALESFORCE_A, SALESFORCE_B])),
        (1, [WEATHER]),
    ]
    assert gaps[0]["sessions"] == [recorded.a, recorded.b]
    assert gaps[0]["slides"] == [2, 4]
    assert PRICE not in str(gaps)  # answered: not a gap


async def test_the_range_selects_sessions_by_when_they_were_created(
    api: httpx.AsyncClient, recorded: TwoSessions
) -> None:
    only_a = await _deck(
        api, recorded, **{"from": T0.isoformat(), "to": (T0 + timedelta(minutes=30)).isoformat()}
    )
    assert [s["session_id"] for s in only_a["sessions"]] == [recorded.a]
    assert [g["count"] for g in only_a["content_gaps"]] == [1]
    default = await api.get(
        f"/v1/decks/{recorded.deck_id}/analytics", headers=recorded.owner.headers
    )
    assert default.json()["sessions_count"] == 0  # the last 30 days: these were in March


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"from": "2026-03-02T00:00:00Z", "to": "2026-03-01T00:00:00Z"}, "from"),
        ({"from": "2024-01-01T00:00:00Z", "to": "2026-03-01T00:00:00Z"}, "from"),
        ({"from": "yesterday"}, "from"),
        ({"to": "not-a-date"}, "to"),
    ],
)
async def test_a_bad_range_is_422_naming_the_parameter(
    api: httpx.AsyncClient, recorded: TwoSessions, params: dict[str, str], named: str
) -> None:
    resp = await api.get(
        f"/v1/decks/{recorded.deck_id}/analytics", headers=recorded.owner.headers, params=params
    )
    assert resp.status_code == 422, resp.text
    assert resp.json()["error"] == "validation_error"
    assert f"query.{named}" in resp.json()["message"]


async def test_another_tenant_gets_404(
    api: httpx.AsyncClient, recorded: TwoSessions, tenant: TenantKey
) -> None:
    for path in (
        f"/v1/decks/{recorded.deck_id}/analytics",
        f"/v1/sessions/{recorded.a}/analytics",
    ):
        resp = await api.get(path, headers=tenant.headers, params=RANGE)
        assert resp.status_code == 404, resp.text
    link = await api.post(f"/v1/decks/{recorded.deck_id}/analytics/link", headers=tenant.headers)
    assert link.status_code == 404


async def test_a_link_reads_its_deck_analytics_only_until_it_expires_or_its_key_goes(
    api: httpx.AsyncClient, recorded: TwoSessions, control_plane: EphemeralStack
) -> None:
    made = await api.post(
        "/v1/keys",
        headers=recorded.owner.headers,
        json={"name": "sales", "scopes": ["records:read"]},
    )
    assert made.status_code == 201, made.text
    key = made.json()
    resp = await api.post(
        f"/v1/decks/{recorded.deck_id}/analytics/link",
        headers={"Authorization": f"Bearer {key['api_key']}"},
        json={"ttl_seconds": 600},
    )
    assert resp.status_code == 201, resp.text
    link = resp.json()
    assert link["url"].endswith(f"/analytics/{recorded.deck_id}#token={link['token']}")
    bearer = {"Authorization": f"Bearer {link['token']}"}
    read = await api.get(f"/v1/decks/{recorded.deck_id}/analytics", headers=bearer, params=RANGE)
    assert read.status_code == 200 and read.json()["sessions_count"] == 2
    # The link's reads are in the audit trail, under the key that made the link.
    trail = await api.get(
        "/v1/audit",
        headers=recorded.owner.headers,
        params={"route": "/v1/decks/{deck_id}/analytics", "key_id": key["key_id"]},
    )
    assert trail.status_code == 200, trail.text
    assert [(e["target_id"], e["status"]) for e in trail.json()["items"]] == [
        (recorded.deck_id, 200)
    ]
    # Nothing else: not the session's records, not another deck's analytics.
    assert (
        await api.get(f"/v1/sessions/{recorded.a}/analytics", headers=bearer)
    ).status_code == 401
    assert (await api.get(f"/v1/sessions/{recorded.a}/turns", headers=bearer)).status_code == 401
    other = await api.get(
        "/v1/decks/00000000-0000-0000-0000-000000000000/analytics", headers=bearer
    )
    assert other.status_code == 404
    tampered = link["token"][:-2] + ("AA" if not link["token"].endswith("AA") else "BB")
    bad = await api.get(
        f"/v1/decks/{recorded.deck_id}/analytics",
        headers={"Authorization": f"Bearer {tampered}"},
    )
    assert bad.status_code == 401
    revoked = await api.delete(f"/v1/keys/{key['key_id']}", headers=recorded.owner.headers)
    assert revoked.status_code in (200, 204), revoked.text
    gone = await api.get(f"/v1/decks/{recorded.deck_id}/analytics", headers=bearer, params=RANGE)
    assert gone.status_code == 401


async def test_a_key_without_records_read_is_403(
    api: httpx.AsyncClient, recorded: TwoSessions
) -> None:
    made = await api.post(
        "/v1/keys", headers=recorded.owner.headers, json={"name": "decks", "scopes": ["decks"]}
    )
    assert made.status_code == 201, made.text
    headers = {"Authorization": f"Bearer {made.json()['api_key']}"}
    resp = await api.get(f"/v1/decks/{recorded.deck_id}/analytics", headers=headers)
    assert resp.status_code == 403 and "records:read" in resp.json()["message"]


def test_the_cli_prints_the_slides_and_gaps_and_draws_them(
    control_plane: EphemeralStack, recorded: TwoSessions, tmp_path: Path
) -> None:
    plot = tmp_path / "analytics.png"
    command = [sys.executable, "-m", "control_plane", "analytics", recorded.deck_id]
    env = {**os.environ, "PODIUM_API_URL": control_plane.api_url}
    env["PODIUM_API_KEY"] = recorded.owner.api_key
    dates = ["--from", "2026-03-01", "--to", "2026-03-03"]
    out = subprocess.run(
        [*command, *dates, "--plot", str(plot)],
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert out.returncode == 0, out.stderr
    assert "2 sessions, mean length 3m 15s, mean completion 75%, 1 ended early" in out.stdout
    assert SALESFORCE_A in out.stdout and WEATHER in out.stdout
    assert plot.stat().st_size > 10_000
    as_json = subprocess.run(
        [*command, *dates, "--json"], env=env, capture_output=True, text=True, timeout=90
    )
    assert json.loads(as_json.stdout)["sessions_count"] == 2
    bad = subprocess.run(
        [*command, "--from", "2026-03-03", "--to", "2026-03-01"],
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert bad.returncode == 1 and "from" in bad.stderr
