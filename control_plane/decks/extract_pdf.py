"""PDF decks through PDFium (pypdfium2): per-page text and rendered previews."""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c
from PIL import Image

from control_plane.decks.limits import (
    MAX_TITLE_CHARS,
    DeckRejected,
    ExtractedDeck,
    ExtractedSlide,
    Limits,
    document_title,
    normalise_text,
)

logger = logging.getLogger(__name__)

THUMBNAIL_WIDTH = 320
# A page may declare any size (PDF allows 200-inch pages, and /UserUnit beyond that); the bitmap
# is capped so one page cannot allocate more than 4096 * 4096 * 3 bytes (48 MiB).
MAX_RENDER_SIDE = 4096
# JPEG: 2-3 ms to encode a 1280 px slide where WebP takes 12-20 ms (ingestion is bound by this),
# at about 2.5x the bytes (~30 KB for a text slide), which browsers cache anyway.
IMAGE_FORMAT = "JPEG"
IMAGE_SUFFIX = ".jpg"
IMAGE_QUALITY = 85

# PDFium is not thread-safe, not even across documents: every call into it is serialised here.
# Run extraction in a process pool to use more than one core.
_PDFIUM_LOCK = threading.Lock()

_ENCRYPTED_ERRORS = frozenset({pdfium_c.FPDF_ERR_PASSWORD, pdfium_c.FPDF_ERR_SECURITY})
# PDF readers require "%%EOF" within the last 1024 bytes. PDFium repairs files without it, which
# would turn an interrupted upload into a deck silently missing its last pages.
_EOF_WINDOW = 1024


def _check_complete(data: bytes) -> None:
    if b"%%EOF" not in data[-_EOF_WINDOW:]:
        raise DeckRejected(
            "pdf_corrupt",
            "The PDF is incomplete (it has no end-of-file marker); the upload may have been cut "
            "off. Export the PDF again and re-upload it.",
        )


@contextmanager
def open_pdf(data: bytes, limits: Limits) -> Iterator[pdfium.PdfDocument]:
    """The document, with its page count already checked; holds the PDFium lock throughout."""
    _check_complete(data)
    with _PDFIUM_LOCK:
        try:
            pdf = pdfium.PdfDocument(data)
        except pdfium.PdfiumError as exc:
            if exc.err_code in _ENCRYPTED_ERRORS:
                raise DeckRejected(
                    "pdf_encrypted",
                    "The PDF is password-protected. Remove the password (for example by "
                    "exporting it again without protection) and re-upload it.",
                ) from exc
            if exc.err_code == pdfium_c.FPDF_ERR_SUCCESS:
                raise DeckRejected("no_slides", "The PDF has no pages.") from exc
            raise DeckRejected(
                "pdf_corrupt",
                "The PDF could not be read; it may be damaged. Export it again and re-upload it.",
            ) from exc
        try:
            pages = len(pdf)
            if pages > limits.max_slides:
                raise DeckRejected(
                    "too_many_slides",
                    f"The PDF has {pages:,} pages; at most {limits.max_slides:,} are allowed.",
                )
            yield pdf
        finally:
            pdf.close()


def _load_page(pdf: pdfium.PdfDocument, index: int) -> pdfium.PdfPage:
    try:
        return pdf[index]
    except pdfium.PdfiumError as exc:
        raise DeckRejected(
            "pdf_corrupt",
            f"Page {index + 1} of the PDF could not be read; it may be damaged. "
            "Export it again and re-upload it.",
        ) from exc


def _page_text(page: pdfium.PdfPage) -> str:
    textpage = page.get_textpage()
    try:
        return str(textpage.get_text_bounded())
    finally:
        textpage.close()


def _split_title(text: str) -> tuple[str | None, str]:
    """Slides have no structure in a PDF: the first line is taken as the title when short."""
    first, _, rest = text.partition("\n")
    if first and len(first) <= MAX_TITLE_CHARS // 2 and any(c.isalnum() for c in first):
        return first, rest
    return None, text


