"""A tenant's client for the control plane's public API, used by the ``podium decks`` commands."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO, Self, TypeVar
from uuid import UUID

import httpx
from pydantic import BaseModel, ValidationError

from control_plane.analytics.schemas import DeckAnalytics
from control_plane.decks.schemas import DeckList, DeckPublic, SearchResults
from shared.evaluation import EvalQuestion, EvalReport, EvalRequest

_Model = TypeVar("_Model", bound=BaseModel)

_TIMEOUT = httpx.Timeout(15.0, connect=5.0)
# The server validates an upload inside the request, and may spend its whole parse budget
# (120 s by default) doing so before it answers.
_UPLOAD_TIMEOUT = httpx.Timeout(180.0, connect=5.0)
# A batch of evaluation questions is a deck search each (tens of ms); a loaded server is slower.
_EVAL_TIMEOUT = httpx.Timeout(120.0, connect=5.0)
_RATE_LIMIT_ATTEMPTS = 10
_RATE_LIMIT_MAX_WAIT_S = 10.0


class ApiError(Exception):
    """The API refused the request (``status`` set) or could not be reached (``status`` None)."""

    def __init__(self, status: int | None, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


class ApiClient:
    def __init__(self, base_url: str, api_key: str) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=_TIMEOUT,
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def upload_deck(self, path: Path) -> DeckPublic:
        with path.open("rb") as data:
            response = self._request(
                "POST", "/v1/decks", files={"file": (path.name, data)}, timeout=_UPLOAD_TIMEOUT
            )
        return _parse(DeckPublic, response)

    def get_deck(self, deck_id: UUID) -> DeckPublic:
        return _parse(DeckPublic, self._request("GET", f"/v1/decks/{deck_id}"))

    def list_decks(self, limit: int, cursor: str | None = None) -> DeckList:
        params: dict[str, str | int] = {"limit": limit}
        if cursor is not None:
            params["cursor"] = cursor
        return _parse(DeckList, self._request("GET", "/v1/decks", params=params))

    def delete_deck(self, deck_id: UUID) -> None:
        self._request("DELETE", f"/v1/decks/{deck_id}")

    def search_deck(self, deck_id: UUID, query: str, k: int) -> SearchResults:
        response = self._request("GET", f"/v1/decks/{deck_id}/search", params={"q": query, "k": k})
        return _parse(SearchResults, response)

    def evaluate_deck(self, deck_id: UUID, questions: list[EvalQuestion]) -> EvalReport:
        body = EvalRequest(questions=questions).model_dump(mode="json", exclude_none=True)
        response = self._request(
            "POST", f"/v1/decks/{deck_id}/evaluations", json=body, timeout=_EVAL_TIMEOUT
        )
        return _parse(EvalReport, response)

    def deck_analytics(
        self, deck_id: UUID, since: datetime | None, until: datetime | None
    ) -> DeckAnalytics:
        params: dict[str, str | int] = {}
        if since is not None:
            params["from"] = since.isoformat()
        if until is not None:
            params["to"] = until.isoformat()
        response = self._request("GET", f"/v1/decks/{deck_id}/analytics", params=params)
        return _parse(DeckAnalytics, response)

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str | int] | None = None,
        files: dict[str, tuple[str, BinaryIO]] | None = None,
        json: dict[str, Any] | None = None,
        timeout: httpx.Timeout = _TIMEOUT,
    ) -> httpx.Response:
        """Send one request; every failure comes out as an :class:`ApiError`.

        Retried only when a tenant rate limit refused it (``429 rate_limited``: nothing was
        done) and asked for a short wait, as a batch of ``podium eval`` questions may. Not
        otherwise: an upload is not idempotent, and a person (or a script's exit code) is
        better placed than this client to decide whether to try again.
        """
        for attempt in range(1, _RATE_LIMIT_ATTEMPTS + 1):
            response = self._send(method, path, params, files, json, timeout)
            wait = _rate_limit_wait(response)
            if files is not None or wait is None or attempt == _RATE_LIMIT_ATTEMPTS:
                break
            time.sleep(wait)
        if response.is_success:
            return response
        raise _refusal(response)

    def _send(
        self,
        method: str,
        path: str,
        params: dict[str, str | int] | None,
        files: dict[str, tuple[str, BinaryIO]] | None,
        json: dict[str, Any] | None,
        timeout: httpx.Timeout,
    ) -> httpx.Response:
        try:
            return self._http.request(
                method, path, params=params, files=files, json=json, timeout=timeout
            )
        except httpx.ConnectError as exc:
            raise ApiError(
                None,
                "unreachable",
                f"Could not connect to {self.base_url}. Is the control plane running at "
                f"{self.base_url}? Point --api-url or PODIUM_API_URL at it.",
            ) from exc
        except httpx.TimeoutException as exc:
            raise ApiError(
                None, "timeout", f"The control plane at {self.base_url} did not answer in time."
            ) from exc
        except httpx.HTTPError as exc:
            raise ApiError(
                None, "request_failed", f"The request to {self.base_url} failed: {exc}."
            ) from exc


def _rate_limit_wait(response: httpx.Response) -> float | None:
    """Seconds to wait before sending again, when a rate limit asked for a short wait."""
    if response.status_code != httpx.codes.TOO_MANY_REQUESTS:
        return None
    try:
        wait = float(response.headers.get("Retry-After", ""))
        code = response.json().get("error")
    except (ValueError, AttributeError):
        return None
    return wait if code == "rate_limited" and 0 <= wait <= _RATE_LIMIT_MAX_WAIT_S else None


def _refusal(response: httpx.Response) -> ApiError:
    """The API's ``{"error": code, "message": sentence}`` body, or a stand-in for a body that
    is not ours (a proxy's HTML page, another service on that port)."""
    try:
        body = response.json()
        code, message = body["error"], body["message"]
    except (ValueError, TypeError, KeyError):
        code, message = None, None
    if isinstance(code, str) and isinstance(message, str):
        return ApiError(response.status_code, code, message)
    return ApiError(
        response.status_code,
        "http_error",
        f"{response.request.url} answered {response.status_code} {response.reason_phrase}; "
        "is --api-url the control plane's address?",
    )


def _parse(model: type[_Model], response: httpx.Response) -> _Model:
    try:
        return model.model_validate_json(response.content)
    except ValidationError as exc:
        raise ApiError(
            response.status_code,
            "unexpected_response",
            f"{response.request.url} answered with something other than a Podium "
            f"{model.__name__}; is --api-url the control plane's address?",
        ) from exc
