"""Reading a session's records through the public API, and the slide tools a replayed turn
is bound to: a private copy of the recorded slide state, deck search through the API."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal
from uuid import UUID

import httpx

from shared.schemas import (
    DeckSearchHit,
    DeckSearchResult,
    Escalation,
    EscalationRequest,
    SlideAction,
    SlideContent,
    SlideState,
    StoredTurn,
)

from ..control_plane_client import ControlPlaneError, ControlPlaneRefused, SessionApi


class ReplayError(Exception):
    """The session's records could not be read."""


class Records:
    """The public API, read-only, with a tenant API key."""

    def __init__(self, api_url: str, api_key: str) -> None:
        self._http = httpx.AsyncClient(
            base_url=api_url, headers={"Authorization": f"Bearer {api_key}"}, timeout=15
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _get(self, path: str, **params: Any) -> Any:
        try:
            response = await self._http.get(path, params=params)
        except httpx.HTTPError as exc:
            raise ReplayError(f"the control plane at {self._http.base_url} is unreachable") from exc
        if not response.is_success:
            try:
                message = response.json().get("message", response.text)
            except ValueError:
                message = response.text
            raise ReplayError(f"GET {path}: {response.status_code} {message}")
        return response.json()

    async def session(self, session_id: UUID) -> dict[str, Any]:
        found: dict[str, Any] = await self._get(f"/v1/sessions/{session_id}")
        return found

    async def turns(self, session_id: UUID) -> list[StoredTurn]:
        turns: list[StoredTurn] = []
        after = 0
        while True:
            page = await self._get(f"/v1/sessions/{session_id}/turns", after=after, limit=500)
            turns += [StoredTurn.model_validate(t) for t in page["items"]]
            if page["next_after"] is None:
                return turns
            after = page["next_after"]

    async def transcript(self, session_id: UUID) -> list[dict[str, Any]]:
        lines: list[dict[str, Any]] = []
        after = 0
        while True:
            page = await self._get(f"/v1/sessions/{session_id}/transcript", after=after, limit=500)
            lines += page["items"]
            if page["next_after"] is None:
                return lines
            after = page["next_after"]

    async def slides(self, deck_id: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = (await self._get(f"/v1/decks/{deck_id}/slides"))["slides"]
        return found

    async def search(
        self, deck_id: str, query: str, k: int, purpose: str = "answer"
    ) -> DeckSearchResult:
        found = await self._get(f"/v1/decks/{deck_id}/search", q=query, k=k, purpose=purpose)
        return DeckSearchResult(
            covered=found["covered"],
            confidence=found["confidence"],
            hits=[
                DeckSearchHit(
                    slide_index=h["slide_index"],
                    title=h["title"],
                    score=h["score"],
                    snippet=h["snippet"],
                )
                for h in found["hits"]
            ],
        )


class RecordedDeck(SessionApi):
    """What the presenter's tools call during a replay: a private copy of the slide state
    the turn started from; deck search through the public API; no writes anywhere."""

    def __init__(
        self,
        records: Records,
        session_id: UUID,
        deck_id: str,
        slides: list[dict[str, Any]],
        *,
        index: int,
        version: int,
    ) -> None:
        # No control-plane client: a replay must not reach the live session's internal API.
        self._records = records
        self._session_id = session_id
        self._deck_id = deck_id
        self._slides = slides
        self.index = index
        self.version = version
        self.paused = False
        self.escalations: list[EscalationRequest] = []

    def _state(self) -> SlideState:
        title = self._slides[self.index - 1].get("title") if self._slides else None
        return SlideState(
            session_id=self._session_id,
            deck_id=UUID(self._deck_id),
            index=self.index,
            count=len(self._slides),
            version=self.version,
            title=title,
            image_url=None,
            paused=self.paused,
            changed_by="replay",
            changed_at=datetime.now(UTC),
        )

    async def current_slide(self) -> SlideState:
        return self._state()

    async def change_slide(
        self,
        action: SlideAction,
        index: int | None = None,
        *,
        idempotency_key: str,
        reason: str | None = None,
        expected_version: int | None = None,
    ) -> SlideState:
        count = len(self._slides)
        target = {
            "next": self.index + 1,
            "previous": self.index - 1,
            "goto": index if index is not None else self.index,
            "first": 1,
            "last": count,
        }.get(action, self.index)
        if action == "next" and target > count:
            raise ControlPlaneRefused("no_next_slide", "This is the last slide.", status_code=409)
        if action == "previous" and target < 1:
            raise ControlPlaneRefused(
                "no_previous_slide", "This is the first slide.", status_code=409
            )
        if not 1 <= target <= count:
            raise ControlPlaneRefused(
                "slide_out_of_range",
                f"The deck has slides 1 to {count}; there is no slide {target}.",
                status_code=422,
            )
        self.index = target
        if action in ("pause", "resume"):
            self.paused = action == "pause"
        self.version += 1
        return self._state()

    async def search(
        self, query: str, k: int = 3, *, purpose: Literal["answer", "navigate"] = "answer"
    ) -> DeckSearchResult:
        try:
            return await self._records.search(self._deck_id, query, k, purpose)
        except ReplayError as exc:
            raise ControlPlaneError(str(exc)) from exc

    async def slide(self, index: int) -> SlideContent:
        found = self._slides[index - 1]
        return SlideContent(
            index=index, title=found.get("title"), text=found.get("text", ""), notes=None
        )

    async def escalate(self, request: EscalationRequest, *, idempotency_key: str) -> Escalation:
        self.escalations.append(request)
        return Escalation(
            escalation_id=UUID(int=0),
            session_id=self._session_id,
            reason=request.reason,
            slide_index=request.slide_index,
            last_question=request.last_question,
            attempted_answer=request.attempted_answer,
            transcript=[],
            created_at=datetime.now(UTC),
        )
