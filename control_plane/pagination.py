"""Keyset pagination: a page ends with a cursor that names its last item's sort key, and the next
page starts after that key, so every page costs one index range however deep it is (OFFSET
would re-read every skipped row) and rows added meanwhile never shift a page."""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import Query

from control_plane.errors import PodiumError

KeyPart = datetime | int | str | UUID

Cursor = Annotated[
    str | None,
    Query(
        max_length=200, description="The 'next_cursor' of the previous page; omit for the first."
    ),
]


class InvalidCursor(PodiumError):
    status_code = 422
    code = "invalid_cursor"


def encode(*key: KeyPart) -> str:
    text = "|".join(part.isoformat() if isinstance(part, datetime) else str(part) for part in key)
    return base64.urlsafe_b64encode(text.encode()).decode()


def decode(cursor: str, *types: type[KeyPart]) -> tuple[Any, ...]:
    """The key ``encode`` wrapped, each part read back as (and checked to be) its type in
    ``types``; a cursor this API did not hand out, or one of another list, is ``422
    invalid_cursor``."""
    try:
        parts = base64.urlsafe_b64decode(cursor.encode()).decode().split("|")
        if len(parts) != len(types):
            raise ValueError("wrong number of parts")
        return tuple(_parse(kind, part) for kind, part in zip(types, parts, strict=True))
    except (ValueError, OverflowError) as exc:
        raise InvalidCursor("The cursor is not one this API returned.") from exc


def _parse(kind: type[KeyPart], text: str) -> KeyPart:
    if kind is datetime:
        stamp = datetime.fromisoformat(text)
        if stamp.tzinfo is None:
            raise ValueError("a cursor's time carries its offset")
        return stamp
    if kind is int:
        value = int(text)
        if not 0 <= value < 2**63:
            raise ValueError("out of range")
        return value
    if kind is UUID:
        return UUID(text)
    return text
