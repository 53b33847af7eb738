"""Parsing untrusted files in a child process bounded in time and memory.

A hostile deck can make a parser spin or allocate without end; running it in a forkserver child
with an address-space limit and a deadline means the worst it can do is lose its own process.
The forkserver, and so every child and the LibreOffice it starts, is launched with a minimal
environment and, where the system allows, in a network namespace of its own (``isolate``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing as mp
import resource
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, TypeVar

from control_plane.decks.isolation import (
    PARSERS_ISOLATED,
    minimal_env,
    network_namespace,
    write_launcher,
)
from control_plane.decks.limits import DeckRejected

logger = logging.getLogger(__name__)

T = TypeVar("T")
Progress = Callable[[int, int], None]

_CTX = mp.get_context("forkserver")
_CTX.set_forkserver_preload(["control_plane.decks.extract"])
_isolated: bool | None = None
_isolating = threading.Lock()


def isolate() -> bool:
    """Launch the forkserver (when it first starts) with a minimal environment and, where this
    system allows, without network; True when the network is cut off. The first call decides
    and logs; call it at start-up (``run_bounded`` calls it too, before any child starts)."""
    global _isolated
    with _isolating:
        if _isolated is None:
            home = Path(tempfile.mkdtemp(prefix="podium-parsers-"))
            prefix = network_namespace()
            # multiprocessing has one executable for all its children; the control plane starts
            # no other kind.
            _CTX.set_executable(
                str(write_launcher(home, sys.executable, minimal_env(home), prefix or []))
            )
            _isolated = prefix is not None
            PARSERS_ISOLATED.set(1 if _isolated else 0)
            if _isolated:
                logger.info("deck parsers run without network", extra={"namespace": prefix})
            else:
                logger.warning(
                    "deck parsers run WITH network access: this system allows no network "
                    "namespace (unshare needs CAP_SYS_ADMIN or user namespaces), so LibreOffice "
                    "can reach what the control plane can; restrict its egress"
                )
        return _isolated


@dataclass(frozen=True)
class Bounds:
    timeout_s: float = 120.0
    memory_bytes: int = 2 * 1024**3


class SandboxFailed(Exception):
    """The child ran out of time or memory, or crashed; ``reason`` says which."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _child(
    conn: Connection, memory_bytes: int, fn: Callable[..., Any], args: tuple[Any, ...]
) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))

    def progress(done: int, total: int) -> None:
        conn.send(("progress", done, total))

    try:
        conn.send(("ok", fn(*args, progress=progress)))
    except DeckRejected as exc:
        conn.send(("rejected", exc.code, exc.message))
    except MemoryError:
        conn.send(("failed", "memory"))
    except BaseException as exc:  # reported to the parent, which decides what it means
        conn.send(("failed", f"{type(exc).__name__}: {exc}"[:500]))
    finally:
        conn.close()


def _supervise(
    fn: Callable[..., T], args: tuple[Any, ...], bounds: Bounds, on_progress: Progress | None
) -> T:
    isolate()
    parent, child = _CTX.Pipe(duplex=False)
    proc = _CTX.Process(target=_child, args=(child, bounds.memory_bytes, fn, args), daemon=True)
    proc.start()
    child.close()
    end = time.monotonic() + bounds.timeout_s
    try:
        while True:
            remaining = end - time.monotonic()
            if remaining <= 0:
                raise SandboxFailed("timeout")
            if not parent.poll(min(remaining, 0.5)):
                if not proc.is_alive() and not parent.poll():
                    raise SandboxFailed(f"crashed (exit code {proc.exitcode})")
                continue
            try:
                message = parent.recv()
            except EOFError as exc:
                raise SandboxFailed(f"crashed (exit code {proc.exitcode})") from exc
            match message:
                case ("progress", done, total):
                    if on_progress is not None:
                        on_progress(done, total)
                case ("ok", result):
                    return result  # type: ignore[no-any-return]
                case ("rejected", code, text):
                    raise DeckRejected(code, text)
                case ("failed", reason):
                    raise SandboxFailed(reason)
    finally:
        parent.close()
        if proc.is_alive():
            proc.kill()
        proc.join(5)


async def run_bounded(
    fn: Callable[..., T],
    *args: Any,
    bounds: Bounds = Bounds(),
    on_progress: Progress | None = None,
) -> T:
    """Run ``fn(*args, progress=...)`` in a bounded child; ``on_progress`` runs on this loop."""
    loop = asyncio.get_running_loop()

    def forward(done: int, total: int) -> None:
        if on_progress is not None:
            with contextlib.suppress(RuntimeError):  # loop closed during shutdown
                loop.call_soon_threadsafe(on_progress, done, total)

    return await asyncio.to_thread(_supervise, fn, args, bounds, forward)
