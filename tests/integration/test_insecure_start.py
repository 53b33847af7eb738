"""The services refuse to start with public secrets unless PODIUM_ENVIRONMENT=dev says so, and
warn when it does: the control plane and the worker as processes, reading their exit and output."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys

import pytest

from shared.devstack.services import ManagedProcess, free_port
from shared.devstack.stack import ROOT, EphemeralStack, http_ok

WARNING = "PODIUM_ENVIRONMENT=dev: running with public development secrets"
SECRETS = ("PODIUM_LIVEKIT_API_SECRET", "PODIUM_INTERNAL_SECRET", "PODIUM_OPS_TOKEN")


def _env(environment: str | None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PODIUM_")}
    if environment is not None:
        env["PODIUM_ENVIRONMENT"] = environment
    # Nothing listens there: a service that got past its settings would fail later, not exit 2.
    env["PODIUM_DATABASE_URL"] = f"postgresql://podium@127.0.0.1:{free_port()}/podium"
    return {**env, **extra}


def _run(module: str, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("environment", [None, "test", "prod"])
def test_the_control_plane_refuses_the_placeholders_outside_dev(environment: str | None) -> None:
    port = free_port()
    done = _run("control_plane", "serve", env=_env(environment, PODIUM_PORT=str(port)))
    assert done.returncode == 2, done.stderr
    told = f"PODIUM_ENVIRONMENT={environment}" if environment else "PODIUM_ENVIRONMENT unset"
    assert done.stderr.startswith(f"error: invalid settings: {told}"), done.stderr
    assert all(f"{name} is a published placeholder" in done.stderr for name in SECRETS)
    assert "or PODIUM_ENVIRONMENT=dev" in done.stderr and "Traceback" not in done.stderr
    assert not http_ok(f"http://127.0.0.1:{port}/healthz")


def test_the_worker_refuses_the_placeholders_outside_dev() -> None:
    done = _run("agent_worker", env=_env("test"))
    assert done.returncode == 2, done.stdout + done.stderr
    (record,) = [
        json.loads(line) for line in done.stdout.splitlines() if "invalid settings" in line
    ]
    (problem,) = record["problems"]
    assert "PODIUM_ENVIRONMENT=test refuses public or short secrets" in problem
    assert "PODIUM_INTERNAL_SECRET is a published placeholder" in problem


def test_an_explicit_dev_starts_with_a_warning(control_plane: EphemeralStack) -> None:
    # The test stack is one: its control plane runs with the placeholders and said so.
    log = (control_plane.logs / "control-plane.log").read_text(errors="replace")
    assert WARNING in log

    # The worker warns before anything else; an unknown voice then stops it without a model load.
    done = _run("agent_worker", env=_env("dev", PODIUM_TTS_VOICE="none"))
    assert done.returncode == 1, done.stdout + done.stderr
    (record,) = [json.loads(line) for line in done.stdout.splitlines() if WARNING in line]
    assert record["level"] == "WARNING"
    assert record["secrets"] == [
        "PODIUM_LIVEKIT_API_SECRET is a published placeholder",
        "PODIUM_INTERNAL_SECRET is a published placeholder",
    ]


def test_a_test_environment_with_real_secrets_starts_without_the_warning(
    control_plane: EphemeralStack,
) -> None:
    port = free_port()
    env = {
        **control_plane.api_env,
        "PODIUM_ENVIRONMENT": "test",
        "PODIUM_PORT": str(port),
        "PODIUM_PUBLIC_URL": f"http://127.0.0.1:{port}",
        **{name: secrets.token_urlsafe(32) for name in SECRETS},
    }
    log = control_plane.logs / "control-plane-real-secrets.log"
    proc = ManagedProcess(
        "control-plane-real-secrets",
        [sys.executable, "-m", "control_plane", "serve"],
        log,
        env=env,
        cwd=ROOT,
    )
    proc.start()
    try:
        proc.wait_until(lambda: http_ok(f"http://127.0.0.1:{port}/readyz"), 60)
    finally:
        proc.stop()
    assert "control plane ready" in log.read_text() and WARNING not in log.read_text()
