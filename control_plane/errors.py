"""Typed domain errors, mapped once to ``{"error": code, "message": sentence}`` responses.

Expected failures raise a subclass of :class:`PodiumError`; anything else reaching the client as
a 500 is a bug.
"""

from __future__ import annotations

import logging
import math
from typing import Any, Literal

import asyncpg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from redis.exceptions import RedisError
from starlette.exceptions import HTTPException as StarletteHTTPException

logger = logging.getLogger(__name__)


class PodiumError(Exception):
    status_code = 400
    code = "bad_request"

    def __init__(self, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers


class Unauthorized(PodiumError):
    status_code = 401
    code = "unauthorized"

    def __init__(self, message: str) -> None:
        super().__init__(message, headers={"WWW-Authenticate": "Bearer"})


class Forbidden(PodiumError):
    status_code = 403
    code = "forbidden"


class NotFound(PodiumError):
    status_code = 404
    code = "not_found"


class Conflict(PodiumError):
    status_code = 409
    code = "conflict"


class SessionEnded(Conflict):
    code = "session_ended"


class TooManyRequests(PodiumError):
    """Over a tenant limit (``control_plane.limits``). ``rate_limited``: too many requests in a
    time window, retrying after ``Retry-After`` succeeds; ``limit_exceeded``: too many things at
    once (uploads in flight, endpoints, live sessions), retrying succeeds once one is gone."""

    status_code = 429
    code = "rate_limited"

    def __init__(
        self,
        message: str,
        *,
        retry_after_s: float,
        code: Literal["rate_limited", "limit_exceeded"] = "rate_limited",
    ) -> None:
        self.retry_after_s = max(1, math.ceil(retry_after_s))
        super().__init__(message, headers={"Retry-After": str(self.retry_after_s)})
        self.code = code


class UpstreamUnavailable(PodiumError):
    """A dependency (LiveKit, Postgres, Redis) did not answer; the request may be retried."""

    status_code = 503
    code = "upstream_unavailable"


def _body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"error": code, "message": message, **extra}


def _describe(error: dict[str, Any]) -> str:
    where = ".".join(str(p) for p in error.get("loc", ()) if p != "body") or "body"
    return f"{where}: {error.get('msg', 'is invalid')}"


async def _podium_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, PodiumError)
    return JSONResponse(
        _body(exc.code, exc.message), status_code=exc.status_code, headers=exc.headers
    )


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    details = [
        {"field": ".".join(str(p) for p in e.get("loc", ())), "problem": e.get("msg")}
        for e in errors
    ]
    message = "; ".join(_describe(e) for e in errors[:5]) or "the request is invalid"
    return JSONResponse(
        _body("validation_error", f"Invalid request. {message}.", details=details),
        status_code=422,
    )


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    codes = {404: "not_found", 405: "method_not_allowed", 413: "too_large"}
    code = codes.get(exc.status_code, "http_error")
    message = exc.detail if isinstance(exc.detail, str) else "request failed"
    if exc.status_code == 404 and message == "Not Found":
        message = "No such route. See /docs for the API."
    return JSONResponse(
        _body(code, message), status_code=exc.status_code, headers=getattr(exc, "headers", None)
    )


async def _redis_error(request: Request, exc: Exception) -> JSONResponse:
    # Postgres holds the truth, so most routes never need Redis; the few that do (the fleet
    # view, a job's liveness report) answer a retryable 503 while it is away, never a 500.
    logger.warning(
        "redis unavailable", extra={"route": request.url.path, "error": type(exc).__name__}
    )
    return JSONResponse(
        _body("upstream_unavailable", "A dependency (Redis) did not answer; retry shortly."),
        status_code=503,
        headers={"Retry-After": "2"},
    )


# Postgres is away (restarting, failing over): connecting is refused, or a pooled connection
# died with the server. The pool replaces dead connections on their next use, so the same
# request succeeds once Postgres is back; until then it is a retryable 503, never a 500.
POSTGRES_UNAVAILABLE: tuple[type[Exception], ...] = (
    ConnectionError,  # refused or reset while the pool connects
    asyncpg.PostgresConnectionError,  # the connection is gone, or the server refused it
    asyncpg.CannotConnectNowError,  # the server is starting up or shutting down
    asyncpg.AdminShutdownError,  # a fast shutdown ended the connection mid-query
    asyncpg.CrashShutdownError,
)


async def _postgres_error(request: Request, exc: Exception) -> JSONResponse:
    logger.warning(
        "postgres unavailable", extra={"route": request.url.path, "error": type(exc).__name__}
    )
    return JSONResponse(
        _body("upstream_unavailable", "A dependency (Postgres) did not answer; retry shortly."),
        status_code=503,
        headers={"Retry-After": "2"},
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(PodiumError, _podium_error)
    app.add_exception_handler(RedisError, _redis_error)
    for kind in POSTGRES_UNAVAILABLE:
        app.add_exception_handler(kind, _postgres_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
