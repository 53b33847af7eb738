"""The per-tenant limits, what each one bounds, and how a refusal names it."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

from control_plane.errors import TooManyRequests

LimitName = Literal[
    "concurrent_sessions",
    "sessions_per_minute",
    "uploads_in_flight",
    "uploads_per_hour",
    "searches_per_second",
    "slide_changes_per_second",
    "webhook_endpoints",
]
LIMIT_NAMES: tuple[LimitName, ...] = get_args(LimitName)
# A moving window keeps one Redis list entry per request in it: bound what that can cost.
MAX_LIMIT = 10_000

_Value = Field(ge=1, le=MAX_LIMIT)


class TenantLimits(BaseModel):
    """A tenant's effective limits (its own values over the defaults)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    concurrent_sessions: int = _Value
    sessions_per_minute: int = _Value
    uploads_in_flight: int = _Value
    uploads_per_hour: int = _Value
    searches_per_second: int = _Value
    slide_changes_per_second: int = _Value
    webhook_endpoints: int = _Value


@dataclass(frozen=True)
class Kind:
    """``period_s`` for a rate (requests per window); None for a count of things held at once."""

    one: str
    many: str
    period_s: int | None
    per: str = ""


KINDS: dict[LimitName, Kind] = {
    "concurrent_sessions": Kind("concurrent live session", "concurrent live sessions", None),
    "sessions_per_minute": Kind("session creation", "session creations", 60, " per minute"),
    "uploads_in_flight": Kind("deck upload in flight", "deck uploads in flight", None),
    "uploads_per_hour": Kind("deck upload", "deck uploads", 3600, " per hour"),
    "searches_per_second": Kind("search", "searches", 1, " per second"),
    "slide_changes_per_second": Kind("slide change", "slide changes", 1, " per second per session"),
    "webhook_endpoints": Kind("webhook endpoint", "webhook endpoints", None),
}


def describe(name: LimitName, value: int) -> str:
    """``"60 session creations per minute"``."""
    kind = KINDS[name]
    return f"{value} {kind.one if value == 1 else kind.many}{kind.per}"


def refusal(name: LimitName, value: int, retry_after_s: float, hint: str = "") -> TooManyRequests:
    """The 429 for ``name``: ``rate_limited`` for a rate, ``limit_exceeded`` for a count."""
    seconds = max(1, math.ceil(retry_after_s))
    return TooManyRequests(
        f"Tenant limit reached: {describe(name, value)} ({name}). {hint}Retry after {seconds} s.",
        retry_after_s=seconds,
        code="rate_limited" if KINDS[name].period_s else "limit_exceeded",
    )


def parse_changes(assignments: list[str], resets: list[str]) -> dict[LimitName, int | None]:
    """``["sessions_per_minute=120"]`` and ``["uploads_per_hour"]`` (back to the default) as
    changes; ValueError with a sentence that lists what is allowed."""
    allowed = ", ".join(LIMIT_NAMES)
    changes: dict[LimitName, int | None] = {}
    items = [(*item.partition("=")[::2], True) for item in assignments]
    items += [(name, "", False) for name in resets]
    for raw_name, raw_value, is_set in items:
        name = next((n for n in LIMIT_NAMES if n == raw_name.strip()), None)
        if name is None:
            raise ValueError(f"unknown limit {raw_name.strip()!r}; limits: {allowed}")
        if name in changes:
            raise ValueError(f"{name} is changed twice; change each limit once")
        value = int(raw_value) if raw_value.strip().isdecimal() else 0
        if is_set and not 1 <= value <= MAX_LIMIT:
            raise ValueError(
                f"{name} must be a whole number from 1 to {MAX_LIMIT}, not {raw_value.strip()!r} "
                "(--set NAME=VALUE)"
            )
        changes[name] = value if is_set else None
    return changes
