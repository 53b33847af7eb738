"""Usage metering: taking the worker's reports and LiveKit's joins and leaves, and reading it."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from uuid import UUID

import asyncpg

from control_plane import pagination
from control_plane.errors import NotFound, PodiumError
from control_plane.metrics import TENANT_USAGE
from control_plane.sessions import repository as sessions
from control_plane.usage import repository
from control_plane.usage.schemas import (
    GroupBy,
    LlmTokens,
    StorageBytes,
    UsageDay,
    UsageFigures,
    UsagePage,
    UsageSession,
)
from shared.settings import ControlPlaneSettings
from shared.usage import UsageReport

logger = logging.getLogger(__name__)

MAX_RANGE_DAYS = 366
MAX_PAGE = 200
SESSION_SPAN = ""  # the key of a session's own span


class InvalidRange(PodiumError):
    status_code = 422
    code = "invalid_range"


def _count(settings: ControlPlaneSettings, tenant_id: UUID, meter: str, amount: float) -> None:
    """The Prometheus counter by tenant: only where Prometheus alone reads it (the dedicated
    metrics port), never on the API port, where one tenant would read another's id."""
    if settings.metrics_port is not None and amount > 0:
        TENANT_USAGE.labels(str(tenant_id), meter).inc(amount)


# -- taking -------------------------------------------------------------------------------


async def take_report(
    pool: asyncpg.Pool, settings: ControlPlaneSettings, session_id: UUID, report: UsageReport
) -> None:
    row = await sessions.get_by_id(pool, session_id)
    if row is None:
        raise NotFound(f"Session {session_id} was not found.")
    tenant_id: UUID = row["tenant_id"]
    async with pool.acquire() as conn, conn.transaction():
        grown = await repository.take_job_totals(
            conn,
            tenant_id,
            session_id,
            report.job_id,
            [(t.meter, t.dimension, t.quantity) for t in report.totals],
        )
    for meter, _dimension, delta in grown:
        _count(settings, tenant_id, meter, delta)


# A vendor's avatar joins as its own participant publishing for the agent: the presenter's time.
_ON_BEHALF = "lk.publish_on_behalf"


def role_of(kind: str, attributes: dict[str, str], role_attribute: str) -> str:
    """A participant's role for metering: the one its token gave it, 'agent' for agents (and a
    vendor's avatar, which publishes on the agent's behalf)."""
    if kind == "agent" or _ON_BEHALF in attributes:
        return "agent"
    role = attributes.get(role_attribute, "")
    return role if role in ("participant", "viewer") else "participant"


async def participant_joined(
    pool: asyncpg.Pool,
    settings: ControlPlaneSettings,
    session_id: UUID,
    sid: str,
    role: str,
    at: datetime,
) -> None:
    """A participant connected: its time counts from ``at``; the session's from its first."""
    row = await sessions.get_by_id(pool, session_id)
    if row is None or not sid:
        return
    if row["status"] == "ended" and row["ended_at"] is not None and row["ended_at"] <= at:
        return  # a late webhook for a session already over
    tenant_id = row["tenant_id"]
    async with pool.acquire() as conn, conn.transaction():
        await repository.open_span(
            conn, tenant_id, session_id, SESSION_SPAN, "session_seconds", "", at
        )
        await repository.open_span(
            conn, tenant_id, session_id, sid, "participant_seconds", role, at
        )


async def participant_left(
    pool: asyncpg.Pool, settings: ControlPlaneSettings, session_id: UUID, sid: str, at: datetime
) -> None:
    seconds = await repository.close_span(pool, session_id, sid, at)
    if seconds is not None:
        row = await sessions.get_by_id(pool, session_id)
        if row is not None:
            _count(settings, row["tenant_id"], "participant_seconds", seconds)


async def room_finished(
    pool: asyncpg.Pool, settings: ControlPlaneSettings, session_id: UUID, at: datetime
) -> None:
    """The room closed: the session's time and everyone's still open end now."""
    closed = await repository.close_session_spans(pool, session_id, at)
    row = await sessions.get_by_id(pool, session_id) if closed else None
    if row is not None:
        for meter, seconds in closed:
            _count(settings, row["tenant_id"], meter, seconds)


