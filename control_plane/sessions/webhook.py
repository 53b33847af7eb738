"""POST /livekit/webhook: events from the LiveKit server, verified with our API key pair."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Annotated

import asyncpg
from fastapi import APIRouter, Header, Request, status
from livekit import api

from control_plane.deps import LiveKit, Pool, RedisClient, Settings
from control_plane.errors import PodiumError, Unauthorized
from control_plane.sessions import lifecycle
from control_plane.sessions import repository as sessions
from control_plane.sessions.resume import Resumer, session_of_room
from control_plane.sessions.service import SessionService
from control_plane.usage import service as usage
from shared.schemas import ROLE_ATTRIBUTE

logger = logging.getLogger(__name__)

router = APIRouter(tags=["livekit"], include_in_schema=False)


class BadWebhook(PodiumError):
    status_code = 400
    code = "bad_webhook"


@router.post("/livekit/webhook", status_code=status.HTTP_204_NO_CONTENT)
async def livekit_webhook(
    request: Request,
    pool: Pool,
    redis: RedisClient,
    livekit: LiveKit,
    settings: Settings,
    authorization: Annotated[str | None, Header()] = None,
) -> None:
    """LiveKit signs each webhook with a JWT (our key pair) holding the body's SHA-256."""
    if not authorization:
        raise Unauthorized("Missing the webhook's Authorization token.")
    try:
        body = (await request.body()).decode()
    except UnicodeDecodeError as exc:
        raise BadWebhook("The webhook body is not UTF-8 JSON.") from exc
    receiver = api.WebhookReceiver(
        api.TokenVerifier(settings.livekit_api_key, settings.livekit_api_secret.get_secret_value())
    )
    try:
        event = receiver.receive(body, authorization.removeprefix("Bearer "))
    except Exception as exc:  # the SDK raises bare Exception for a bad hash or token
        raise Unauthorized("The webhook signature does not verify.") from exc
    if event.event == "room_finished":
        # LiveKit closed the room (everyone left and its empty timeout passed, or it was
        # deleted): the session is over.
        await _room_finished(pool, event.room.name)
    elif (
        event.event == "participant_joined"
        and settings.dispatch_mode == "on_join"
        and event.participant.kind != api.ParticipantInfo.Kind.AGENT
    ):
        session_id = session_of_room(event.room.name)
        if session_id is not None:
            await SessionService(pool, livekit, settings).dispatch_on_join(session_id)
    elif event.event == "participant_left" and (
        event.participant.kind == api.ParticipantInfo.Kind.AGENT
    ):
        await Resumer(pool, redis, livekit, settings).agent_left(
            event.room.name, event.participant.sid
        )
    await _meter(pool, settings, event)


async def _room_finished(pool: asyncpg.Pool, room: str) -> None:
    session_id = session_of_room(room)
    row = await sessions.get_by_id(pool, session_id) if session_id else None
    if row is not None and row["status"] != "ended":
        # A room we closed ourselves ends with the reason we noted before closing it.
        reason = row["end_reason"] or "room_finished"
        await lifecycle.finish(pool, None, row, reason, actor="livekit")


async def _meter(pool: asyncpg.Pool, settings: Settings, event: api.WebhookEvent) -> None:
    """Time in the room for usage metering: each participant's connection, by role, and the
    session's, from its first join to the room's end (durable rows, see control_plane/usage)."""
    if event.event not in ("participant_joined", "participant_left", "room_finished"):
        return
    session_id = session_of_room(event.room.name)
    if session_id is None:
        return
    at = datetime.fromtimestamp(event.created_at, UTC) if event.created_at else datetime.now(UTC)
    if event.event == "room_finished":
        await usage.room_finished(pool, settings, session_id, at)
        return
    participant = event.participant
    if event.event == "participant_left":
        await usage.participant_left(pool, settings, session_id, participant.sid, at)
        return
    if participant.joined_at_ms:
        at = datetime.fromtimestamp(participant.joined_at_ms / 1000, UTC)
    elif participant.joined_at:
        at = datetime.fromtimestamp(participant.joined_at, UTC)
    kind = "agent" if participant.kind == api.ParticipantInfo.Kind.AGENT else "standard"
    role = usage.role_of(kind, dict(participant.attributes), ROLE_ATTRIBUTE)
    await usage.participant_joined(pool, settings, session_id, participant.sid, role, at)
