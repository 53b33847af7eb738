"""An ordered, bounded send queue to the control plane that survives its restarts.

Records are queued as the session produces them and sent in order, in batches, by one task; a
failed send is retried with backoff (the control plane may be restarting) and the records'
ids make a resend harmless. The queue is bounded: a control plane gone for good costs the
oldest unsent records, never the worker's memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from .control_plane_client import ControlPlaneError

logger = logging.getLogger(__name__)

# Short: a control plane back from a restart gets the backlog within 2 s.
_RETRY_SECONDS = (0.25, 0.5, 1.0, 2.0)

T = TypeVar("T")


class Outbox(Generic[T]):
    def __init__(
        self,
        send: Callable[[list[T]], Awaitable[None]],
        *,
        name: str,
        batch: int = 20,
        max_pending: int = 1_000,
    ) -> None:
        self._send = send
        self._name = name
        self._batch = batch
        self._pending: deque[T] = deque(maxlen=max_pending)
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._hurry = asyncio.Event()  # a flush cuts a retry's wait short
        self._task = asyncio.create_task(self._send_forever(), name=name)

    def put(self, record: T) -> None:
        if len(self._pending) == self._pending.maxlen:
            logger.warning(
                "send backlog is full; dropping the oldest record", extra={"outbox": self._name}
            )
        self._pending.append(record)
        self._idle.clear()
        self._wake.set()

    @property
    def pending(self) -> int:
        return len(self._pending)

    async def flush(self, within_seconds: float = 5.0) -> bool:
        """Wait until every record so far reached the control plane; False if it took longer."""
        self._hurry.set()
        try:
            await asyncio.wait_for(self._idle.wait(), within_seconds)
        except TimeoutError:
            return False
        return True

    async def aclose(self, within_seconds: float = 5.0) -> None:
        if not await self.flush(within_seconds):
            logger.warning(
                "records left unsent at shutdown",
                extra={"outbox": self._name, "pending": len(self._pending)},
            )
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _send_forever(self) -> None:
        failures = 0
        while True:
            if not self._pending:
                self._idle.set()
                self._wake.clear()
                await self._wake.wait()
                continue
            batch = list(self._pending)[: self._batch]
            try:
                await self._send(batch)
            except ControlPlaneError as exc:
                if exc.status_code is not None and 400 <= exc.status_code < 500:
                    # Refused, not failed: resending the same records cannot succeed.
                    logger.error(
                        "control plane refused records; dropping them",
                        extra={"outbox": self._name, "status": exc.status_code},
                    )
                    self._drop(batch)
                    continue
                delay = _RETRY_SECONDS[min(failures, len(_RETRY_SECONDS) - 1)]
                failures += 1
                logger.warning(
                    "could not send records, retrying",
                    extra={"outbox": self._name, "status": exc.status_code, "retry_in": delay},
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._hurry.wait(), delay)
                self._hurry.clear()
                continue
            failures = 0
            self._drop(batch)

    def _drop(self, batch: list[T]) -> None:
        sent = {id(record) for record in batch}
        while self._pending and id(self._pending[0]) in sent:
            self._pending.popleft()
