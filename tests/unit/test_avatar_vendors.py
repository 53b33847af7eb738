"""Start-up checks of the vendor avatar settings: what an operator reads when a vendor cannot
start. ``bey`` is the plugin the dev install carries; ``tavus`` is one it does not."""

from __future__ import annotations

import importlib.util

import pytest
from pydantic import SecretStr

from agent_worker.avatar.vendors import (
    VENDORS,
    AvatarConfigError,
    VendorAvatarSettings,
    check_vendor,
)


def test_an_uninstalled_plugin_is_named_with_its_pip_requirement() -> None:
    assert importlib.util.find_spec("livekit.plugins.tavus") is None, "tavus must stay uninstalled"
    keyed = VendorAvatarSettings(tavus_api_key=SecretStr("k"))
    with pytest.raises(AvatarConfigError) as err:
        check_vendor("tavus", keyed)
    assert "pip install 'podium[avatars]'" in str(err.value)
    assert "livekit-plugins-tavus==1.8.9" in str(err.value)
    assert "PODIUM_" not in str(err.value)  # the key is there: only the plugin is missing


def test_missing_keys_are_named_as_the_env_vars_to_set(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(AvatarConfigError) as err:
        check_vendor("bey", VendorAvatarSettings())
    assert "PODIUM_BEY_API_KEY" in str(err.value)
    assert "pip install" not in str(err.value)  # the plugin is installed

    # an uninstalled vendor with two required values names both, and the plugin
    with pytest.raises(AvatarConfigError) as err:
        check_vendor("anam", VendorAvatarSettings())
    assert "PODIUM_ANAM_API_KEY, PODIUM_ANAM_AVATAR_ID" in str(err.value)

    # without explicit settings, check_vendor reads the environment
    monkeypatch.setenv("PODIUM_BEY_API_KEY", "from-env")
    check_vendor("bey")


def test_a_keyed_installed_vendor_passes() -> None:
    check_vendor("bey", VendorAvatarSettings(bey_api_key=SecretStr("k")))


def test_an_unknown_vendor_lists_the_allowed_names() -> None:
    with pytest.raises(AvatarConfigError) as err:
        check_vendor("heygen", VendorAvatarSettings())
    assert "'heygen'" in str(err.value)
    for name in VENDORS:
        assert name in str(err.value)


def test_keys_stay_out_of_repr_and_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PODIUM_SIMLI_API_KEY", "sk-simli-secret")
    settings = VendorAvatarSettings()
    assert "sk-simli-secret" not in repr(settings)
    with pytest.raises(AvatarConfigError) as err:
        check_vendor("simli", settings)
    assert "sk-simli-secret" not in str(err.value)
    assert "PODIUM_SIMLI_FACE_ID" in str(err.value)
    assert "PODIUM_SIMLI_API_KEY" not in str(err.value)
