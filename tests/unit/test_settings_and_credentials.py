"""Settings refuse unsafe production starts; worker credentials are scoped and expire."""

from __future__ import annotations

import time
import uuid

import pytest
from pydantic import ValidationError

from shared.credentials import (
    CredentialError,
    mint_session_credential,
    verify_session_credential,
)
from shared.settings import ControlPlaneSettings, WorkerSettings

SECRET = "x" * 40


def test_prod_refuses_placeholder_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PODIUM_ENVIRONMENT", "prod")
    with pytest.raises(ValidationError, match="PODIUM_INTERNAL_SECRET"):
        ControlPlaneSettings()
    monkeypatch.setenv("PODIUM_INTERNAL_SECRET", "s" * 48)
    monkeypatch.setenv("PODIUM_LIVEKIT_API_SECRET", "l" * 48)
    assert WorkerSettings().environment == "prod"


def test_secrets_stay_out_of_repr() -> None:
    settings = ControlPlaneSettings()
    assert settings.internal_secret.get_secret_value() not in repr(settings)
    assert settings.livekit_api_secret.get_secret_value() not in repr(settings)


def test_credential_round_trip_names_its_session() -> None:
    sid = uuid.uuid4()
    claims = verify_session_credential(SECRET, mint_session_credential(SECRET, sid, 3, 60))
    assert (claims.session_id, claims.dispatch) == (sid, 3)


def test_credential_signed_with_another_secret_is_rejected() -> None:
    token = mint_session_credential("y" * 40, uuid.uuid4(), 1, 60)
    with pytest.raises(CredentialError):
        verify_session_credential(SECRET, token)


def test_expired_credential_is_rejected() -> None:
    token = mint_session_credential(SECRET, uuid.uuid4(), 1, ttl_seconds=-5)
    with pytest.raises(CredentialError):
        verify_session_credential(SECRET, token)


@pytest.mark.parametrize("garbage", ["", "not-a-jwt", "a.b.c"])
def test_garbage_credential_is_rejected(garbage: str) -> None:
    with pytest.raises(CredentialError):
        verify_session_credential(SECRET, garbage)


def test_key_cache_serves_hits_until_they_expire() -> None:
    from control_plane.keys.service import Caller, KeyCache

    caller = Caller(uuid.uuid4(), uuid.uuid4(), frozenset({"decks"}))
    cache = KeyCache(ttl_s=0.05)
    cache.put(b"digest", caller)
    assert cache.get(b"digest") == caller
    assert cache.get(b"other") is None
    time.sleep(0.06)
    assert cache.get(b"digest") is None


def test_key_cache_keeps_a_key_no_longer_than_its_scheduled_revocation() -> None:
    from control_plane.keys.service import Caller, KeyCache

    rotated, kept = (Caller(uuid.uuid4(), uuid.uuid4(), frozenset({"admin"})) for _ in range(2))
    cache = KeyCache(ttl_s=60)
    cache.put(b"rotated", rotated, expires_in_s=0.05)
    cache.put(b"kept", kept)
    time.sleep(0.06)
    assert cache.get(b"rotated") is None
    assert cache.get(b"kept") == kept
    cache.forget(kept.key_id)
    assert cache.get(b"kept") is None
