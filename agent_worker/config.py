"""What a job process needs from the worker's configuration.

Job processes are started by the framework (forkserver); they receive this picklable value
through the prewarm and entrypoint functions instead of reading the environment themselves.
It deliberately holds no secrets: a job authenticates with the credential in its dispatch.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class JobConfig:
    control_plane_url: str
    request_timeout_seconds: float
    piper_url: str | None
    """Base URL of the Piper child server; None when Piper is not in use."""
    espeak_binary: str | None
    """Path of ``espeak-ng``; None when it is not installed or not wanted."""
