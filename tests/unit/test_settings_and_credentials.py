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


def test_a_key_ring_signs_with_its_first_key_and_verifies_with_each() -> None:
    from shared.keyring import KeyRing

    sid = uuid.uuid4()
    old = mint_session_credential(KeyRing(["o" * 40]), sid, 1, 60)
    rotating = KeyRing.parse(f"{'n' * 40}, {'o' * 40}")
    assert verify_session_credential(rotating, old).session_id == sid
    fresh = mint_session_credential(rotating, sid, 1, 60)
    assert verify_session_credential(KeyRing(["n" * 40]), fresh).session_id == sid
    with pytest.raises(CredentialError):
        verify_session_credential(KeyRing(["n" * 40]), old)  # the old key left the ring


def test_a_session_credential_needs_its_dispatch_and_scope() -> None:
    from shared.credentials import sign

    claims = {"sub": str(uuid.uuid4()), "aud": "podium-internal", "iss": "podium-control-plane"}
    for extra in ({"scope": "session"}, {"scope": "fleet", "dispatch": 1}):
        token = sign(SECRET, {**claims, "exp": int(time.time()) + 60, **extra})
        with pytest.raises(CredentialError):
            verify_session_credential(SECRET, token)


def test_asset_urls_verify_while_their_key_is_in_the_ring() -> None:
    from urllib.parse import parse_qs, urlsplit

    from control_plane.storage import UrlSigner
    from shared.keyring import KeyRing

    url = urlsplit(UrlSigner(KeyRing(["o" * 40]), "http://x").url("decks/a/slide-001.jpg"))
    query = {k: v[0] for k, v in parse_qs(url.query).items()}
    expires, sig = int(query["exp"]), query["sig"]
    rotating = UrlSigner(KeyRing.parse(f"{'n' * 40},{'o' * 40}"), "http://x")
    assert rotating.verify("decks/a/slide-001.jpg", expires, sig)
    assert not UrlSigner(KeyRing(["n" * 40]), "http://x").verify(
        "decks/a/slide-001.jpg", expires, sig
    )


def test_each_purpose_has_its_own_key_and_the_internal_secret_stands_in(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PODIUM_INTERNAL_SECRET", "i" * 40)
    monkeypatch.setenv("PODIUM_FLEET_KEYS", f"{'f' * 40},{'g' * 40}")
    settings = ControlPlaneSettings()
    assert settings.fleet_key_ring().keys == ("f" * 40, "g" * 40)
    assert settings.session_credential_key_ring().keys == ("i" * 40,)
    assert settings.asset_url_key_ring().keys == ("i" * 40,)


def test_prod_workers_need_only_the_fleet_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PODIUM_ENVIRONMENT", "prod")
    monkeypatch.setenv("PODIUM_LIVEKIT_API_SECRET", "l" * 48)
    monkeypatch.setenv("PODIUM_FLEET_KEYS", "f" * 48)
    assert WorkerSettings().fleet_key_ring().keys == ("f" * 48,)  # no PODIUM_INTERNAL_SECRET
    monkeypatch.setenv("PODIUM_FLEET_KEYS", f"{'f' * 48},short")
    with pytest.raises(ValidationError, match=r"PODIUM_FLEET_KEYS \(key 2\) is shorter"):
        WorkerSettings()
    monkeypatch.setenv("PODIUM_FLEET_KEYS", f"{'f' * 48},,")
    with pytest.raises(ValidationError, match="empty"):
        WorkerSettings()
