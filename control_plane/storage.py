"""Asset storage behind a small interface; the local filesystem by default.

Keys are ours (``decks/<uuid>/slide-001.jpg``), never a user's file name, and are checked so a
key can never leave the storage root.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import shutil
import time
from pathlib import Path
from typing import Protocol

from shared.keyring import KeyRing

_KEY_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]*(/[a-z0-9][a-z0-9_.-]*)*$")


class InvalidKey(ValueError):
    pass


def check_key(key: str) -> str:
    if not _KEY_RE.match(key) or ".." in key or len(key) > 300:
        raise InvalidKey(f"invalid asset key {key!r}")
    return key


class AssetStorage(Protocol):
    async def put_bytes(self, key: str, data: bytes) -> None: ...
    async def put_file(self, key: str, source: Path) -> None: ...
    async def get_bytes(self, key: str) -> bytes: ...
    async def delete_prefix(self, prefix: str) -> None: ...
    async def delete_tree(self, key: str) -> int:
        """Delete a key, or every key under it, and say how many files went; one already gone
        is fine, any other failure raises ``OSError`` (so the caller can try again later)."""
        ...

    def local_path(self, key: str) -> Path | None:
        """A path the web server may stream from, when the backend is local."""
        ...


class LocalStorage:
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    async def put_bytes(self, key: str, data: bytes) -> None:
        await asyncio.to_thread(self._write, self._path(key), data)

    @staticmethod
    def _write(path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_bytes(data)
        tmp.replace(path)  # readers never see a half-written file

    async def put_file(self, key: str, source: Path) -> None:
        path = self._path(key)

        def move() -> None:
            path.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(source, path)

        await asyncio.to_thread(move)

    async def get_bytes(self, key: str) -> bytes:
        return await asyncio.to_thread(self._path(key).read_bytes)

    async def delete_prefix(self, prefix: str) -> None:
        path = self._path(prefix.rstrip("/"))
        await asyncio.to_thread(shutil.rmtree, path, True)

    async def delete_tree(self, key: str) -> int:
        return await asyncio.to_thread(self._delete_tree, self._path(key.rstrip("/")))

    @staticmethod
    def _delete_tree(path: Path) -> int:
        try:
            if path.is_dir() and not path.is_symlink():
                files = sum(1 for p in path.rglob("*") if not p.is_dir())
                shutil.rmtree(path)
                return files
            path.unlink()
        except FileNotFoundError:
            return 0
        return 1

    def local_path(self, key: str) -> Path | None:
        path = self._path(key)
        return path if path.is_file() else None


class UrlSigner:
    """Short-lived signed asset URLs, so browsers can load slide images without an API key.

    Signed with the first key of the asset-URL ring; a URL signed by any key of it verifies."""

    def __init__(self, keys: KeyRing | str, base_url: str, ttl_s: int = 3600) -> None:
        self._secrets = [key.encode() for key in KeyRing.of(keys).keys]
        self._base = base_url.rstrip("/")
        self._ttl_s = ttl_s

    @staticmethod
    def _sig(secret: bytes, key: str, expires: int) -> str:
        msg = f"{key}\n{expires}".encode()
        return hmac.new(secret, msg, hashlib.sha256).hexdigest()[:32]

    def url(self, key: str) -> str:
        # Expiry rounded up to the minute, so URLs stay cacheable for a while.
        expires = (int(time.time()) + self._ttl_s) // 60 * 60 + 60
        sig = self._sig(self._secrets[0], key, expires)
        return f"{self._base}/assets/{key}?exp={expires}&sig={sig}"

    def verify(self, key: str, expires: int, sig: str) -> bool:
        return expires >= time.time() and any(
            hmac.compare_digest(sig, self._sig(secret, key, expires)) for secret in self._secrets
        )
