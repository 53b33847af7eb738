"""What the session-records API answers."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, Field

from shared.schemas import MessageRole, StoredTurn


class TranscriptLine(BaseModel):
    seq: int = Field(description="The line's position; pass the last one as 'after'.")
    item_id: str
    role: MessageRole
    text: str
    interrupted: bool
    started_at: datetime | None = Field(description="When it began to be spoken (if measured).")
    ended_at: datetime | None
    created_at: datetime = Field(description="When the control plane stored it.")
    speaker: str | None = Field(
        default=None, description="The identity of the participant whose words a user line holds."
    )


class Transcript(BaseModel):
    session_id: UUID
    status: str
    items: list[TranscriptLine]
    next_after: int | None = Field(description="Pass as 'after' for the next page; null: done.")


class TurnPage(BaseModel):
    session_id: UUID
    items: list[StoredTurn]
    next_after: int | None = Field(description="Pass as 'after' for the next page; null: done.")


class SessionEvent(BaseModel):
    at: datetime
    type: str = Field(
        description="slide.<action> (transitions), escalation.requested, or a lifecycle event "
        "(session.created, session.ended, agent.lost, token.minted, …)."
    )
    actor: str
    data: dict[str, Any]


class EventPage(BaseModel):
    session_id: UUID
    items: list[SessionEvent]
    next_cursor: str | None = Field(description="Pass as 'cursor' for the next page; null: done.")
