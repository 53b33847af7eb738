"""Erasure API schemas, one per direction."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from control_plane.sessions.schemas import _IDENTITY


class ErasureCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    identity: str = Field(
        pattern=_IDENTITY,
        description="The participant identity whose words to erase, as given when the session "
        "or its token was made (letters, digits, _ . : @ -; at most 64).",
    )


class ErasureReport(BaseModel):
    erasure_id: UUID
    identity: str | None = Field(
        description="The identity erased: in the answer to the request only. Podium keeps its "
        "SHA-256 alone."
    )
    identity_sha256: str = Field(description="Hex SHA-256 of the identity's UTF-8 bytes.")
    sessions: list[UUID] = Field(description="The sessions where the identity had spoken.")
    deleted: dict[str, int] = Field(
        description="Rows deleted (messages, turns, escalations, webhook_deliveries, "
        "recording_segments, redaction_spans), files deleted (files), and rows whose mention "
        "of the identity was replaced by 'erased' (transitions_anonymized, events_anonymized)."
    )
    recordings_kept: list[UUID] = Field(
        description="Sessions where others spoke too: their recording (one user channel for "
        "everyone) is kept; delete the session to remove it."
    )
    requested_at: datetime
    completed_at: datetime
