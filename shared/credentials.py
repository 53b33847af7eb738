"""Session-scoped credentials the control plane mints for worker jobs.

A worker job receives one in its dispatch metadata and may use it only for that session's
internal API routes. They are HS256 JWTs signed with the session-credential key ring
(``PODIUM_SESSION_CREDENTIAL_KEYS``), which only the control plane holds. Each is bound to one
dispatch of the session (``dispatch``: the session's dispatch count when it was minted), so a
re-dispatch revokes the previous job's; it lives minutes, and the job renews it while the
session is live.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import jwt

from shared.keyring import KeyRing

_AUDIENCE = "podium-internal"
_ISSUER = "podium-control-plane"


class CredentialError(Exception):
    """The credential is malformed, expired, or not signed by us."""


@dataclass(frozen=True)
class SessionClaims:
    session_id: UUID
    dispatch: int
    expires_at: int


def sign(keys: KeyRing | str, claims: dict[str, Any]) -> str:
    ring = KeyRing.of(keys)
    return jwt.encode(
        claims, ring.signing_key, algorithm="HS256", headers={"kid": ring.signing_kid}
    )


def decode(keys: KeyRing | str, token: str, *, audience: str, issuer: str) -> dict[str, Any]:
    """The verified claims of a token signed by a key of the ring."""
    try:
        kid = jwt.get_unverified_header(token).get("kid")
    except jwt.PyJWTError as exc:
        raise CredentialError(str(exc)) from exc
    candidates = KeyRing.of(keys).candidates(kid)
    if not candidates:
        raise CredentialError("signed by a key that is not in the ring")
    for key in candidates:
        try:
            claims: dict[str, Any] = jwt.decode(
                token, key, algorithms=["HS256"], audience=audience, issuer=issuer
            )
            return claims
        except jwt.InvalidSignatureError as exc:
            error: Exception = exc
        except jwt.PyJWTError as exc:
            raise CredentialError(str(exc)) from exc
    raise CredentialError(str(error)) from error


def mint_session_credential(
    keys: KeyRing | str, session_id: UUID, dispatch: int, ttl_seconds: int
) -> str:
    now = int(time.time())
    claims = {
        "sub": str(session_id),
        "aud": _AUDIENCE,
        "iss": _ISSUER,
        "iat": now,
        "exp": now + ttl_seconds,
        "scope": "session",
        "dispatch": dispatch,
    }
    return sign(keys, claims)


def verify_session_credential(keys: KeyRing | str, token: str) -> SessionClaims:
    """The session and dispatch the credential is bound to (the caller checks both are current)."""
    claims = decode(keys, token, audience=_AUDIENCE, issuer=_ISSUER)
    try:
        if claims.get("scope") != "session":
            raise CredentialError("not a session credential")
        dispatch = claims["dispatch"]
        if not isinstance(dispatch, int) or isinstance(dispatch, bool):
            raise CredentialError("the credential is bound to no dispatch")
        return SessionClaims(UUID(claims["sub"]), dispatch, int(claims["exp"]))
    except (KeyError, ValueError, TypeError) as exc:
        raise CredentialError(str(exc)) from exc
