"""Usage API schemas (``GET /v1/usage``), one per direction."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

GroupBy = Literal["day", "session"]


class LlmTokens(BaseModel):
    input: int = Field(description="Prompt tokens the model provider reported.")
    output: int = Field(description="Completion tokens the model provider reported.")


class UsageFigures(BaseModel):
    session_minutes: float = Field(description="From a session's first join to its end.")
    participant_minutes: dict[str, float] = Field(
        description="Time connected, by role: participant, viewer, agent (the presenter and a "
        "vendor's avatar)."
    )
    stt_audio_seconds: dict[str, float] = Field(description="Audio transcribed, by provider.")
    tts_characters: dict[str, int] = Field(description="Characters synthesized, by provider.")
    llm_tokens: dict[str, LlmTokens] = Field(description="Tokens by model.")
    avatar_minutes: dict[str, float] = Field(
        description="Time a face was shown, by provider: 'local' or the vendor's name."
    )
    storage_added_bytes: dict[str, int] = Field(
        description="Bytes stored in the period, of what is still stored: 'decks' (uploaded "
        "files) and 'recordings' (segments)."
    )


class UsageDay(BaseModel):
    day: date
    usage: UsageFigures


class UsageSession(BaseModel):
    session_id: UUID
    usage: UsageFigures


class StorageBytes(BaseModel):
    decks: int = Field(description="Bytes of the decks' uploaded files, stored now.")
    recordings: int = Field(description="Bytes of session recordings, stored now.")
    as_of: datetime


class UsagePage(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    tenant_id: UUID
    from_: date = Field(alias="from", serialization_alias="from")
    to: date = Field(description="The last day included (UTC).")
    group_by: GroupBy
    total: UsageFigures = Field(description="The whole range.")
    days: list[UsageDay] | None = Field(default=None, description="With group_by=day.")
    sessions: list[UsageSession] | None = Field(
        default=None, description="With group_by=session: sessions by id, one page."
    )
    storage: StorageBytes
    next_cursor: str | None = None
