"""Wire schemas shared by the control plane and the worker (one model per direction)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, model_validator

SessionStatus = Literal["created", "active", "ended"]


class DispatchMetadata(BaseModel):
    """JSON placed in the LiveKit agent dispatch; only the dispatched worker job can read it."""

    model_config = ConfigDict(extra="ignore")

    session_id: UUID
    credential: str  # session-scoped bearer for the control plane's internal API


class SessionContext(BaseModel):
    """What a worker job loads from the control plane before it joins the room."""

    session_id: UUID
    tenant_id: UUID
    room: str
    status: SessionStatus
    deck_id: UUID | None
    participant_name: str | None
    greeting: str
    created_at: datetime


# Postgres text cannot hold NUL: refuse it at the edge with a 422, not a database error.
NO_NUL = r"^[^\x00]*$"

SlideAction = Literal["next", "previous", "goto", "first", "last", "pause", "resume"]


class SlideChange(BaseModel):
    """A request to change a session's slide state (API, participant and worker routes alike)."""

    model_config = ConfigDict(extra="forbid")

    action: SlideAction
    index: int | None = Field(
        default=None, description="The slide to show, from 1; required with 'goto', only there."
    )
    expected_version: int | None = Field(
        default=None,
        ge=1,
        le=2**63 - 1,
        description="Apply only if the state is still at this version (else 409 version_conflict).",
    )
    reason: str | None = Field(
        pattern=NO_NUL, default=None, max_length=200, description="Recorded with the change."
    )

    @model_validator(mode="after")
    def _index_only_with_goto(self) -> SlideChange:
        if (self.action == "goto") != (self.index is not None):
            raise ValueError("'index' is required with action 'goto' and not allowed otherwise")
        return self


class SlideState(BaseModel):
    """The current slide of a session, as every client and the worker see it."""

    session_id: UUID
    deck_id: UUID
    index: int = Field(description="The slide shown, from 1.")
    count: int = Field(description="Slides in the deck.")
    version: int = Field(description="Grows by one with every change; ignore lower versions.")
    title: str | None
    image_url: str | None = Field(description="Signed, short-lived URL of the slide image.")
    paused: bool = Field(description="Presentation mode paused (the presenter waits).")
    changed_by: str = Field(description="'agent', 'api' or 'participant:<identity>'.")
    changed_at: datetime


class DeckSearchHit(BaseModel):
    """One slide that matches a question, best first (worker route)."""

    slide_index: int = Field(description="The slide, from 1.")
    title: str | None
    score: float = Field(description="Relevance: higher is better; comparable within one deck.")
    snippet: str = Field(description="The slide's text or notes that matched best.")


class DeckSearchResult(BaseModel):
    """What ``GET /internal/v1/sessions/{id}/search`` answers."""

    hits: list[DeckSearchHit]


class SlideContent(BaseModel):
    """One slide's words, for the presenter to narrate or quote (worker route)."""

    index: int = Field(description="The slide, from 1.")
    title: str | None
    text: str
    notes: str | None
