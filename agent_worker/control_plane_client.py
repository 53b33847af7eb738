"""The worker's client for the control plane's internal API."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal, Self, TypeVar
from uuid import UUID

import httpx
import jwt
from pydantic import BaseModel, ValidationError

from shared.schemas import (
    ConversationBatch,
    ConversationMessage,
    DeckSearchResult,
    Escalation,
    EscalationRequest,
    JobAlive,
    SessionContext,
    SessionCredential,
    SlideAction,
    SlideChange,
    SlideContent,
    SlideState,
    TurnBatch,
    TurnRecord,
)
from shared.usage import UsageReport

from .tls import tls_context

_Model = TypeVar("_Model", bound=BaseModel)

logger = logging.getLogger(__name__)

_MAX_ATTEMPTS = 3
_BACKOFF_SECONDS = 0.25
# A failed renewal (the control plane away, the session ended) is tried again this much later;
# meanwhile the job keeps using the credential it has.
_RENEW_RETRY_SECONDS = 10.0


class ControlPlaneError(Exception):
    """The control plane was unreachable or answered with something we cannot use."""

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


class SessionNotFoundError(ControlPlaneError):
    """The session does not exist, or no longer does: the job has nothing to present."""


class ControlPlaneRefused(ControlPlaneError):
    """The control plane understood and refused (409/422): ``code`` is its machine code and the
    message its human sentence ("The deck has 8 slides…"), fit to read back to the model."""

    def __init__(self, code: str, message: str, *, status_code: int) -> None:
        super().__init__(message, status_code=status_code)
        self.code = code
        self.message = message


@dataclass
class _Renewal:
    """The credential a job's dispatch credential has been renewed into, and when to renew."""

    current: str
    renew_at: float
    session_id: str


def _renewal(credential: str) -> _Renewal | None:
    """When a session credential should be renewed: half-way through its life. The worker cannot
    verify it (it holds no session key) and need not: it reads its own credential's times."""
    try:
        claims = jwt.decode(credential, options={"verify_signature": False})
        issued, expires = float(claims["iat"]), float(claims["exp"])
        return _Renewal(credential, issued + (expires - issued) / 2, str(claims["sub"]))
    except (jwt.PyJWTError, KeyError, TypeError, ValueError):
        return None  # not a credential we can read: used as it is


