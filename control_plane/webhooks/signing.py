"""How a delivery is signed, and how a receiver checks it.

Headers: ``Podium-Webhook-Id`` (the delivery id; the same on every retry, for de-duplication),
``Podium-Webhook-Timestamp`` (Unix seconds of this attempt) and ``Podium-Signature:
v1=<hex>``, the HMAC-SHA256 of ``"{timestamp}.{body}"`` under the endpoint's secret. A receiver
recomputes it over the raw body and refuses a timestamp more than five minutes off.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time

TOLERANCE_SECONDS = 300


def new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


def signature(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "v1=" + mac.hexdigest()


def verify(
    secret: str, timestamp: str, body: bytes, signed: str, *, now: float | None = None
) -> bool:
    """What an integrator runs on each delivery (also used by our tests)."""
    try:
        stamp = int(timestamp)
    except ValueError:
        return False
    if abs((now if now is not None else time.time()) - stamp) > TOLERANCE_SECONDS:
        return False
    expected = signature(secret, stamp, body)
    return any(hmac.compare_digest(expected, part.strip()) for part in signed.split(","))
