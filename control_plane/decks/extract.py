"""Deck extraction: what an uploaded file is, its slides' text and notes, and preview images.

Every function here is synchronous and CPU-bound; callers run it in a worker process or thread
under a time limit. Expected problems with the upload raise :class:`DeckRejected` with a code
and a sentence the uploader can act on.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import tempfile
import zipfile
from pathlib import Path

from control_plane.decks.extract_pdf import extract_pdf, render_pdf_pages
from control_plane.decks.extract_pptx import extract_pptx, open_archive, without_external_links
from control_plane.decks.isolation import minimal_env
from control_plane.decks.limits import (
    DeckKind,
    DeckRejected,
    ExtractedDeck,
    ExtractedSlide,
    Limits,
    format_size,
)

__all__ = [
    "DeckKind",
    "DeckRejected",
    "ExtractedDeck",
    "ExtractedSlide",
    "Limits",
    "extract",
    "pptx_to_pdf",
    "render_pdf_pages",
    "sniff_kind",
]

logger = logging.getLogger(__name__)

# PDF readers accept the header anywhere in the first 1024 bytes (after a BOM, whitespace, or
# a mail header), so we do too.
_PDF_HEADER_WINDOW = 1024
_OLE2_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_ACCEPTED = "Upload a PDF or a PowerPoint (.pptx) file."
DEFAULT_LIMITS = Limits()


def sniff_kind(data: bytes, limits: Limits = DEFAULT_LIMITS) -> DeckKind:
    """The deck's kind from its content; the file name and declared type are not trusted."""
    if not data:
        raise DeckRejected("empty_file", f"The file is empty. {_ACCEPTED}")
    if len(data) > limits.max_bytes:
        raise DeckRejected(
            "too_large",
            f"The file is {format_size(len(data))}; at most {format_size(limits.max_bytes)} "
            "is allowed.",
        )
    if not data.startswith(b"PK\x03\x04") and b"%PDF-" in data[:_PDF_HEADER_WINDOW]:
        return "pdf"
    if data.startswith(_OLE2_MAGIC):
        raise DeckRejected(
            "unsupported_type",
            "The file is an older PowerPoint (.ppt) or a password-protected presentation. "
            "Save it without a password as .pptx, or export it as PDF, and re-upload it.",
        )
    archive = open_archive(data, limits)
    if archive is None and data.startswith(b"PK\x03\x04") and b"ppt/" in data:
        raise DeckRejected(
            "pptx_corrupt",
            "The PowerPoint file is incomplete (its ZIP index is missing); the upload may have "
            "been cut off. Re-upload the file.",
        )
    if archive is None:
        raise DeckRejected(
            "unsupported_type",
            f"The file is neither a PDF nor a PowerPoint presentation. {_ACCEPTED}",
        )
    with archive:
        names = set(archive.namelist())
    if {"[Content_Types].xml", "ppt/presentation.xml"} <= names:
        return "pptx"
    raise DeckRejected(
        "unsupported_type",
        f"The file is a ZIP archive but not a PowerPoint presentation. {_ACCEPTED}",
    )


def extract(data: bytes, limits: Limits = DEFAULT_LIMITS) -> ExtractedDeck:
    """Validate the upload, then extract each slide's title, body text and speaker notes."""
    kind = sniff_kind(data, limits)
    deck = extract_pdf(data, limits) if kind == "pdf" else extract_pptx(data, limits)
    if not deck.slides:
        raise DeckRejected("no_slides", "The deck has no slides.")
    return deck


def pptx_to_pdf(pptx: bytes, *, timeout_s: float = 120) -> bytes | None:
    """The deck as PDF via headless LibreOffice, for previews; None when that is unavailable.

    Hidden slides are exported too, so page N of the PDF is slide N of :func:`extract`.
    LibreOffice fetches linked (external) images and media: they are removed first, and
    LibreOffice gets a minimal environment (run it inside the sandbox for no network at all).
    """
    soffice = shutil.which("soffice")
    if soffice is None:
        logger.warning("soffice not found; slide previews unavailable for pptx decks")
        return None
    try:
        package = without_external_links(pptx)
    except zipfile.BadZipFile:  # LibreOffice would guess another format (HTML, …) and open it
        logger.warning("pptx to pdf conversion refused: not a zip package")
        return None
    with tempfile.TemporaryDirectory(prefix="podium-soffice-") as tmp:
        work = Path(tmp)
        source = work / "deck.pptx"
        source.write_bytes(package)
        command = [
            soffice,
            # A private profile: concurrent conversions would otherwise fight over one lock.
            f"-env:UserInstallation={(work / 'profile').as_uri()}",
            "--headless",
            "--norestore",
            "--nolockcheck",
            "--convert-to",
            'pdf:impress_pdf_Export:{"ExportHiddenSlides":{"type":"boolean","value":"true"}}',
            "--outdir",
            str(work / "out"),
            str(source),
        ]
        with (work / "stderr").open("wb") as stderr:
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                cwd=work,
                env=minimal_env(work),
                start_new_session=True,  # its own process group, so a timeout kills it whole
            )
            try:
                returncode = process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
                logger.warning("pptx to pdf conversion timed out", extra={"timeout_s": timeout_s})
                return None
        result = work / "out" / "deck.pdf"
        if returncode != 0 or not result.is_file():
            logger.warning(
                "pptx to pdf conversion failed",
                extra={
                    "returncode": returncode,
                    "stderr": (work / "stderr").read_bytes()[-500:].decode(errors="replace"),
                },
            )
            return None
        return result.read_bytes()