# -- reading ------------------------------------------------------------------------------


def day_bounds(first: date, last: date) -> tuple[datetime, datetime]:
    """[first 00:00 UTC, the day after last 00:00 UTC); 422 names what is wrong."""
    if last < first:
        raise InvalidRange(f"'to' ({last}) is before 'from' ({first}).")
    days = (last - first).days + 1
    if days > MAX_RANGE_DAYS:
        raise InvalidRange(
            f"The range covers {days} days; at most {MAX_RANGE_DAYS} days may be asked at once."
        )
    lo = datetime.combine(first, time(), UTC)
    return lo, lo + timedelta(days=days)


def figures(rows: Iterable[tuple[str, str, float]]) -> UsageFigures:
    """Rows of (meter, dimension, quantity) as the public figures."""
    sums: dict[tuple[str, str], float] = defaultdict(float)
    for meter, dimension, quantity in rows:
        sums[(meter, dimension)] += quantity
    by: dict[str, dict[str, float]] = defaultdict(dict)
    for (meter, dimension), quantity in sorted(sums.items()):
        by[meter][dimension] = quantity
    models = sorted(set(by["llm_input_tokens"]) | set(by["llm_output_tokens"]))
    added = {"decks": by["deck_bytes_added"], "recordings": by["recording_bytes_added"]}
    return UsageFigures(
        session_minutes=round(sum(by["session_seconds"].values()) / 60, 3),
        participant_minutes={k: round(v / 60, 3) for k, v in by["participant_seconds"].items()},
        stt_audio_seconds={k: round(v, 3) for k, v in by["stt_audio_seconds"].items()},
        tts_characters={k: round(v) for k, v in by["tts_characters"].items()},
        llm_tokens={
            m: LlmTokens(
                input=round(by["llm_input_tokens"].get(m, 0)),
                output=round(by["llm_output_tokens"].get(m, 0)),
            )
            for m in models
        },
        avatar_minutes={k: round(v / 60, 3) for k, v in by["avatar_seconds"].items()},
        storage_added_bytes={kind: round(sum(v.values())) for kind, v in added.items() if v},
    )


async def usage(
    pool: asyncpg.Pool,
    tenant_id: UUID,
    first: date,
    last: date,
    group_by: GroupBy,
    *,
    cursor: str | None = None,
    limit: int = 100,
) -> UsagePage:
    lo, hi = day_bounds(first, last)
    after = pagination.decode(cursor, UUID)[0] if cursor else None
    async with pool.acquire() as conn:
        day_rows = await repository.by_day(conn, tenant_id, lo, hi)
        stored = await repository.storage_bytes(conn, tenant_id)
        session_rows = (
            await repository.by_session(conn, tenant_id, lo, hi, after=after, limit=limit + 1)
            if group_by == "session"
            else []
        )
    total = figures((r["meter"], r["dimension"], r["quantity"]) for r in day_rows)
    page: dict[str, Any] = {}
    if group_by == "day":
        per_day: dict[date, list[tuple[str, str, float]]] = defaultdict(list)
        for r in day_rows:
            per_day[r["day"]].append((r["meter"], r["dimension"], r["quantity"]))
        page["days"] = [UsageDay(day=d, usage=figures(per_day[d])) for d in sorted(per_day)]
    else:
        per_session: dict[UUID, list[tuple[str, str, float]]] = defaultdict(list)
        for r in session_rows:
            per_session[r["session_id"]].append((r["meter"], r["dimension"], r["quantity"]))
        ids = sorted(per_session)
        more = len(ids) > limit
        ids = ids[:limit]
        page["sessions"] = [UsageSession(session_id=s, usage=figures(per_session[s])) for s in ids]
        page["next_cursor"] = pagination.encode(ids[-1]) if more else None
    return UsagePage(
        tenant_id=tenant_id,
        from_=first,
        to=last,
        group_by=group_by,
        total=total,
        storage=StorageBytes(
            decks=stored["decks"], recordings=stored["recordings"], as_of=datetime.now(UTC)
        ),
        **page,
    )
