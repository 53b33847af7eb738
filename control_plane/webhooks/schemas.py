"""Webhook API schemas, one per direction."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, field_validator

EventType = Literal[
    "session.started",
    "session.ended",
    "transcript.ready",
    "escalation.requested",
    "deck.ready",
    "deck.failed",
    "session.deleted",
    "records.expired",
    "erasure.completed",
    "usage.daily",
]
EVENT_TYPES: tuple[EventType, ...] = (
    "session.started",
    "session.ended",
    "transcript.ready",
    "escalation.requested",
    "deck.ready",
    "deck.failed",
    "session.deleted",
    "records.expired",
    "erasure.completed",
    "usage.daily",
)
DeliveryStatus = Literal["pending", "delivered", "failed"]


class EndpointCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: AnyHttpUrl = Field(description="Where events are POSTed (http or https).")
    events: list[EventType] = Field(
        default_factory=lambda: list(EVENT_TYPES),
        min_length=1,
        description="The event types to receive; all of them when omitted.",
    )

    @field_validator("url")
    @classmethod
    def _bounded(cls, value: AnyHttpUrl) -> AnyHttpUrl:
        if len(str(value)) > 2000:
            raise ValueError("url must be at most 2000 characters")
        return value


class EndpointPublic(BaseModel):
    endpoint_id: UUID
    url: str
    events: list[str]
    enabled: bool
    created_at: datetime


class EndpointCreated(EndpointPublic):
    secret: str = Field(
        description="Signs every delivery (HMAC-SHA256); shown only now, so store it."
    )


class DeliverySummary(BaseModel):
    """A delivery in the log (its payload: ``GET /v1/webhooks/deliveries/{id}``)."""

    delivery_id: UUID
    endpoint_id: UUID
    event_id: UUID
    event_type: str
    status: DeliveryStatus
    attempts: int
    last_status: int | None = Field(description="Your endpoint's last HTTP status, if any.")
    last_error: str | None
    next_attempt_at: datetime | None
    created_at: datetime
    delivered_at: datetime | None


class Delivery(DeliverySummary):
    payload: dict[str, Any]


class DeliveryList(BaseModel):
    items: list[DeliverySummary]
    next_cursor: str | None = Field(description="Pass as 'cursor' for the next page; null: done.")
