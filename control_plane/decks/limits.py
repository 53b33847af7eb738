"""The contract shared by the deck extractors: limits, the rejection error and the result types.

Everything here is plain data so that a worker process can pickle results back to its caller.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

DeckKind = Literal["pdf", "pptx"]

RejectionCode = Literal[
    "empty_file",
    "unsupported_type",
    "too_large",
    "pdf_encrypted",
    "pdf_corrupt",
    "pptx_corrupt",
    "too_many_slides",
    "archive_too_large",
    "archive_unsafe",
    "no_slides",
]


@dataclass(frozen=True)
class Limits:
    max_bytes: int = 50 * 1024 * 1024
    max_slides: int = 300
    max_archive_members: int = 2000
    max_uncompressed_bytes: int = 300 * 1024 * 1024
    max_member_ratio: float = 200.0  # compression-ratio cap per member (zip bomb)
    max_text_chars_per_slide: int = 20_000
    render_width: int = 1280  # full-size image width (px); thumbnails 320


class DeckRejected(Exception):
    """An upload we will not ingest; ``message`` tells the person what to change."""

    def __init__(self, code: RejectionCode, message: str) -> None:
        super().__init__(message)
        self.code: RejectionCode = code
        self.message = message

    def __reduce__(self) -> tuple[type[DeckRejected], tuple[RejectionCode, str]]:
        # Keeps the code when the error crosses a process-pool boundary.
        return (DeckRejected, (self.code, self.message))


@dataclass(frozen=True)
class ExtractedSlide:
    index: int  # 1-based, as a person counts
    title: str | None
    text: str  # body text in reading order (not including notes), whitespace-normalised, capped
    notes: str | None  # speaker notes


@dataclass(frozen=True)
class ExtractedDeck:
    kind: DeckKind
    slides: list[ExtractedSlide]
    title: str | None  # document title if present (PDF metadata / pptx core props / slide 1)


MAX_TITLE_CHARS = 300


def format_size(n: float) -> str:
    """A byte count as a person reads it: "50 MB", "1.5 MB", "900 KB"."""
    for unit, size in (("GB", 1024**3), ("MB", 1024**2), ("KB", 1024)):
        if n >= size:
            return f"{n / size:,.1f}".removesuffix(".0") + f" {unit}"
    return f"{n:,.0f} bytes"


# C0 controls other than tab/newline, DEL, and non-characters. PDFium emits some of these for
# hyphenation and unmapped glyphs, and Postgres text columns refuse NUL.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f\ufffe\uffff]")
_LINE_BREAK = re.compile("\r\n|[\r\n\v\f\u2028\u2029\x85]")


def normalise_text(raw: str, cap: int) -> str:
    """One line per source line, runs of whitespace collapsed, blank lines dropped, capped."""
    lines = (" ".join(_CONTROL.sub("", line).split()) for line in _LINE_BREAK.split(raw))
    return "\n".join(line for line in lines if line)[:cap].rstrip()


def normalise_title(raw: str | None) -> str | None:
    """A title on one line, or None when there is nothing a person would call a title."""
    if raw is None:
        return None
    title = " ".join(_CONTROL.sub("", raw).split())[:MAX_TITLE_CHARS]
    return title or None


# Titles that authoring tools fill in on their own; they name nothing.
_PLACEHOLDER_TITLES = frozenset({"powerpoint presentation", "presentation", "untitled", "slide 1"})
_FILE_NAME = re.compile(r"\.(pptx?|pdf|key|odp|docx?)$", re.IGNORECASE)


def document_title(metadata_title: str | None, first_slide_title: str | None) -> str | None:
    title = normalise_title(metadata_title)
    if title is None or title.casefold() in _PLACEHOLDER_TITLES or _FILE_NAME.search(title):
        return first_slide_title
    return title
