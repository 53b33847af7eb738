"""What the analytics routes answer."""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

NavigationKind = Literal["listener", "voice", "api"]


class Question(BaseModel):
    session_id: UUID
    turn: int = Field(description="The turn's number in the session's turn log.")
    at: datetime
    slide_index: int | None = Field(description="The slide showing when it was asked.")
    text: str = Field(description="The listener's words, as stored (redacted by the policy).")
    declined: bool = Field(description="The presenter said the deck does not cover it.")


class Navigation(BaseModel):
    session_id: UUID
    at: datetime
    action: str
    from_index: int | None
    to_index: int
    by: NavigationKind = Field(
        description="'listener' (a button on the join page), 'voice' (a spoken request the "
        "presenter carried out) or 'api'."
    )


class Interruption(BaseModel):
    session_id: UUID
    at: datetime
    slide_index: int | None


class Escalation(BaseModel):
    session_id: UUID
    at: datetime
    reason: str
    slide_index: int | None


class ContentGap(BaseModel):
    question: str = Field(description="The asked question nearest the group's centre.")
    count: int
    examples: list[str] = Field(description="Up to 5 distinct wordings, first asked first.")
    sessions: list[UUID]
    slides: list[int] = Field(description="The slides showing when they were asked.")


class SlideStats(BaseModel):
    index: int
    title: str | None = None
    thumbnail_url: str | None = None
    seconds: float = Field(description="Time shown, not paused (a deck: summed over sessions).")
    mean_seconds: float = Field(description="seconds per session counted.")
    paused_seconds: float
    visits: int = Field(description="Times the presentation arrived on it.")
    questions: int
    declined: int
    interruptions: int
    navigation_requests: int = Field(description="Requested moves that landed on it.")
    reached: int = Field(description="Sessions that showed it.")
    drop_offs: int = Field(description="Sessions that ended on it before the deck's last slide.")


class SessionSummary(BaseModel):
    session_id: UUID
    status: str
    created_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    end_reason: str | None
    length_seconds: float = Field(description="From the presenter joining to the end (or now).")
    max_slide: int | None
    completion: float | None = Field(description="max_slide / the deck's slide count.")
    drop_off_slide: int | None = Field(
        description="The slide showing when the session ended, when before the last slide."
    )
    questions: int
    declined: int
    interruptions: int
    navigation_requests: int
    escalations: int


class SessionAnalytics(BaseModel):
    session: SessionSummary
    deck_id: UUID | None
    slide_count: int
    slides: list[SlideStats]
    questions: list[Question]
    content_gaps: list[ContentGap]
    navigation: list[Navigation]
    interruptions: list[Interruption]
    escalations: list[Escalation]


class DeckAnalytics(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    deck_id: UUID
    title: str | None
    slide_count: int
    from_: datetime = Field(alias="from")
    to: datetime
    sessions_count: int = Field(description="Sessions counted: joined, created in the range.")
    sessions_truncated: bool = Field(
        description="More sessions matched than one answer counts; the newest were counted."
    )
    mean_length_seconds: float | None
    mean_completion: float | None
    ended_early: int = Field(description="Sessions that ended before the deck's last slide.")
    slides: list[SlideStats]
    content_gaps: list[ContentGap]
    questions: list[Question] = Field(
        description="Oldest first; the newest 2000 when more (the counts include them all)."
    )
    escalations: list[Escalation]
    escalation_reasons: dict[str, int]
    navigation_requests: dict[str, int] = Field(description="Requested moves by who asked.")
    sessions: list[SessionSummary] = Field(description="Newest first.")


class LinkRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ttl_seconds: int = Field(default=3600, ge=60, le=86_400)


class AnalyticsLink(BaseModel):
    deck_id: UUID
    url: str = Field(description="The analytics page, its read-only token in the fragment.")
    token: str
    expires_at: datetime
