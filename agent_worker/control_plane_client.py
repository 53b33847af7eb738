"""The worker's client for the control plane's internal API."""

from __future__ import annotations

import asyncio
import logging
from types import TracebackType
from typing import Self
from uuid import UUID

import httpx
from pydantic import ValidationError

from shared.schemas import SessionContext

logger = logging.getLogger(__name__)

_MAX_ATTEMPTS = 3
_BACKOFF_SECONDS = 0.25


class ControlPlaneError(Exception):
    """The control plane was unreachable or answered with something we cannot use."""

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


class SessionNotFoundError(ControlPlaneError):
    """The session does not exist, or no longer does: the job has nothing to present."""


class ControlPlaneClient:
    def __init__(
        self,
        base_url: str,
        *,
        timeout_seconds: float,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._http = httpx.AsyncClient(
            base_url=base_url, timeout=httpx.Timeout(timeout_seconds), transport=transport
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def get_session_context(self, session_id: UUID, credential: str) -> SessionContext:
        response = await self._request(
            "GET", f"/internal/v1/sessions/{session_id}/context", credential=credential
        )
        try:
            return SessionContext.model_validate_json(response.content)
        except ValidationError as exc:
            raise ControlPlaneError("session context did not match the schema") from exc

    async def report_agent_joined(self, session_id: UUID, credential: str) -> None:
        await self._request(
            "POST", f"/internal/v1/sessions/{session_id}/agent-joined", credential=credential
        )

    async def _request(self, method: str, path: str, *, credential: str) -> httpx.Response:
        """Send one request, retrying briefly when the control plane is down or failing.

        Retried: the connection was never made, or the server answered 5xx (every internal
        route is idempotent). Not retried: a read timeout, as the request may have landed.
        Every internal route is scoped to one session, so 404 means that session is gone.
        """
        headers = {"Authorization": f"Bearer {credential}"}
        for attempt in range(1, _MAX_ATTEMPTS + 1):
            last_attempt = attempt == _MAX_ATTEMPTS
            try:
                response = await self._http.request(method, path, headers=headers)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                if last_attempt:
                    raise ControlPlaneError("control plane is unreachable") from exc
                logger.warning(
                    "control plane unreachable, retrying", extra={"path": path, "attempt": attempt}
                )
            except httpx.HTTPError as exc:
                raise ControlPlaneError("control plane request failed") from exc
            else:
                if response.is_success:
                    return response
                if response.status_code == httpx.codes.NOT_FOUND:
                    raise SessionNotFoundError("session not found", status_code=404)
                if response.is_server_error and not last_attempt:
                    logger.warning(
                        "control plane answered with a server error, retrying",
                        extra={"path": path, "status": response.status_code, "attempt": attempt},
                    )
                else:
                    raise ControlPlaneError(
                        "control plane refused the request", status_code=response.status_code
                    )
            await asyncio.sleep(_BACKOFF_SECONDS * 2 ** (attempt - 1))
        raise AssertionError("unreachable: the last attempt returns or raises")