class ControlPlaneClient:
    def __init__(
        self,
        base_url: str,
        *,
        timeout_seconds: float,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._http = httpx.AsyncClient(
            base_url=base_url,
            timeout=httpx.Timeout(timeout_seconds),
            transport=transport,
            verify=tls_context(),
        )
        # Keyed by the credential of the job's dispatch metadata, which callers keep passing.
        self._renewals: dict[str, _Renewal | None] = {}
        self._renew_lock = asyncio.Lock()

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

    def for_session(self, session_id: UUID, credential: str) -> SessionApi:
        return SessionApi(self, session_id, credential)

    async def _request(
        self,
        method: str,
        path: str,
        *,
        credential: str,
        params: dict[str, Any] | None = None,
        json: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        content: bytes | None = None,
    ) -> httpx.Response:
        """Send one request, retrying briefly when the control plane is down or failing.

        Retried: the connection was never made, or the server answered 5xx (every internal
        route is idempotent; slide changes carry an ``Idempotency-Key``). Not retried: a read
        timeout, as the request may have landed.
        Every internal route is scoped to one session, so 404 means that session is gone.
        """
        credential = await self._current(credential)
        headers = {**(headers or {}), "Authorization": f"Bearer {credential}"}
        for attempt in range(1, _MAX_ATTEMPTS + 1):
            last_attempt = attempt == _MAX_ATTEMPTS
            try:
                response = await self._http.request(
                    method, path, headers=headers, params=params, json=json, content=content
                )
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
                if response.status_code in (httpx.codes.CONFLICT, 422):
                    raise _refusal(response)
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

    async def _current(self, credential: str) -> str:
        """The credential to send for the job holding ``credential``, renewed past half-life."""
        if credential not in self._renewals:
            self._renewals[credential] = _renewal(credential)
        renewal = self._renewals[credential]
        if renewal is None or time.time() < renewal.renew_at:
            return credential if renewal is None else renewal.current
        async with self._renew_lock:
            if time.time() >= renewal.renew_at:
                await self._renew(renewal)
        return renewal.current

    async def _renew(self, renewal: _Renewal) -> None:
        path = f"/internal/v1/sessions/{renewal.session_id}/credential"
        try:
            response = await self._http.post(
                path, headers={"Authorization": f"Bearer {renewal.current}"}
            )
            response.raise_for_status()
            fresh = SessionCredential.model_validate_json(response.content)
        except (httpx.HTTPError, ValidationError) as exc:
            status = exc.response.status_code if isinstance(exc, httpx.HTTPStatusError) else None
            logger.warning("could not renew the session credential", extra={"status": status})
            renewal.renew_at = time.time() + _RENEW_RETRY_SECONDS
            return
        renewed = _renewal(fresh.credential)
        renewal.current = fresh.credential
        renewal.renew_at = renewed.renew_at if renewed else time.time() + fresh.expires_in / 2


def _refusal(response: httpx.Response) -> ControlPlaneError:
    try:
        body = response.json()
        return ControlPlaneRefused(
            str(body["error"]), str(body["message"]), status_code=response.status_code
        )
    except (ValueError, KeyError, TypeError):
        return ControlPlaneError(
            "control plane refused the request", status_code=response.status_code
        )


def _parse(model: type[_Model], response: httpx.Response) -> _Model:
    try:
        return model.model_validate_json(response.content)
    except ValidationError as exc:
        raise ControlPlaneError(f"{model.__name__} did not match the schema") from exc


class SessionApi:
    """The internal API of one session, with its credential: what the presenter's tools call."""

    def __init__(self, client: ControlPlaneClient, session_id: UUID, credential: str) -> None:
        self._client = client
        self._base = f"/internal/v1/sessions/{session_id}"
        self._credential = credential

    async def current_slide(self) -> SlideState:
        response = await self._client._request(
            "GET", f"{self._base}/slide", credential=self._credential
        )
        return _parse(SlideState, response)

    async def change_slide(
        self,
        action: SlideAction,
        index: int | None = None,
        *,
        idempotency_key: str,
        reason: str | None = None,
        expected_version: int | None = None,
    ) -> SlideState:
        """Request a change; the key makes a retried (or re-run) tool call apply at most once,
        and ``expected_version`` makes it apply only to the state the caller saw."""
        body = SlideChange(
            action=action, index=index, reason=reason, expected_version=expected_version
        )
        response = await self._client._request(
            "POST",
            f"{self._base}/slide",
            credential=self._credential,
            json=body.model_dump(mode="json", exclude_none=True),
            headers={"Idempotency-Key": idempotency_key},
        )
        return _parse(SlideState, response)

    async def search(
        self, query: str, k: int = 3, *, purpose: Literal["answer", "navigate"] = "answer"
    ) -> DeckSearchResult:
        response = await self._client._request(
            "GET",
            f"{self._base}/search",
            credential=self._credential,
            params={"q": query, "k": k, "purpose": purpose},
        )
        return _parse(DeckSearchResult, response)

    async def slide(self, index: int) -> SlideContent:
        response = await self._client._request(
            "GET", f"{self._base}/slides/{index}", credential=self._credential
        )
        return _parse(SlideContent, response)

    async def add_messages(self, messages: list[ConversationMessage]) -> None:
        await self._client._request(
            "POST",
            f"{self._base}/messages",
            credential=self._credential,
            json=ConversationBatch(messages=messages).model_dump(mode="json"),
        )

    async def add_turns(self, turns: list[TurnRecord]) -> None:
        await self._client._request(
            "POST",
            f"{self._base}/turns",
            credential=self._credential,
            json=TurnBatch(turns=turns).model_dump(mode="json"),
        )

    async def report_usage(self, report: UsageReport) -> None:
        """The job's cumulative usage totals; the control plane counts only what grew."""
        await self._client._request(
            "POST",
            f"{self._base}/usage",
            credential=self._credential,
            json=report.model_dump(mode="json"),
        )

    async def records_complete(self) -> None:
        await self._client._request(
            "POST", f"{self._base}/records-complete", credential=self._credential
        )

    # Session recording, in segments (agent_worker/recording.py).
    async def put_recording_segment(
        self, n: int, audio: bytes, *, job_id: str, started_at: float, duration_s: float
    ) -> None:
        """Segment ``n`` of this job's recording; sending it again changes nothing."""
        await self._client._request(
            "PUT",
            f"{self._base}/recording/segments/{n}",
            credential=self._credential,
            content=audio,
            params={"job_id": job_id, "started_at": started_at, "duration_s": duration_s},
            headers={"Content-Type": "audio/ogg"},
        )

    async def escalate(self, request: EscalationRequest, *, idempotency_key: str) -> Escalation:
        response = await self._client._request(
            "POST",
            f"{self._base}/escalations",
            credential=self._credential,
            json=request.model_dump(mode="json", exclude_none=True),
            headers={"Idempotency-Key": idempotency_key},
        )
        return _parse(Escalation, response)

    async def report_alive(self, job_id: str) -> bool:
        """Tell the control plane this job still presents; False when it should leave: another
        job took over, the session ended, or its credential no longer works (revoked or expired
        unrenewed: the session is dispatched again with a new one once this job left)."""
        try:
            await self._client._request(
                "POST",
                f"{self._base}/alive",
                credential=self._credential,
                json=JobAlive(job_id=job_id).model_dump(mode="json"),
            )
        except ControlPlaneRefused as exc:
            if exc.code in ("superseded", "session_ended"):
                return False
            raise
        except ControlPlaneError as exc:
            if exc.status_code == httpx.codes.UNAUTHORIZED:
                return False
            raise
        return True
