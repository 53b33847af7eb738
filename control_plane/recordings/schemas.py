"""A session's recording, as the API lists it."""

from __future__ import annotations

from uuid import UUID

from pydantic import BaseModel, Field


class RecordingSegment(BaseModel):
    seq: int = Field(description="Position in the session's recording: 0, 1, …")
    started_at: float = Field(description="Seconds after the session started.")
    duration_s: float
    bytes: int
    url: str = Field(description="The segment as audio/ogg: a signed link, no API key needed.")


class RecordingPage(BaseModel):
    session_id: UUID
    items: list[RecordingSegment]
    next_cursor: str | None = Field(description="Pass as 'cursor' for the next page; null: done.")
