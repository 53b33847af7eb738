"""KEDA's trigger against a real control plane: the prod overlay's ``ScaledObject`` is rendered,
and its ``metrics-api`` trigger is followed as KEDA's scaler follows it — the URL's path, the
bearer token from the Secret its ``TriggerAuthentication`` names, the ``valueLocation`` read
from the JSON answer — against a control plane started with that same Secret's token, with
worker heartbeats in Redis. The HPA KEDA makes then runs ``ceil(value / targetValue)`` pods.
"""

from __future__ import annotations

import base64
import math
import secrets
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import yaml

from shared.devstack.stack import EphemeralStack
from shared.fleet import mint_worker_credential
from shared.settings import DEV_INTERNAL_SECRET
from tests.conftest import TEST_LOGS
from tests.unit.test_k8s_manifests import K8S, render

pytestmark = pytest.mark.integration


def _gjson(document: Any, path: str) -> Any:
    """The part of KEDA's GJSON path syntax a plain dotted location uses (keys, list indices)."""
    for part in path.split("."):
        document = document[int(part)] if isinstance(document, list) else document[part]
    return document


@pytest.fixture(scope="module")
def keda(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The trigger, its bounds and the ops token, as rendered for prod with an operator's
    secrets (a fresh token)."""
    tree = tmp_path_factory.mktemp("keda-k8s") / "k8s"
    shutil.copytree(K8S, tree, ignore=shutil.ignore_patterns("secrets.env", "shared-secrets.env"))
    prod = tree / "overlays" / "prod"
    token = secrets.token_urlsafe(32)
    example = (prod / "secrets.env.example").read_text()
    (prod / "secrets.env").write_text(
        example.replace(
            "PODIUM_OPS_TOKEN=CHANGE-ME-a-long-random-token", f"PODIUM_OPS_TOKEN={token}"
        )
    )
    shutil.copy(prod / "shared-secrets.env.example", prod / "shared-secrets.env")
    objects = [o for o in yaml.safe_load_all(render(tree, "prod")) if o]
    scaled = next(o for o in objects if o["kind"] == "ScaledObject")
    (trigger,) = scaled["spec"]["triggers"]
    auth_name = trigger["authenticationRef"]["name"]
    auth = next(
        o
        for o in objects
        if o["kind"] == "TriggerAuthentication" and o["metadata"]["name"] == auth_name
    )
    (ref,) = auth["spec"]["secretTargetRef"]
    secret = next(
        o for o in objects if o["kind"] == "Secret" and o["metadata"]["name"] == ref["name"]
    )
    return {
        "trigger": trigger,
        "token_parameter": ref["parameter"],
        "token": base64.b64decode(secret["data"][ref["key"]]).decode(),
        "operator_token": token,
        "min": scaled["spec"]["minReplicaCount"],
        "max": scaled["spec"]["maxReplicaCount"],
        "config": next(o for o in objects if o["kind"] == "ConfigMap")["data"],
    }


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory, keda: dict[str, Any]
) -> Iterator[EphemeralStack]:
    logs = Path(TEST_LOGS) / "keda" if TEST_LOGS else None
    policy = {
        k: v
        for k, v in keda["config"].items()
        if k.startswith("PODIUM_FLEET_") and k != "PODIUM_FLEET_DELETION_COST"
    }
    with EphemeralStack(tmp_path_factory.mktemp("keda"), logs=logs) as running:
        # The Deployment's env: the fleet policy from the ConfigMap, the token from the Secret.
        # Admission off: these sessions have no worker (they count as waiting demand).
        running.start_control_plane(
            PODIUM_OPS_TOKEN=keda["token"], PODIUM_ADMISSION_ENABLED="false", **policy
        )
        yield running


def _scrape(stack: EphemeralStack, trigger: dict[str, Any], token: str | None) -> httpx.Response:
    """One poll of KEDA's metrics-api scaler: GET the URL (its path on this control plane),
    ``Authorization: Bearer <token>`` with authMode bearer."""
    url = urlsplit(trigger["metadata"]["url"])
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return httpx.get(f"{stack.api_url}{url.path}", headers=headers, timeout=10)


def _replicas(response: httpx.Response, trigger: dict[str, Any], bounds: tuple[int, int]) -> int:
    """What KEDA's HPA runs: the value at valueLocation over targetValue (AverageValue)."""
    assert response.status_code == 200, response.text
    value = _gjson(response.json(), trigger["metadata"]["valueLocation"])
    assert isinstance(value, int | float) and not isinstance(value, bool), value
    wanted = math.ceil(value / float(trigger["metadata"]["targetValue"]))
    return max(bounds[0], min(bounds[1], wanted))


def _heartbeat(stack: EphemeralStack, name: str, jobs: int) -> None:
    body = {
        "worker": name,
        "livekit_worker_id": "AW_keda",
        "agent_name": "podium-presenter",
        "max_sessions": 4,
        "active_jobs": jobs,
        "idle_processes": 1,
        "load": jobs / 4,
        "draining": False,
        "rooms": [f"podium-{name}-{i}" for i in range(jobs)],
    }
    credential = mint_worker_credential(DEV_INTERNAL_SECRET, name)
    response = httpx.put(
        f"{stack.api_url}/internal/v1/fleet/workers/{name}",
        json=body,
        headers={"Authorization": f"Bearer {credential}"},
        timeout=10,
    )
    assert response.status_code == 204, response.text


def test_the_trigger_is_served_by_the_control_plane_and_follows_load(
    stack: EphemeralStack, keda: dict[str, Any]
) -> None:
    trigger = keda["trigger"]
    assert keda["token"] == keda["operator_token"]  # the Secret KEDA reads is the operator's
    assert trigger["metadata"]["authMode"] == "bearer" and keda["token_parameter"] == "token"
    bounds = (keda["min"], keda["max"])

    # an idle fleet: the minimum, as the ScaledObject bounds it
    assert _replicas(_scrape(stack, trigger, keda["token"]), trigger, bounds) == keda["min"]

    # 6 workers report 22 sessions: 22 + max(4, 11) headroom = 33 slots = 9 workers of 4
    prefix = f"keda-{uuid.uuid4().hex[:6]}"
    for i, jobs in enumerate((4, 4, 4, 4, 4, 2)):
        _heartbeat(stack, f"{prefix}-{i}", jobs)
    answer = _scrape(stack, trigger, keda["token"])
    assert _replicas(answer, trigger, bounds) == 9
    assert answer.json()["desired_workers"] == 9

    # KEDA with the wrong secret gets no number to act on (the scaler reports an error)
    assert _scrape(stack, trigger, "not-the-ops-token").status_code == 401
    assert _scrape(stack, trigger, None).status_code == 401
