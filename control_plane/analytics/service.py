"""Presentation analytics, computed on read: one session's, or a deck's over a time range.

A deck's answer counts at most ``MAX_SESSIONS`` sessions (the newest created in the range)
and a range of at most ``MAX_RANGE``; each kind of record is one query for all of them."""

from __future__ import annotations

import statistics
from collections import Counter
from datetime import UTC, datetime, timedelta
from uuid import UUID

import asyncpg

from control_plane.analytics import repository
from control_plane.analytics.gaps import content_gaps
from control_plane.analytics.schemas import (
    DeckAnalytics,
    SessionAnalytics,
    SlideStats,
)
from control_plane.analytics.timeline import SessionFacts, SlideTally, reasons, session_facts
from control_plane.decks import repository as decks
from control_plane.decks.embeddings import Embedder
from control_plane.errors import NotFound, PodiumError
from control_plane.storage import UrlSigner

MAX_SESSIONS = 500
MAX_RANGE = timedelta(days=366)
DEFAULT_RANGE = timedelta(days=30)


class InvalidRange(PodiumError):
    status_code = 422
    code = "validation_error"


def time_range(
    since: datetime | None, until: datetime | None, now: datetime
) -> tuple[datetime, datetime]:
    """[from, to) with defaults (the last 30 days), checked; naive times are UTC."""
    until = _aware(until) if until else now
    since = _aware(since) if since else until - DEFAULT_RANGE
    if since >= until:
        raise InvalidRange("Invalid request. query.from: must be before 'to'.")
    if until - since > MAX_RANGE:
        raise InvalidRange(
            f"Invalid request. query.from: the range may span at most {MAX_RANGE.days} days."
        )
    return since, until


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo else at.replace(tzinfo=UTC)


class AnalyticsService:
    def __init__(self, pool: asyncpg.Pool, embedder: Embedder, signer: UrlSigner) -> None:
        self._pool = pool
        self._embedder = embedder
        self._signer = signer

    async def for_session(self, tenant_id: UUID, session_id: UUID) -> SessionAnalytics:
        row = await repository.session(self._pool, tenant_id, session_id)
        if row is None:
            raise NotFound(f"Session {session_id} was not found.")
        slide_count = row["slide_count"] or 0
        (facts,) = await self._facts([row], slide_count)
        titles = await self._slides(row["deck_id"])
        questions = facts.questions
        return SessionAnalytics(
            session=facts.summary,
            deck_id=row["deck_id"],
            slide_count=slide_count,
            slides=_slide_stats(slide_count, [facts], titles),
            questions=questions,
            content_gaps=await content_gaps(self._embedder, [q for q in questions if q.declined]),
            navigation=facts.navigation,
            interruptions=facts.interruptions,
            escalations=facts.escalations,
        )

    async def for_deck(
        self, tenant_id: UUID, deck_id: UUID, since: datetime, until: datetime
    ) -> DeckAnalytics:
        deck = await decks.get_for_tenant(self._pool, tenant_id, deck_id)
        if deck is None:
            raise NotFound(f"Deck {deck_id} was not found.")
        rows = await repository.deck_sessions(
            self._pool, tenant_id, deck_id, since, until, MAX_SESSIONS + 1
        )
        truncated = len(rows) > MAX_SESSIONS
        rows = rows[:MAX_SESSIONS]
        slide_count = deck["slides_total"]
        facts = await self._facts(rows, slide_count)
        questions = sorted((q for f in facts for q in f.questions), key=lambda q: q.at)
        escalations = sorted((e for f in facts for e in f.escalations), key=lambda e: e.at)
        lengths = [f.summary.length_seconds for f in facts]
        completions = [c for f in facts if (c := f.summary.completion) is not None]
        return DeckAnalytics(
            deck_id=deck_id,
            title=deck["title"],
            slide_count=slide_count,
            from_=since,
            to=until,
            sessions_count=len(facts),
            sessions_truncated=truncated,
            mean_length_seconds=round(statistics.fmean(lengths), 3) if lengths else None,
            mean_completion=round(statistics.fmean(completions), 4) if completions else None,
            ended_early=sum(f.summary.drop_off_slide is not None for f in facts),
            slides=_slide_stats(slide_count, facts, await self._slides(deck_id)),
            content_gaps=await content_gaps(self._embedder, [q for q in questions if q.declined]),
            questions=questions[-repository.MAX_LISTED :],
            escalations=escalations,
            escalation_reasons=reasons(escalations),
            navigation_requests=dict(Counter(n.by for f in facts for n in f.navigation)),
            sessions=[f.summary for f in facts],
        )

    async def _facts(self, rows: list[asyncpg.Record], slide_count: int) -> list[SessionFacts]:
        ids = [r["id"] for r in rows]
        if not ids:
            return []
        transitions = await repository.transitions(self._pool, ids)
        turns = await repository.question_turns(self._pool, ids)
        interrupted = await repository.interruptions(self._pool, ids)
        escalated = await repository.escalations(self._pool, ids)
        now = datetime.now(UTC)
        return [
            session_facts(
                r,
                r["slide_count"] or slide_count,
                transitions.get(r["id"], []),
                turns.get(r["id"], []),
                interrupted.get(r["id"], []),
                escalated.get(r["id"], []),
                now,
            )
            for r in rows
        ]

    async def _slides(self, deck_id: UUID | None) -> dict[int, tuple[str | None, str | None]]:
        """Slide → (title, signed thumbnail URL) of the deck, while it exists."""
        if deck_id is None:
            return {}
        rows = await decks.list_slides(self._pool, deck_id)
        return {
            r["index"]: (
                r["title"],
                self._signer.url(r["thumb_key"]) if r["thumb_key"] else None,
            )
            for r in rows
        }


def _slide_stats(
    slide_count: int,
    facts: list[SessionFacts],
    slides: dict[int, tuple[str | None, str | None]],
) -> list[SlideStats]:
    counted = max(len(facts), 1)
    stats = []
    for index in range(1, slide_count + 1):
        total = SlideTally()
        for f in facts:
            one = f.slides.get(index)
            if one is None:
                continue
            for name in vars(total):
                setattr(total, name, getattr(total, name) + getattr(one, name))
        title, thumbnail = slides.get(index, (None, None))
        stats.append(
            SlideStats(
                index=index,
                title=title,
                thumbnail_url=thumbnail,
                seconds=round(total.seconds, 3),
                mean_seconds=round(total.seconds / counted, 3),
                paused_seconds=round(total.paused_seconds, 3),
                visits=total.visits,
                questions=total.questions,
                declined=total.declined,
                interruptions=total.interruptions,
                navigation_requests=total.navigation_requests,
                reached=total.reached,
                drop_offs=total.drop_offs,
            )
        )
    return stats
