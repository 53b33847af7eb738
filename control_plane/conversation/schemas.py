"""What the escalations API answers."""

from __future__ import annotations

from uuid import UUID

from pydantic import BaseModel, Field

from shared.schemas import Escalation


class EscalationPage(BaseModel):
    session_id: UUID
    items: list[Escalation]
    next_cursor: str | None = Field(description="Pass as 'cursor' for the next page; null: done.")
