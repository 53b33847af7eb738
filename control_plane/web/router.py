"""The join page (``/join/{session_id}``), the demo page (``/demo``, development only), a
deck's analytics page (``/analytics/{deck_id}``), the bundle they load (``/web/{file}``) and
the one route the join page needs besides the slide routes (``GET /v1/participant/session``).

The pages are static files built by ``scripts/bootstrap`` (``web/``, esbuild); nothing secret is
rendered into them. The participant's token travels in the URL fragment, which the browser never
sends here, and the page sends it back only as an ``Authorization`` header.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter
from fastapi import Path as PathParam
from fastapi.responses import FileResponse

from control_plane.deps import Pool, Settings
from control_plane.errors import NotFound, PodiumError
from control_plane.sessions import repository as sessions
from control_plane.slides.router import CurrentParticipant
from control_plane.web.schemas import ParticipantSession

router = APIRouter(tags=["web client"])

_ASSET_NAME = r"^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,100}$"
_MEDIA_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".map": "application/json",
    ".svg": "image/svg+xml",
    ".html": "text/html; charset=utf-8",
}


class WebClientNotBuilt(PodiumError):
    status_code = 503
    code = "web_client_not_built"


def _origins(url: str) -> str:
    """A LiveKit URL as the CSP sources the client uses: its WebSocket and HTTP twins."""
    parts = urlsplit(url)
    secure = parts.scheme in ("wss", "https")
    host = parts.netloc
    return f"{'wss' if secure else 'ws'}://{host} {'https' if secure else 'http'}://{host}"


def _page_headers(livekit_url: str) -> dict[str, str]:
    csp = "; ".join(
        [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' data: blob:",
            "media-src 'self' blob:",
            f"connect-src 'self' {_origins(livekit_url)}",
            "worker-src 'self' blob:",
            "base-uri 'none'",
            "form-action 'none'",
        ]
    )
    return {
        "Content-Security-Policy": csp,
        # The token is in the fragment, which never travels; no Referer at all anyway.
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "no-cache",
        "Permissions-Policy": "microphone=(self), camera=(), geolocation=()",
    }


def _built(dist: Path, name: str) -> Path:
    path = dist / name
    if not path.is_file():
        raise WebClientNotBuilt(
            "The web client has not been built on this server. Run scripts/bootstrap "
            "(it runs `npm ci` and the build in web/)."
        )
    return path


@router.get("/join/{session_id}", include_in_schema=False)
async def join_page(settings: Settings, session_id: str) -> FileResponse:
    """The join page; it reads its token from the URL fragment (``#token=``).

    Any ``session_id`` gets the page: it compares the id with its token's and explains a
    mangled link in words, where a JSON error would only puzzle the person who clicked it.
    """
    del session_id
    return FileResponse(
        _built(settings.web_dist, "join.html"),
        media_type=_MEDIA_TYPES[".html"],
        headers=_page_headers(settings.livekit_url),
    )


@router.get("/demo", include_in_schema=False)
async def demo_page(settings: Settings) -> FileResponse:
    """Development only (``PODIUM_DEMO_PAGE=true``): pick a deck, start a session, join it."""
    if not settings.demo_page:
        raise NotFound("The demo page is off. Set PODIUM_DEMO_PAGE=true (scripts/dev does).")
    return FileResponse(
        _built(settings.web_dist, "demo.html"),
        media_type=_MEDIA_TYPES[".html"],
        headers=_page_headers(settings.livekit_url),
    )


@router.get("/analytics/{deck_id}", include_in_schema=False)
async def analytics_page(settings: Settings, deck_id: str) -> FileResponse:
    """A deck's analytics page. It reads a read-only link token from the URL fragment
    (``#token=``, from ``POST /v1/decks/{id}/analytics/link``) or asks for an API key; the
    page itself holds nothing of the tenant's."""
    del deck_id
    return FileResponse(
        _built(settings.web_dist, "analytics.html"),
        media_type=_MEDIA_TYPES[".html"],
        headers=_page_headers(settings.livekit_url),
    )


@router.get("/web/{name}", include_in_schema=False)
async def web_asset(
    settings: Settings, name: Annotated[str, PathParam(pattern=_ASSET_NAME)]
) -> FileResponse:
    """The bundle's files (flat: no folders, no dot files)."""
    suffix = Path(name).suffix
    if suffix not in _MEDIA_TYPES or suffix == ".html" or not re.fullmatch(_ASSET_NAME, name):
        raise NotFound("No such file.")
    path = settings.web_dist / name
    if not path.is_file():
        raise NotFound("No such file.")
    return FileResponse(
        path,
        media_type=_MEDIA_TYPES[suffix],
        headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"},
    )


@router.get("/v1/participant/session")
async def participant_session(
    participant: CurrentParticipant, pool: Pool, settings: Settings
) -> ParticipantSession:
    """The session the caller's LiveKit token is for: whether it is live, and where to join."""
    row = await sessions.get_by_id(pool, participant.session_id)
    if row is None or row["room"] != participant.room:
        raise NotFound(f"Session {participant.session_id} was not found.")
    return ParticipantSession(
        session_id=row["id"],
        status=row["status"],
        identity=participant.identity,
        role=participant.role,
        livekit_url=settings.livekit_url,
        has_deck=row["deck_id"] is not None,
        end_reason=row["end_reason"],
    )
