"""The pure parts of the tenant limits: refusal messages, the CLI's changes, the defaults, and
the rate limiter's fallback to memory when its Redis does not answer."""

from __future__ import annotations

import asyncio
import logging

import pytest

from control_plane.limits.limiter import RateLimiter
from control_plane.limits.models import TenantLimits, describe, parse_changes, refusal
from control_plane.limits.service import defaults
from control_plane.metrics import LIMITS_DEGRADED, LIMITS_LOCAL_CHECKS
from shared.devstack.services import free_port
from shared.settings import ControlPlaneSettings


def test_a_refusal_names_the_limit_and_its_value_and_rounds_the_wait_up() -> None:
    rate = refusal("sessions_per_minute", 60, 2.1)
    assert (rate.status_code, rate.code, rate.headers) == (
        429,
        "rate_limited",
        {"Retry-After": "3"},
    )
    assert rate.message == (
        "Tenant limit reached: 60 session creations per minute (sessions_per_minute). "
        "Retry after 3 s."
    )
    count = refusal("webhook_endpoints", 1, 0.0, "Delete an endpoint to add another. ")
    assert (count.code, count.headers) == ("limit_exceeded", {"Retry-After": "1"})
    assert count.message == (
        "Tenant limit reached: 1 webhook endpoint (webhook_endpoints). "
        "Delete an endpoint to add another. Retry after 1 s."
    )
    assert describe("slide_changes_per_second", 10) == "10 slide changes per second per session"


def test_cli_changes_are_parsed_and_bad_ones_list_what_is_allowed() -> None:
    changes = parse_changes(
        ["sessions_per_minute=120", "uploads_per_hour = 10"], ["webhook_endpoints"]
    )
    assert changes == {
        "sessions_per_minute": 120,
        "uploads_per_hour": 10,
        "webhook_endpoints": None,
    }
    for assignments, resets, says in [
        (["sessions_per_hour=5"], [], "unknown limit 'sessions_per_hour'; limits: concurrent_"),
        (["uploads_per_hour=0"], [], "from 1 to 10000, not '0'"),
        (["uploads_per_hour=-3"], [], "not '-3'"),
        (["uploads_per_hour=10001"], [], "not '10001'"),
        (["uploads_per_hour"], [], "not ''"),
        (["uploads_per_hour=2"], ["uploads_per_hour"], "changed twice"),
        ([], ["everything"], "unknown limit 'everything'"),
    ]:
        with pytest.raises(ValueError, match=says):
            parse_changes(assignments, resets)


def test_defaults_come_from_settings() -> None:
    settings = ControlPlaneSettings(limit_searches_per_second=7, limit_webhook_endpoints=2)
    assert defaults(settings) == TenantLimits(
        concurrent_sessions=20,
        sessions_per_minute=60,
        uploads_in_flight=5,
        uploads_per_hour=60,
        searches_per_second=7,
        slide_changes_per_second=10,
        webhook_endpoints=2,
    )
    with pytest.raises(ValueError, match="greater than or equal to 1"):
        ControlPlaneSettings(limit_sessions_per_minute=0)


async def test_without_redis_the_limiter_counts_in_memory_with_the_same_limits(
    caplog: pytest.LogCaptureFixture,
) -> None:
    local_before = LIMITS_LOCAL_CHECKS._value.get()
    caplog.set_level(logging.WARNING, logger="control_plane.limits.limiter")
    async with RateLimiter(f"redis://127.0.0.1:{free_port()}/0", probe_s=0.2) as limiter:
        assert await limiter.hit("searches_per_second", 2, "tenant:a") is None
        assert limiter.degraded and LIMITS_DEGRADED._value.get() == 1
        assert await limiter.hit("searches_per_second", 2, "tenant:a") is None
        wait = await limiter.hit("searches_per_second", 2, "tenant:a")
        assert wait is not None and 0 < wait <= 1
        assert await limiter.hit("searches_per_second", 2, "tenant:b") is None  # its own window
        await asyncio.sleep(0.3)  # a probe is due: Redis is tried again, and still fails
        assert await limiter.hit("searches_per_second", 2, "tenant:a") is not None
    assert LIMITS_LOCAL_CHECKS._value.get() - local_before == 5
    warned = [r for r in caplog.records if r.message.startswith("redis unreachable")]
    assert len(warned) == 1  # once per outage, not once per request


async def test_a_batch_above_the_limit_waits_for_a_whole_window() -> None:
    async with RateLimiter(f"redis://127.0.0.1:{free_port()}/0") as limiter:
        assert await limiter.hit("searches_per_second", 3, "t", cost=50) is None
        wait = await limiter.hit("searches_per_second", 3, "t", cost=1)
        assert wait is not None and 0.5 < wait <= 1
        await asyncio.sleep(wait + 0.05)
        assert await limiter.hit("searches_per_second", 3, "t", cost=50) is None
        with pytest.raises(ValueError, match="not a rate"):
            await limiter.hit("webhook_endpoints", 3, "t")
