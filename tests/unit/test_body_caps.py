"""The table of request body caps: which route gets which, and the sentence of its 413."""

from __future__ import annotations

from control_plane.body_limit import MiB, body_caps
from shared.settings import ControlPlaneSettings


def test_the_upload_keeps_the_upload_cap_and_its_wording() -> None:
    caps = body_caps(ControlPlaneSettings(max_upload_mb=50))
    for path in ("/v1/decks", "/v1/decks/"):
        upload = caps.for_request("POST", path)
        assert upload.max_bytes == 51 * MiB  # the multipart envelope around a 50 MB file
        assert upload.message == "The file is over the 50 MB limit."
    assert caps.for_request("GET", "/v1/decks") == caps.default


def test_every_other_route_gets_the_json_cap() -> None:
    caps = body_caps(ControlPlaneSettings(max_json_body_kb=8))
    assert caps.default.max_bytes == 8 * 1024
    assert caps.default.message == "The request body is over the 8 KB limit for this route."
    for method, path in (
        ("POST", "/v1/sessions"),
        ("POST", "/v1/decks/0b7f/search"),  # not a route that takes more, despite the prefix
        ("POST", "/internal/v1/sessions/0b7f/escalations"),
        ("PUT", "/v1/tenant/avatar"),
    ):
        assert caps.for_request(method, path) == caps.default, path


def test_a_recording_segment_is_capped_at_a_few_megabytes_whatever_the_session_length() -> None:
    # Twice the longest segment (120 s) at 96 kb/s is 2.7 MB; one more for the container.
    for settings in (
        ControlPlaneSettings(session_max_duration_seconds=3600),
        ControlPlaneSettings(),
    ):
        cap = body_caps(settings).for_request(
            "PUT", "/internal/v1/sessions/0b7f/recording/segments/12"
        )
        assert cap.max_bytes == 4 * MiB
        assert cap.message == "A recording segment is over the 4 MB limit."
