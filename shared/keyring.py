"""Key rings: the keys one purpose signs with (session credentials, asset URLs, fleet tokens).

A ring is the comma-separated value of a ``PODIUM_*_KEYS`` setting. The first key signs; every
key verifies. A key rotates without downtime: prepend the new one and deploy (both verify),
then, once what the old one signed has expired, drop it and deploy again. JWTs name their key in
a ``kid`` header (a digest of the key, never the key).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence


def key_id(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:16]


class KeyRing:
    def __init__(self, keys: Sequence[str]) -> None:
        if not keys or any(not key for key in keys):
            raise ValueError("a key ring needs at least one key, and no empty ones")
        self.keys = tuple(keys)
        self._by_id = {key_id(key): key for key in self.keys}

    @classmethod
    def parse(cls, value: str) -> KeyRing:
        return cls([key.strip() for key in value.split(",")])

    @classmethod
    def of(cls, keys: KeyRing | str) -> KeyRing:
        """A ring, or a single secret taken as a ring of one."""
        return keys if isinstance(keys, KeyRing) else cls([keys])

    @property
    def signing_key(self) -> str:
        return self.keys[0]

    @property
    def signing_kid(self) -> str:
        return key_id(self.keys[0])

    def candidates(self, kid: object) -> tuple[str, ...]:
        """The keys that may have signed a token naming ``kid``: that one, or (a token without
        a ``kid``, signed before rings existed) every key."""
        if kid is None:
            return self.keys
        key = self._by_id.get(str(kid))
        return (key,) if key is not None else ()
