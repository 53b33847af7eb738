"""Audit trail schemas: the row written for a call, and what GET /v1/audit answers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from ipaddress import IPv4Address, IPv6Address
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, Field

Outcome = Literal["ok", "denied", "error"]
Method = Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]


def outcome_of(status: int) -> Outcome:
    """``ok`` for 1xx to 3xx, ``denied`` for a refusal (4xx: scope, not found, invalid, limits),
    ``error`` for a failure on our side (5xx)."""
    if status < 400:
        return "ok"
    return "denied" if status < 500 else "error"


@dataclass(frozen=True)
class AuditRecord:
    """One call, as the recorder writes it."""

    tenant_id: UUID
    key_id: UUID | None
    actor: str
    method: str
    route: str
    target_id: str | None
    status: int
    client_ip: IPv4Address | IPv6Address | None

    @property
    def outcome(self) -> Outcome:
        return outcome_of(self.status)


class AuditEntry(BaseModel):
    id: int = Field(description="Increases with every entry; pages are cut by it.")
    at: datetime = Field(description="When the call was answered (its status known).")
    key_id: UUID | None = Field(description="The API key the call used (its id, never the key).")
    actor: str = Field(description="'key' for calls made with an API key.")
    method: Method
    route: str = Field(description="The route's template, e.g. /v1/sessions/{session_id}/turns.")
    target_id: str | None = Field(
        description="The id the call was about: the path's (first) id, or the one a creation made."
    )
    status: int = Field(description="The HTTP status answered.")
    outcome: Outcome = Field(description="ok (< 400), denied (4xx) or error (5xx).")
    client_ip: str | None = Field(description="The caller's address as the server saw it.")


class AuditPage(BaseModel):
    items: list[AuditEntry] = Field(description="Newest first.")
    next_cursor: str | None = Field(description="Pass as 'cursor' for older entries; null: none.")
