"""Sessions API schemas, one per direction."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, field_validator

from shared.languages import LANGUAGES
from shared.languages import normalise as normalise_language
from shared.schemas import NO_NUL, Role, SessionStatus

_IDENTITY = r"^[A-Za-z0-9_.:@-]{1,64}$"


class ParticipantSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    identity: str | None = Field(
        default=None,
        pattern=_IDENTITY,
        description="Stable id for the participant in the room (letters, digits, _ . : @ -; "
        "at most 64). Generated when omitted.",
    )
    name: str | None = Field(default=None, min_length=1, max_length=100, pattern=NO_NUL)
    role: Role = Field(
        default="participant",
        description="'host' may speak, navigate and lock navigation; 'participant' may speak "
        "and navigate unless the host locked it; 'viewer' watches and listens, and may type "
        "questions (one every 10 s).",
    )
    ttl_seconds: int | None = Field(default=None, ge=60, le=86_400)


class SessionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    deck_id: UUID | None = Field(default=None, description="The deck to present; it must be ready.")
    participant: ParticipantSpec = Field(default_factory=ParticipantSpec)
    metadata: dict[str, Any] = Field(
        default_factory=dict, description="Your own key/values, returned as given (max 16 KB)."
    )
    record: bool | None = Field(
        default=None,
        description="Record the session's audio (opt-in); omitted: the tenant's default.",
    )
    language: str | None = Field(
        default=None,
        description="The language the presenter speaks and listens in, BCP-47 (en, es, de, fr; "
        "es-MX is es); omitted: the deck's, detected from its text (docs/languages.md).",
    )

    @field_validator("language")
    @classmethod
    def _supported(cls, value: str | None) -> str | None:
        if value is None:
            return None
        language = normalise_language(value)
        if language is None:
            raise ValueError(f"language must be one of {', '.join(LANGUAGES)} (BCP-47)")
        return language

    @field_validator("metadata")
    @classmethod
    def _storable(cls, value: dict[str, Any]) -> dict[str, Any]:
        encoded = json.dumps(value)
        if len(encoded) > 16_384:
            raise ValueError("metadata must be at most 16 KB of JSON")
        if "\\u0000" in encoded:
            raise ValueError("metadata must not contain NUL characters")
        return value


class TokenCreate(ParticipantSpec):
    pass


class ParticipantToken(BaseModel):
    session_id: UUID
    room: str
    livekit_url: str
    identity: str
    role: Role
    token: str
    expires_at: datetime
    join_url: str = Field(
        description="The web client's join page for this participant. The token rides in the "
        "URL fragment, which browsers never send to a server or in a Referer."
    )


class SessionCreated(ParticipantToken):
    pass


class SessionPublic(BaseModel):
    session_id: UUID
    room: str
    status: SessionStatus
    deck_id: UUID | None
    metadata: dict[str, Any]
    created_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    end_reason: str | None
    record: bool = Field(default=False, description="The session's audio is recorded.")
    recording_url: str | None = Field(
        default=None,
        description="GET it (API key) for the recording's segments, in order, as they arrive.",
    )


class SessionList(BaseModel):
    items: list[SessionPublic]
    next_cursor: str | None = Field(description="Pass as 'cursor' for the next page; null: done.")
