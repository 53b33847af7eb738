"""Read-only links to a deck's analytics page, for people without an API key (a sales team).

``POST /v1/decks/{id}/analytics/link`` mints an HS256 token over the asset-URL key ring with
its own audience, so it is never mistaken for another credential: it names the tenant, the
deck and the key that minted it, and lives at most a day. It opens that deck's analytics and
nothing else; its reads are audited under the minting key, and revoking that key ends it.
The page gets it in the URL fragment, which browsers never send to a server.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from uuid import UUID

from shared.credentials import CredentialError, decode, sign
from shared.keyring import KeyRing

AUDIENCE = "podium-analytics"
ISSUER = "podium-control-plane"


@dataclass(frozen=True)
class LinkClaims:
    tenant_id: UUID
    deck_id: UUID
    key_id: UUID
    expires_at: int


def mint(keys: KeyRing | str, claims: LinkClaims) -> str:
    return sign(
        keys,
        {
            "aud": AUDIENCE,
            "iss": ISSUER,
            "iat": int(time.time()),
            "exp": claims.expires_at,
            "sub": str(claims.deck_id),
            "tenant": str(claims.tenant_id),
            "key": str(claims.key_id),
            "scope": "analytics:read",
        },
    )


def looks_like_link(token: str) -> bool:
    """A JWT (three dot-separated parts); API keys are ``pdm_…`` with no dot."""
    return token.count(".") == 2


def verify(keys: KeyRing | str, token: str) -> LinkClaims:
    claims = decode(keys, token, audience=AUDIENCE, issuer=ISSUER)
    try:
        return LinkClaims(
            tenant_id=UUID(claims["tenant"]),
            deck_id=UUID(claims["sub"]),
            key_id=UUID(claims["key"]),
            expires_at=int(claims["exp"]),
        )
    except (KeyError, ValueError, TypeError) as exc:
        raise CredentialError("malformed analytics link") from exc
