"""LiveKit rooms and tokens made directly on a test stack's livekit-server, for tests of the
worker's room code without the control plane."""

from __future__ import annotations

import uuid
from typing import Any

from livekit import api as lk

from shared.devstack.stack import EphemeralStack


async def new_room(stack: EphemeralStack, prefix: str) -> str:
    """An empty room (closed 30 s after its last participant leaves); its name."""
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    lkapi = lk.LiveKitAPI(
        stack.livekit.url.replace("ws://", "http://"),
        stack.livekit.api_key,
        stack.livekit.api_secret,
    )
    try:
        await lkapi.room.create_room(lk.CreateRoomRequest(name=name, empty_timeout=30))
    finally:
        await lkapi.aclose()
    return name


def room_token(
    stack: EphemeralStack,
    room: str,
    identity: str,
    *,
    name: str | None = None,
    attributes: dict[str, str] | None = None,
    **grants: Any,
) -> str:
    """A join token for ``room`` that may send data, with any further ``VideoGrants``."""
    token = (
        lk.AccessToken(stack.livekit.api_key, stack.livekit.api_secret)
        .with_identity(identity)
        .with_grants(lk.VideoGrants(room_join=True, room=room, can_publish_data=True, **grants))
    )
    if name is not None:
        token = token.with_name(name)
    if attributes is not None:
        token = token.with_attributes(attributes)
    return token.to_jwt()
