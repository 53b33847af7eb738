"""API key schemas, one per direction. The secret appears in a creation's answer only."""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from shared.schemas import NO_NUL

# What a key may do; every tenant route needs one of them (see each router's dependencies).
Scope = Literal["sessions", "decks", "records:read", "webhooks", "admin"]
ALL_SCOPES: tuple[Scope, ...] = ("sessions", "decks", "records:read", "webhooks", "admin")
# A rotated key may keep working this long, so its holders can switch to the new one.
MAX_GRACE_SECONDS = 7 * 86_400


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str = Field(
        min_length=1, max_length=100, pattern=NO_NUL, description="What the key is for."
    )
    scopes: list[Scope] = Field(
        min_length=1,
        description="What the key may do; at most the scopes of the key creating it.",
    )


class KeyRotate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    grace_seconds: int = Field(
        default=0,
        ge=0,
        le=MAX_GRACE_SECONDS,
        description="How long the old key keeps working; 0 revokes it now.",
    )


class KeyPublic(BaseModel):
    key_id: UUID
    prefix: str = Field(description="The key's first characters, to tell keys apart.")
    name: str
    scopes: list[Scope]
    created_at: datetime
    last_used_at: datetime | None = Field(description="When it was last used, to the minute.")
    revoked_at: datetime | None = Field(
        description="When it stopped working; in the future while a rotation's grace period runs."
    )
    created_by: UUID | None = Field(
        description="The key that created this one; null for keys made by `podium admin`."
    )


class KeyCreated(KeyPublic):
    api_key: str = Field(description="The key itself: shown only now, so store it.")


class KeyRotated(BaseModel):
    new_key: KeyCreated
    old_key: KeyPublic
