"""What deck parsers and LibreOffice may reach: an almost empty environment and, where the
system allows it, no network at all.

The control plane's environment holds its secrets (database URL, LiveKit and internal secrets,
provider keys); a parser of untrusted files needs none of them, so its processes start from
``minimal_env``. A network namespace of their own (``unshare --net``: only a loopback interface,
down) means a deck's links to external images, and anything worse a parser could be made to do,
reach nothing. Creating one needs CAP_SYS_ADMIN, or unprivileged user namespaces; without
either (a locked-down container) parsers keep the host's network, with a warning at start-up
and ``podium_deck_parsers_network_isolated`` at 0, and the pod's NetworkPolicy is what remains.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from pathlib import Path

from prometheus_client import Gauge

PARSERS_ISOLATED = Gauge(
    "podium_deck_parsers_network_isolated",
    "1 when deck parsers and LibreOffice run without network (a network namespace of their "
    "own), 0 when this system does not allow one.",
)

# Tried in order: root (or CAP_SYS_ADMIN) needs no user namespace; an unprivileged user may
# still create one where the kernel and the container's seccomp profile allow it.
_NAMESPACES = (["--net"], ["--user", "--map-root-user", "--net"])


def minimal_env(home: Path) -> dict[str, str]:
    """Everything a parser or LibreOffice needs from the environment: where programs are, a
    locale, a home of its own, and the temporary directory if one was chosen."""
    env = {
        "PATH": os.environ.get("PATH", os.defpath),
        "LANG": os.environ.get("LANG", "C.UTF-8"),
        "HOME": str(home),
    }
    if tmp := os.environ.get("TMPDIR"):
        env["TMPDIR"] = tmp
    return env


def network_namespace(unshare: str | None = None) -> list[str] | None:
    """The command prefix that runs a program in a network namespace of its own here, or None
    when this system allows none (or has no ``unshare``)."""
    unshare = unshare or shutil.which("unshare")
    if unshare is None:
        return None
    for flags in _NAMESPACES:
        command = [unshare, *flags, "--"]
        try:
            done = subprocess.run([*command, "true"], capture_output=True, timeout=10, check=False)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if done.returncode == 0:
            return command
    return None


def write_launcher(directory: Path, python: str, env: dict[str, str], prefix: list[str]) -> Path:
    """A script that starts ``python`` with exactly ``env`` behind ``prefix``, passing its
    arguments (and open descriptors) through."""
    command = [shutil.which("env") or "/usr/bin/env", "-i", *(f"{k}={v}" for k, v in env.items())]
    launcher = directory / "python"
    launcher.write_text(f'#!/bin/sh\nexec {shlex.join([*command, *prefix, python])} "$@"\n')
    launcher.chmod(0o500)
    return launcher
