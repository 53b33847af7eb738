"""/assets/{key}: slide images and recording segments behind short-lived signed URLs (no API
key in the browser)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import FileResponse, Response

from control_plane.deps import Signer, Storage
from control_plane.errors import Forbidden, NotFound
from control_plane.storage import InvalidKey, check_key

router = APIRouter(tags=["assets"], include_in_schema=False)

# What a signed link may name, and its type: slide previews, and recording segments.
_TYPES = {"decks/": "image/jpeg", "recordings/": "audio/ogg"}
_ORIGINAL = "/original"


@router.get("/assets/{key:path}")
async def get_asset(
    key: str,
    signer: Signer,
    storage: Storage,
    exp: Annotated[int, Query()],
    sig: Annotated[str, Query(pattern=r"^[0-9a-f]{1,64}$")],
) -> Response:
    try:
        check_key(key)
    except InvalidKey as exc:
        raise NotFound("No such asset.") from exc
    media_type = next((t for prefix, t in _TYPES.items() if key.startswith(prefix)), None)
    if media_type is None or key.endswith(_ORIGINAL):
        raise NotFound("No such asset.")
    if not signer.verify(key, exp, sig):
        raise Forbidden("The link has expired or is not valid; list the slides again for new ones.")
    path = storage.local_path(key)
    if path is None:
        raise NotFound("No such asset.")
    return FileResponse(
        path, media_type=media_type, headers={"Cache-Control": "private, max-age=600"}
    )
