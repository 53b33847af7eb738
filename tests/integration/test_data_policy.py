"""A tenant's data policy (redaction and retention): through /v1/tenant/data-policy and
`podium admin data-policy`, against real Postgres."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import httpx
import pytest

from shared.devstack.stack import ROOT, EphemeralStack, TenantKey

# The settings' defaults (shared.settings: redaction_default, retention_*_days).
DEFAULT = {
    "redaction": "off",
    "retention_days": {
        "transcripts": 365,
        "turns": 90,
        "recordings": 90,
        "events": 365,
        "decks": None,
    },
    "defaults": ["redaction", "transcripts", "turns", "recordings", "events", "decks"],
}


async def _policy(api: httpx.AsyncClient, tenant: TenantKey) -> dict[str, Any]:
    resp = await api.get("/v1/tenant/data-policy", headers=tenant.headers)
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


async def test_an_unset_policy_reads_as_the_defaults(
    api: httpx.AsyncClient, tenant: TenantKey
) -> None:
    assert await _policy(api, tenant) == DEFAULT


async def test_a_chosen_policy_round_trips_and_omitted_parts_follow_the_defaults(
    api: httpx.AsyncClient, tenant: TenantKey
) -> None:
    chosen = {"redaction": "mask", "retention_days": {"transcripts": 0, "decks": 30}}
    resp = await api.put("/v1/tenant/data-policy", headers=tenant.headers, json=chosen)
    assert resp.status_code == 200, resp.text
    expected = {
        "redaction": "mask",
        "retention_days": {**DEFAULT["retention_days"], "transcripts": 0, "decks": 30},  # type: ignore[dict-item]
        "defaults": ["turns", "recordings", "events"],
    }
    assert resp.json() == expected
    assert await _policy(api, tenant) == expected

    resp = await api.put("/v1/tenant/data-policy", headers=tenant.headers, json={})
    assert resp.status_code == 200 and resp.json() == DEFAULT


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"redaction": "blur"}, "redaction"),
        ({"retention_days": {"turns": -1}}, "turns"),
        ({"retention_days": {"turns": 36_501}}, "turns"),
        ({"retention_days": {"audio": 3}}, "audio"),
        ({"keep": True}, "keep"),
    ],
)
async def test_a_bad_policy_is_refused_naming_the_field_and_the_stored_one_stays(
    api: httpx.AsyncClient, tenant: TenantKey, body: dict[str, Any], field: str
) -> None:
    good = {"redaction": "drop", "retention_days": {"recordings": 7}}
    assert (
        await api.put("/v1/tenant/data-policy", headers=tenant.headers, json=good)
    ).status_code == 200
    resp = await api.put("/v1/tenant/data-policy", headers=tenant.headers, json=body)
    assert resp.status_code == 422, resp.text
    assert field in resp.text
    kept = await _policy(api, tenant)
    assert kept["redaction"] == "drop" and kept["retention_days"]["recordings"] == 7


def _cli(stack: EphemeralStack, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "control_plane", "admin", "data-policy", *args],
        env=stack.api_env,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )


async def test_the_cli_changes_parts_of_a_policy_and_keeps_the_rest(
    control_plane: EphemeralStack, api: httpx.AsyncClient
) -> None:
    tenant = control_plane.create_tenant("cli-policy")
    out = _cli(control_plane, tenant.tenant_id, "--redaction", "mask", "--json")
    assert out.returncode == 0, out.stderr
    out = _cli(control_plane, tenant.tenant_id, "--retention", "turns=0", "--json")
    assert out.returncode == 0, out.stderr
    shown = json.loads(out.stdout)
    assert shown["redaction"] == "mask" and shown["retention_days"]["turns"] == 0
    assert await _policy(api, tenant) == shown

    table = _cli(control_plane, tenant.tenant_id)
    assert table.returncode == 0 and "turns retention" in table.stdout
    assert "0 d" in table.stdout and "(default)" in table.stdout

    for bad in (["--redaction", "blur"], ["--retention", "audio=3"], ["--retention", "turns=x"]):
        refused = _cli(control_plane, tenant.tenant_id, *bad)
        assert refused.returncode == 2 and "error:" in refused.stderr, refused
    missing = _cli(control_plane, "00000000-0000-0000-0000-000000000000")
    assert missing.returncode == 2 and "no tenant" in missing.stderr
