"""What the join page reads about its own session, with the participant's token."""

from __future__ import annotations

from uuid import UUID

from pydantic import BaseModel, Field

from shared.schemas import SessionStatus


class ParticipantSession(BaseModel):
    session_id: UUID
    status: SessionStatus
    identity: str
    role: str = Field(
        description="'host' may speak, change slides and lock navigation; 'participant' may "
        "speak and change slides unless the host locked it; 'viewer' may do neither."
    )
    livekit_url: str
    has_deck: bool
    end_reason: str | None
