"""Slides API schemas that only the control plane's public API uses (wire models shared with
the worker, ``SlideChange`` and ``SlideState``, live in ``shared.schemas``)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel

# Who changed the slide: the presenter, an integrator's API call, or a participant in the room.
Actor = str  # "agent" | "api" | "participant:<identity>"

TransitionAction = Literal[
    "start", "next", "previous", "goto", "first", "last", "pause", "resume", "lock", "unlock"
]


class TransitionPublic(BaseModel):
    version: int
    action: TransitionAction
    from_index: int | None
    to_index: int
    paused: bool
    locked: bool
    actor: str
    reason: str | None
    idempotency_key: str
    created_at: datetime


class TransitionList(BaseModel):
    items: list[TransitionPublic]
    next_after_version: int | None
