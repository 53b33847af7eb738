"""A long-lived LibreOffice for PPTX → PDF, so a deck does not pay a cold ``soffice`` start.

A cold start costs ~2.5 s of the ~4 s a 100-slide PPTX takes to ingest. Here one headless
LibreOffice is started on the first PPTX deck (``uno_driver.py``, run by the system Python that has
Debian's python3-uno) and reused, one conversion at a time, under the same isolation as the
per-deck parsers: a minimal environment, no network where the system allows a namespace, and an
address-space limit. It is bounded:

- a conversion that outlives ``timeout_s`` (a hung office) kills the whole process group; the
  next conversion starts a fresh office;
- after ``max_conversions`` conversions, or when the office's resident memory passes
  ``max_rss_bytes``, it is stopped and the next conversion starts a fresh one;
- ``aclose`` (the app's shutdown) stops it.

Without python3-uno the caller falls back to a cold ``soffice --convert-to`` per deck.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from control_plane.decks.isolation import minimal_env, network_namespace, write_launcher

logger = logging.getLogger(__name__)

DRIVER = Path(__file__).with_name("uno_driver.py")
# Debian's python3-uno is built for the system interpreter; the control plane may run another.
UNO_PYTHONS = ("/usr/bin/python3",)


def find_uno_python() -> str | None:
    """The first system Python that can ``import uno``, or None."""
    for python in UNO_PYTHONS:
        if not os.access(python, os.X_OK):
            continue
        try:
            done = subprocess.run(
                [python, "-c", "import uno"], capture_output=True, timeout=30, check=False
            )
        except (OSError, subprocess.TimeoutExpired):
            continue
        if done.returncode == 0:
            return python
    return None


@dataclass(frozen=True)
class ConverterBounds:
    timeout_s: float = 120.0  # one conversion, including a fresh office's start
    memory_bytes: int = 2 * 1024**3  # the office's address space (as for the parsers)
    max_conversions: int = 50  # then a fresh office: LibreOffice's caches only grow
    max_rss_bytes: int = 1024**3


class _Office:
    """One running driver and its office; killed whole (its own process group)."""

    def __init__(self, process: asyncio.subprocess.Process, pid: int) -> None:
        self.process = process
        self.pid = pid  # the office's launcher process (soffice / oosplash)
        self.conversions = 0

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)

    async def kill_and_wait(self, grace_s: float = 5.0) -> None:
        """Kill the group, reap the driver, and wait (bounded) until the office itself is gone:
        it is no child of ours, and a killed office can take a moment to let go of its memory,
        which the next office must not share the bound with."""
        self.kill()
        await self.process.wait()
        deadline = asyncio.get_running_loop().time() + grace_s
        while self.pid and _running(self.pid):
            if asyncio.get_running_loop().time() > deadline:
                logger.warning("killed office still running", extra={"pid": self.pid})
                return
            await asyncio.sleep(0.02)


def _running(pid: int) -> bool:
    """Whether the process exists and is not a zombie (an orphan waits for init to reap it)."""
    try:
        os.kill(pid, 0)
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[-1][:1]
    except (ProcessLookupError, FileNotFoundError):
        return False
    return state not in ("Z", "X")


class PptxConverter:
    """Converts sanitised PPTX packages (see ``extract_pptx.without_external_links``) to PDF."""

    def __init__(
        self, python: str, soffice: str, bounds: ConverterBounds = ConverterBounds()
    ) -> None:
        self._python = python
        self._soffice = soffice
        self._bounds = bounds
        self._lock = asyncio.Lock()  # one conversion at a time
        self._office: _Office | None = None
        self._home = Path(tempfile.mkdtemp(prefix="podium-converter-"))
        self._launcher: Path | None = None
        self._closed = False

    @classmethod
    def from_system(cls, bounds: ConverterBounds = ConverterBounds()) -> PptxConverter | None:
        """A converter when this system has LibreOffice and python3-uno, else None."""
        soffice = shutil.which("soffice")
        python = find_uno_python() if soffice else None
        if soffice is None or python is None:
            logger.warning(
                "no python3-uno: each pptx deck starts a cold LibreOffice",
                extra={"soffice": soffice},
            )
            return None
        return cls(python, soffice, bounds)

    @property
    def pid(self) -> int | None:
        """The running office's process id (None before the first conversion or after a stop)."""
        return self._office.pid if self._office is not None else None

    async def convert(self, package: bytes) -> bytes | None:
        """The package as PDF (hidden slides included), or None when LibreOffice failed or
        timed out on it; the failure is logged."""
        async with self._lock:
            if self._closed:
                raise RuntimeError("converter closed")
            with tempfile.TemporaryDirectory(prefix="deck-", dir=self._home) as tmp:
                source, target = Path(tmp) / "deck.pptx", Path(tmp) / "deck.pdf"
                await asyncio.to_thread(source.write_bytes, package)
                try:
                    reply = await asyncio.wait_for(
                        self._request(str(source), str(target)), self._bounds.timeout_s
                    )
                except TimeoutError:
                    logger.warning(
                        "pptx to pdf conversion timed out; office killed",
                        extra={"timeout_s": self._bounds.timeout_s, "pid": self.pid},
                    )
                    await self._stop()
                    return None
                except asyncio.CancelledError:
                    # A reply may still come for this request: the office cannot be reused.
                    await asyncio.shield(self._stop())
                    raise
                except _OfficeGone as exc:
                    logger.warning("pptx converter stopped", extra={"reason": str(exc)})
                    await self._stop()
                    return None
                if not reply.get("ok") or not target.is_file():
                    logger.warning(
                        "pptx to pdf conversion failed", extra={"error": reply.get("error")}
                    )
                    return None
                pdf = await asyncio.to_thread(target.read_bytes)
                await self._recycle_if_spent(int(reply.get("rss", 0)))
                return pdf

    async def aclose(self) -> None:
        async with self._lock:
            self._closed = True
            office, self._office = self._office, None
            if office is not None:
                # EOF asks the driver to close the office; kill what is left after a grace.
                if office.process.stdin is not None:
                    office.process.stdin.close()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(office.process.wait(), 10)
                await office.kill_and_wait()
            shutil.rmtree(self._home, ignore_errors=True)

    async def _request(self, source: str, target: str) -> dict[str, Any]:
        office = self._office or await self._start()
        office.conversions += 1
        assert office.process.stdin is not None
        office.process.stdin.write(json.dumps({"src": source, "dst": target}).encode() + b"\n")
        await office.process.stdin.drain()
        return await self._read(office)

    async def _start(self) -> _Office:
        if self._launcher is None:
            prefix = await asyncio.to_thread(network_namespace)
            self._launcher = write_launcher(
                self._home, self._python, minimal_env(self._home), prefix or []
            )
        process = await asyncio.create_subprocess_exec(
            str(self._launcher),
            str(DRIVER),
            self._soffice,
            (self._home / "profile").as_uri(),
            str(self._bounds.memory_bytes),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            cwd=self._home,
            start_new_session=True,  # its own process group: a kill takes the office with it
        )
        office = _Office(process, pid=0)
        self._office = office
        ready = await self._read(office)
        office.pid = int(ready["pid"])
        logger.info("pptx converter started", extra={"pid": office.pid})
        return office

    async def _read(self, office: _Office) -> dict[str, Any]:
        assert office.process.stdout is not None
        line = await office.process.stdout.readline()
        if not line:
            raise _OfficeGone(f"exit code {await office.process.wait()}")
        message: dict[str, Any] = json.loads(line)
        return message

    async def _recycle_if_spent(self, rss: int) -> None:
        office = self._office
        if office is None:
            return
        if office.conversions >= self._bounds.max_conversions or rss > self._bounds.max_rss_bytes:
            logger.info(
                "pptx converter recycled",
                extra={"pid": office.pid, "conversions": office.conversions, "rss": rss},
            )
            await self._stop()

    async def _stop(self) -> None:
        office, self._office = self._office, None
        if office is not None:
            await office.kill_and_wait()


class _OfficeGone(Exception):
    """The driver exited (the office crashed or could not start)."""
