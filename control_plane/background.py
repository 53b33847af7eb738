"""A loop owned by the app's lifespan: started on entering, cancelled and awaited on leaving."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Self


class BackgroundLoop:
    name = "background_loop"
    _task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        raise NotImplementedError

    async def _after_stop(self) -> None:
        """Release what the loop held, once it has stopped (override when there is any)."""

    async def __aenter__(self) -> Self:
        self._task = asyncio.create_task(self._run(), name=self.name)
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._after_stop()
