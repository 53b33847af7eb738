"""The steps of ingestion that touch untrusted bytes; each runs inside the sandbox."""

from __future__ import annotations

import zipfile
from pathlib import Path

from control_plane.decks.extract import (
    DeckKind,
    ExtractedDeck,
    Limits,
    extract,
    pptx_to_pdf,
    render_pdf_pages,
    sniff_kind,
)
from control_plane.decks.extract_pptx import without_external_links
from control_plane.decks.sandbox import Progress


def inspect(data: bytes, limits: Limits, *, progress: Progress) -> ExtractedDeck:
    """Validate the upload and read its slides' text and notes (fast: done during the request)."""
    sniff_kind(data, limits)
    return extract(data, limits)


def sanitised_pptx(data: bytes, *, progress: Progress) -> bytes | None:
    """The package as the long-lived LibreOffice may open it (no links to fetch), or None when it
    is no zip (LibreOffice would guess another format and open that)."""
    try:
        return without_external_links(data)
    except zipfile.BadZipFile:
        return None


def render(
    data: bytes,
    kind: DeckKind,
    out_dir: str,
    limits: Limits,
    share: tuple[int, int] = (0, 1),
    *,
    progress: Progress,
) -> list[tuple[str, str]] | None:
    """Preview images (full, thumbnail) per slide, or None when previews are unavailable;
    ``share`` as for :func:`render_pdf_pages` (a PDF only: a PPTX would be converted n times)."""
    if kind != "pdf" and share != (0, 1):
        raise ValueError("only a PDF is rendered in shares")
    pdf = data if kind == "pdf" else pptx_to_pdf(data)
    if pdf is None:
        return None
    pages = render_pdf_pages(pdf, Path(out_dir), limits, on_page=progress, share=share)
    return [(str(full), str(thumb)) for full, thumb in pages]
