"""Session-scoped credentials the control plane mints for worker jobs.

A worker job receives one in its dispatch metadata and may use it only for that session's
internal API routes. They are HS256 JWTs signed with ``PODIUM_INTERNAL_SECRET``.
"""

from __future__ import annotations

import time
from uuid import UUID

import jwt

_AUDIENCE = "podium-internal"
_ISSUER = "podium-control-plane"


class CredentialError(Exception):
    """The credential is malformed, expired, or not signed by us."""


def mint_session_credential(secret: str, session_id: UUID, ttl_seconds: int) -> str:
    now = int(time.time())
    claims = {
        "sub": str(session_id),
        "aud": _AUDIENCE,
        "iss": _ISSUER,
        "iat": now,
        "exp": now + ttl_seconds,
        "scope": "session",
    }
    return jwt.encode(claims, secret, algorithm="HS256")


def verify_session_credential(secret: str, token: str) -> UUID:
    """Return the session id the credential is scoped to."""
    try:
        claims = jwt.decode(token, secret, algorithms=["HS256"], audience=_AUDIENCE, issuer=_ISSUER)
        return UUID(claims["sub"])
    except (jwt.PyJWTError, KeyError, ValueError) as exc:
        raise CredentialError(str(exc)) from exc
