"""Wire schemas shared by the control plane and the worker (one model per direction)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict

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
