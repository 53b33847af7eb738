"""Everything the control plane asks of the LiveKit server: rooms, agent dispatches, tokens.

Foreign exceptions are translated here, at the boundary, into :class:`UpstreamUnavailable`.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta

import aiohttp
from livekit import api

from control_plane.errors import UpstreamUnavailable
from shared.schemas import Role

logger = logging.getLogger(__name__)

# A room holds the presenter (and an avatar vendor's participant), the people who may speak and
# an audience of viewers; the cap keeps one session from taking a whole SFU node.
MAX_PARTICIPANTS = 200


class LiveKitGateway:
    def __init__(
        self, *, url: str, api_key: str, api_secret: str, agent_name: str, timeout_s: float = 5.0
    ) -> None:
        self.url = url
        self._key = api_key
        self._secret = api_secret
        self._agent_name = agent_name
        self._timeout_s = timeout_s
        self._api: api.LiveKitAPI | None = None

    async def __aenter__(self) -> LiveKitGateway:
        # LiveKit's API speaks HTTP on the same port as its websocket.
        http_url = self.url.replace("ws://", "http://").replace("wss://", "https://")
        self._api = api.LiveKitAPI(http_url, self._key, self._secret, timeout=self._timeout())
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._api is not None:
            await self._api.aclose()
            self._api = None

    def _timeout(self) -> aiohttp.ClientTimeout:
        return aiohttp.ClientTimeout(total=self._timeout_s)

    @property
    def _client(self) -> api.LiveKitAPI:
        if self._api is None:
            raise RuntimeError("LiveKitGateway used outside its context")
        return self._api

    async def create_room(
        self,
        *,
        room: str,
        empty_timeout_s: int,
        dispatch_metadata: str | None,
        metadata: str | None = None,
    ) -> None:
        """Create the room, with an explicit dispatch of the presenter in the same call unless
        ``dispatch_metadata`` is None (then :meth:`dispatch_agent` sends it later).

        Naming the agent in the room's own configuration also stops the server from adding its
        implicit dispatch for unnamed (automatic) workers. ``metadata`` is the room's initial
        metadata, which the first participant already receives on join.
        """
        request = api.CreateRoomRequest(
            name=room,
            empty_timeout=empty_timeout_s,
            max_participants=MAX_PARTICIPANTS,
            agents=(
                [api.RoomAgentDispatch(agent_name=self._agent_name, metadata=dispatch_metadata)]
                if dispatch_metadata is not None
                else []
            ),
            metadata=metadata or "",
        )
        try:
            await self._client.room.create_room(request)
        except (api.TwirpError, aiohttp.ClientError, TimeoutError) as exc:
            logger.warning("livekit create_room failed", extra={"room": room})
            raise UpstreamUnavailable(
                "The media server did not accept the new room; try again shortly."
            ) from exc

    async def delete_room(self, room: str) -> None:
        """Close the room: every participant, the agent included, is disconnected."""
        try:
            await self._client.room.delete_room(api.DeleteRoomRequest(room=room))
        except api.TwirpError as exc:
            if exc.status == 404 or exc.code == "not_found":
                return  # already gone: ending is idempotent
            raise UpstreamUnavailable("The media server did not close the room.") from exc
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise UpstreamUnavailable("The media server did not close the room.") from exc

    async def dispatch_agent(self, room: str, dispatch_metadata: str) -> None:
        """Send the presenter to an existing room again (a new job on any worker with room)."""
        try:
            await self._client.agent_dispatch.create_dispatch(
                api.CreateAgentDispatchRequest(
                    agent_name=self._agent_name, room=room, metadata=dispatch_metadata
                )
            )
        except (api.TwirpError, aiohttp.ClientError, TimeoutError) as exc:
            raise UpstreamUnavailable("The media server did not accept the dispatch.") from exc

    async def presenter_dispatched(self, room: str, *, settle_s: float) -> bool | None:
        """Whether a worker holds (or is starting) a job from the room's presenter dispatches;
        None when the room has no dispatch of the presenter at all, or its newest is younger
        than ``settle_s`` (still being offered). livekit-server drops a dispatch that no worker
        accepts (none free, or every one refused): it then has no job and is never sent again."""
        try:
            found = await self._client.agent_dispatch.list_dispatch(room)
        except (api.TwirpError, aiohttp.ClientError, TimeoutError) as exc:
            raise UpstreamUnavailable("The media server did not list the dispatches.") from exc
        ours = [d for d in found if d.agent_name == self._agent_name]
        newest_ns = max((d.state.created_at for d in ours), default=0)
        if not ours or time.time_ns() - newest_ns < settle_s * 1e9:
            return None
        live = (api.JobStatus.JS_PENDING, api.JobStatus.JS_RUNNING)
        return any(job.state.status in live for d in ours for job in d.state.jobs)

    async def room_occupants(self, room: str) -> tuple[int, int]:
        """(people, agents) in the room; (0, 0) when the room is gone."""
        try:
            found = await self._client.room.list_participants(
                api.ListParticipantsRequest(room=room)
            )
        except api.TwirpError as exc:
            if exc.status == 404 or exc.code == "not_found":
                return 0, 0
            raise UpstreamUnavailable("The media server did not list the room.") from exc
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise UpstreamUnavailable("The media server did not list the room.") from exc
        agents = sum(1 for p in found.participants if p.kind == api.ParticipantInfo.Kind.AGENT)
        return len(found.participants) - agents, agents

    async def set_room_metadata(self, room: str, metadata: str) -> bool:
        """Replace the room's metadata; LiveKit sends it to every participant now and to each
        later joiner on join. False when the room does not exist (closed, or never created)."""
        try:
            await self._client.room.update_room_metadata(
                api.UpdateRoomMetadataRequest(room=room, metadata=metadata)
            )
        except api.TwirpError as exc:
            if exc.status == 404 or exc.code == "not_found":
                return False
            raise UpstreamUnavailable("The media server did not update the room.") from exc
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise UpstreamUnavailable("The media server did not update the room.") from exc
        return True

    async def rooms_metadata(self, rooms: list[str]) -> dict[str, str]:
        """The metadata of those of ``rooms`` that exist, by room name."""
        try:
            found = await self._client.room.list_rooms(api.ListRoomsRequest(names=rooms))
        except (api.TwirpError, aiohttp.ClientError, TimeoutError) as exc:
            raise UpstreamUnavailable("The media server did not list its rooms.") from exc
        return {r.name: r.metadata for r in found.rooms}

    def participant_token(
        self,
        *,
        room: str,
        identity: str,
        name: str | None,
        role: Role,
        ttl: timedelta,
        session_id: str,
    ) -> tuple[str, datetime]:
        grants = api.VideoGrants(
            room_join=True,
            room=room,
            can_subscribe=True,
            can_publish=role != "viewer",
            # a viewer may type questions (text streams); the worker rate-limits them
            can_publish_data=True,
        )
        token = (
            api.AccessToken(self._key, self._secret)
            .with_identity(identity)
            .with_name(name or identity)
            .with_grants(grants)
            .with_ttl(ttl)
            .with_attributes({"podium.role": role, "podium.session_id": session_id})
        )
        expires_at = datetime.now(UTC) + ttl
        return token.to_jwt(), expires_at
