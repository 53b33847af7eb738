"""Public or short secrets are refused in every environment but an explicit PODIUM_ENVIRONMENT=dev,
which accepts them and names them for the start-up warning."""

from __future__ import annotations

import secrets

import pytest
from pydantic import ValidationError

from shared.settings import (
    DEV_INTERNAL_SECRET,
    DEV_LIVEKIT_SECRET,
    DEV_OPS_TOKEN,
    ControlPlaneSettings,
    WorkerSettings,
)

SECRETS = ("PODIUM_LIVEKIT_API_SECRET", "PODIUM_INTERNAL_SECRET", "PODIUM_OPS_TOKEN")
WORKER_SECRETS = SECRETS[:2]


@pytest.fixture
def real_secrets(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """Real secrets and no PODIUM_ENVIRONMENT (the test suite sets dev)."""
    monkeypatch.delenv("PODIUM_ENVIRONMENT", raising=False)
    for name in SECRETS:
        monkeypatch.setenv(name, secrets.token_urlsafe(32))
    return monkeypatch


def _set_environment(env: pytest.MonkeyPatch, environment: str | None) -> None:
    if environment is not None:
        env.setenv("PODIUM_ENVIRONMENT", environment)


@pytest.mark.parametrize("environment", [None, "test", "prod"])
@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PODIUM_LIVEKIT_API_SECRET", DEV_LIVEKIT_SECRET),
        ("PODIUM_LIVEKIT_API_SECRET", "secret"),  # livekit-server --dev's
        ("PODIUM_INTERNAL_SECRET", DEV_INTERNAL_SECRET),
        ("PODIUM_OPS_TOKEN", DEV_OPS_TOKEN),
        ("PODIUM_INTERNAL_SECRET", "CHANGE-ME-at-least-32-characters-long"),  # the k8s example
    ],
)
def test_each_public_secret_is_refused_outside_dev(
    real_secrets: pytest.MonkeyPatch, environment: str | None, name: str, value: str
) -> None:
    _set_environment(real_secrets, environment)
    real_secrets.setenv(name, value)
    refused = [ControlPlaneSettings] + ([WorkerSettings] if name in WORKER_SECRETS else [])
    for settings in refused:
        with pytest.raises(ValidationError) as caught:
            settings()
        message = str(caught.value)
        assert f"{name} is a published placeholder" in message
        assert [s for s in SECRETS if s in message] == [name]  # the others are real
        told = f"PODIUM_ENVIRONMENT={environment}" if environment else "unset (which means prod)"
        assert told in message and "or PODIUM_ENVIRONMENT=dev" in message
    if name not in WORKER_SECRETS:
        assert WorkerSettings().environment == (environment or "prod")


@pytest.mark.parametrize("environment", [None, "test", "prod"])
@pytest.mark.parametrize("name", SECRETS)
def test_short_secrets_are_refused_outside_dev(
    real_secrets: pytest.MonkeyPatch, environment: str | None, name: str
) -> None:
    _set_environment(real_secrets, environment)
    real_secrets.setenv(name, "s" * 31)
    with pytest.raises(ValidationError, match=f"{name} is shorter than 32 characters") as caught:
        ControlPlaneSettings()
    assert "s" * 31 not in str(caught.value)  # refused without being shown
    real_secrets.setenv(name, "s" * 32)
    assert ControlPlaneSettings().weak_secrets() == []


def test_unset_means_prod(real_secrets: pytest.MonkeyPatch) -> None:
    assert ControlPlaneSettings().environment == "prod"
    assert WorkerSettings().environment == "prod"
    real_secrets.setenv("PODIUM_DEMO_PAGE", "true")
    with pytest.raises(ValidationError, match="PODIUM_DEMO_PAGE is for development"):
        ControlPlaneSettings()


def test_explicit_dev_accepts_the_placeholders_and_names_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PODIUM_ENVIRONMENT", "dev")
    assert ControlPlaneSettings().weak_secrets() == [
        f"{name} is a published placeholder" for name in SECRETS
    ]
    assert WorkerSettings().weak_secrets() == [
        f"{name} is a published placeholder" for name in WORKER_SECRETS
    ]
    monkeypatch.setenv("PODIUM_INTERNAL_SECRET", "short")
    assert "PODIUM_INTERNAL_SECRET is shorter than 32 characters" in (
        WorkerSettings().weak_secrets()
    )
    for name in SECRETS:
        monkeypatch.setenv(name, secrets.token_urlsafe(32))
    assert ControlPlaneSettings().weak_secrets() == []
