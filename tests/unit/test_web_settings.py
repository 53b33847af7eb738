"""The demo page is a development tool: production refuses to start with it on."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from shared.settings import DEFAULT_WEB_DIST, ControlPlaneSettings


def test_prod_refuses_the_demo_page(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PODIUM_ENVIRONMENT", "prod")
    monkeypatch.setenv("PODIUM_INTERNAL_SECRET", "s" * 48)
    monkeypatch.setenv("PODIUM_LIVEKIT_API_SECRET", "l" * 48)
    monkeypatch.setenv("PODIUM_OPS_TOKEN", "o" * 48)
    assert ControlPlaneSettings().demo_page is False
    monkeypatch.setenv("PODIUM_DEMO_PAGE", "true")
    with pytest.raises(ValidationError, match="PODIUM_DEMO_PAGE is for development"):
        ControlPlaneSettings()


def test_the_bundle_is_looked_for_in_the_checkout_unless_told() -> None:
    assert DEFAULT_WEB_DIST.parts[-2:] == ("web", "dist")
    assert ControlPlaneSettings(web_dist="/srv/podium-web").web_dist.as_posix() == "/srv/podium-web"
