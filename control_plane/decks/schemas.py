"""Decks API schemas, one per direction."""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, Field

DeckStatus = Literal["pending", "processing", "ready", "failed"]


class DeckProgress(BaseModel):
    slides_done: int
    slides_total: int


class DeckFailure(BaseModel):
    code: str
    message: str


class DeckPublic(BaseModel):
    deck_id: UUID
    filename: str
    kind: Literal["pdf", "pptx"]
    title: str | None
    status: DeckStatus
    progress: DeckProgress
    failure: DeckFailure | None
    previews_available: bool
    size_bytes: int
    sha256: str
    embedding_model: str | None
    # BCP-47 primary tag detected from the deck's text when it was indexed ("en" before).
    language: str = "en"
    created_at: datetime
    ready_at: datetime | None


class DeckList(BaseModel):
    items: list[DeckPublic]
    next_cursor: str | None


class SlidePublic(BaseModel):
    index: int
    title: str | None
    text: str
    notes: str | None
    image_url: str | None
    thumbnail_url: str | None


class SlideList(BaseModel):
    deck_id: UUID
    slides: list[SlidePublic]


class SearchHit(BaseModel):
    slide_index: int
    title: str | None
    score: float
    snippet: str
    matched: Literal["slide", "notes"]


class SearchResults(BaseModel):
    deck_id: UUID
    query: str
    purpose: Literal["answer", "navigate"] = Field(
        description="'answer': slides that answer a question; 'navigate': slides a listener "
        "asked to be shown by topic ('the wrap-up', 'the team slide')."
    )
    covered: bool = Field(
        description="Whether the best hit answers the question (or, for 'navigate', resembles "
        "the topic); when false the presenter says the deck does not cover it."
    )
    confidence: float = Field(description="The model's confidence in 'covered', 0 to 1.")
    hits: list[SearchHit]
