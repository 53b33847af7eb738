"""The hot copy of each session's slide state in Redis, and its pub/sub fan-out.

Postgres is the truth; this cache may be empty or behind (never ahead), and every write to it
is "only if newer", so a slow writer can never put an older version back.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import TypeVar
from uuid import UUID

import asyncpg
from redis.asyncio import Redis
from redis.exceptions import TimeoutError as RedisTimeout

from control_plane.storage import UrlSigner
from shared.schemas import SlideState

_T = TypeVar("_T")


def channel(session_id: UUID) -> str:
    """The cache key and the pub/sub channel share this name (Redis keeps them apart)."""
    return f"podium:session:{session_id}:slide"


@dataclass(frozen=True)
class SlideRecord:
    """One session's slide state with what is needed to authorise and publish it."""

    session_id: UUID
    tenant_id: UUID
    room: str
    deck_id: UUID
    index: int
    count: int
    version: int
    paused: bool
    title: str | None
    image_key: str | None
    changed_by: str
    changed_at: datetime
    locked: bool = False  # a copy cached before migration 0020 has none

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> SlideRecord:
        return cls(
            session_id=row["session_id"],
            tenant_id=row["tenant_id"],
            room=row["room"],
            deck_id=row["deck_id"],
            index=row["index"],
            count=row["slide_count"],
            version=row["version"],
            paused=row["paused"],
            locked=row["locked"],
            title=row["title"],
            image_key=row["image_key"],
            changed_by=row["changed_by"],
            changed_at=row["changed_at"],
        )

    def to_json(self) -> str:
        return json.dumps(asdict(self), default=str, separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str) -> SlideRecord:
        data = json.loads(raw)
        return cls(
            **{
                **data,
                "session_id": UUID(data["session_id"]),
                "tenant_id": UUID(data["tenant_id"]),
                "deck_id": UUID(data["deck_id"]),
                "changed_at": datetime.fromisoformat(data["changed_at"]),
            }
        )

    def state(self, signer: UrlSigner) -> SlideState:
        # Signed at read time: a cached or queued record never carries an expired URL.
        return SlideState(
            session_id=self.session_id,
            deck_id=self.deck_id,
            index=self.index,
            count=self.count,
            version=self.version,
            title=self.title,
            image_url=signer.url(self.image_key) if self.image_key else None,
            paused=self.paused,
            locked=self.locked,
            changed_by=self.changed_by,
            changed_at=self.changed_at,
        )


# KEYS[1] = key/channel; ARGV = version, record JSON, ttl seconds, message ('' = don't publish).
# Publishing only what was newer keeps each channel's versions increasing.
_STORE_IF_NEWER = """
local current = tonumber(redis.call('HGET', KEYS[1], 'version') or '0')
if current >= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'version', ARGV[1], 'record', ARGV[2])
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3]))
if ARGV[4] ~= '' then redis.call('PUBLISH', KEYS[1], ARGV[4]) end
return 1
"""


class SlideCache:
    def __init__(self, redis: Redis, ttl_s: int = 3600, timeout_s: float = 1.0) -> None:
        self._redis = redis
        # A bounded life, so a copy left stale by a Redis blip cannot outlive it.
        self._ttl_s = ttl_s
        # Redis is an accelerator here: a hung call must not hold up a change Postgres applied.
        self._timeout_s = timeout_s
        self._store = redis.register_script(_STORE_IF_NEWER)

    async def _bounded(self, call: Awaitable[_T]) -> _T:
        try:
            async with asyncio.timeout(self._timeout_s):
                return await call
        except TimeoutError as exc:
            raise RedisTimeout("Redis did not answer in time") from exc

    async def get(self, session_id: UUID) -> SlideRecord | None:
        raw = await self._bounded(self._redis.hget(channel(session_id), "record"))
        if not raw:
            return None
        return SlideRecord.from_json(raw if isinstance(raw, str) else raw.decode())

    async def version(self, session_id: UUID) -> int:
        raw = await self._bounded(self._redis.hget(channel(session_id), "version"))
        return int(raw) if raw else 0

    async def store(self, record: SlideRecord, message: str | None = None) -> bool:
        """Keep ``record`` if it is newer than the cached one and then publish ``message``;
        False when the cache already held this version or a later one."""
        stored = await self._bounded(
            self._store(
                keys=[channel(record.session_id)],
                args=[record.version, record.to_json(), self._ttl_s, message or ""],
            )
        )
        return bool(stored)