def extract_pdf(data: bytes, limits: Limits) -> ExtractedDeck:
    slides: list[ExtractedSlide] = []
    with open_pdf(data, limits) as pdf:
        for i in range(len(pdf)):
            page = _load_page(pdf, i)
            try:
                raw = _page_text(page)
            finally:
                page.close()
            text = normalise_text(raw, limits.max_text_chars_per_slide)
            title, body = _split_title(text)
            slides.append(ExtractedSlide(index=i + 1, title=title, text=body, notes=None))
        metadata_title = str(pdf.get_metadata_value("Title"))
    first_title = slides[0].title if slides else None
    return ExtractedDeck(
        kind="pdf", slides=slides, title=document_title(metadata_title, first_title)
    )


def _render_scale(width_pt: float, height_pt: float, target_width: int) -> float:
    if width_pt <= 0 or height_pt <= 0:
        raise ValueError("page has no area")
    # A hair under the exact ratio: PDFium sizes the bitmap with ceil(), and float error would
    # otherwise produce 1281-pixel images now and then.
    scale = min(target_width, MAX_RENDER_SIDE) / width_pt * (1 - 1e-9)
    return min(scale, MAX_RENDER_SIDE / height_pt * (1 - 1e-9))


def _save_pair(image: Image.Image, full_path: Path, thumb_path: Path) -> None:
    image.save(full_path, IMAGE_FORMAT, quality=IMAGE_QUALITY)
    thumb_width = min(THUMBNAIL_WIDTH, image.width)
    thumb_height = max(1, round(image.height * thumb_width / image.width))
    # reducing_gap=1.0: reduce by the whole factor (a box average, 1.4 ms for 1280 -> 320 px),
    # then Lanczos for what is left (nothing at 4x). A gap of 1.5 reduced only 2x and spent
    # ~5 ms per slide on the Lanczos pass, a quarter of rendering a slide.
    thumb = image.resize((thumb_width, thumb_height), Image.Resampling.LANCZOS, reducing_gap=1.0)
    thumb.save(thumb_path, IMAGE_FORMAT, quality=IMAGE_QUALITY)


def render_pdf_pages(
    pdf: bytes,
    out_dir: Path,
    limits: Limits,
    *,
    on_page: Callable[[int, int], None] | None = None,
    share: tuple[int, int] = (0, 1),
) -> list[tuple[Path, Path]]:
    """Render each page to ``slide-NNN.jpg`` (``render_width`` wide) and a 320 px thumbnail.
    ``share`` (k, n): only every n-th page from the k-th (0-based), so that n processes can
    render one document between them; ``on_page`` counts this share's pages against the
    document's."""
    part, parts = share
    if not 0 <= part < parts:
        raise ValueError("share must be (k, n) with 0 <= k < n")
    out_dir.mkdir(parents=True, exist_ok=True)
    rendered: list[tuple[Path, Path]] = []
    with open_pdf(pdf, limits) as document:
        total = len(document)
        for i in range(part, total, parts):
            page = _load_page(document, i)
            try:
                width_pt, height_pt = page.get_size()
                if not (math.isfinite(width_pt) and math.isfinite(height_pt)):
                    raise ValueError("page size is not finite")
                scale = _render_scale(width_pt, height_pt, limits.render_width)
                # RGB as PIL wants it (PDFium's default is BGR, which to_pil would convert)
                bitmap = page.render(scale=scale, may_draw_forms=False, rev_byteorder=True)
                try:
                    image = bitmap.to_pil()
                finally:
                    bitmap.close()
            except (ValueError, pdfium.PdfiumError) as exc:
                raise DeckRejected(
                    "pdf_corrupt",
                    f"Page {i + 1} of the PDF could not be drawn; it may be damaged. "
                    "Export it again and re-upload it.",
                ) from exc
            finally:
                page.close()
            stem = f"slide-{i + 1:03d}"
            pair = (out_dir / f"{stem}{IMAGE_SUFFIX}", out_dir / f"{stem}-thumb{IMAGE_SUFFIX}")
            _save_pair(image, *pair)
            rendered.append(pair)
            if on_page is not None:
                on_page(len(rendered), total)
    return rendered
