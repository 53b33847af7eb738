"""How slides become search chunks.

A slide's title and body form one chunk; speaker notes form their own chunks, split into
overlapping windows when long. Every chunk carries the slide title, because a question about
"pricing" should find the notes of the slide titled "Pricing" even when they never say it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from control_plane.decks.extract import ExtractedSlide

WINDOW_WORDS = 120
OVERLAP_WORDS = 30


@dataclass(frozen=True)
class Chunk:
    slide_index: int
    kind: Literal["slide", "notes"]
    content: str


def _windows(words: list[str]) -> list[str]:
    if len(words) <= WINDOW_WORDS:
        return [" ".join(words)]
    step = WINDOW_WORDS - OVERLAP_WORDS
    return [
        " ".join(words[i : i + WINDOW_WORDS]) for i in range(0, len(words) - OVERLAP_WORDS, step)
    ]


def chunk_slide(slide: ExtractedSlide) -> list[Chunk]:
    title = (slide.title or "").strip()
    chunks: list[Chunk] = []
    main = "\n".join(part for part in (title, slide.text.strip()) if part)
    if main:
        for window in _windows(main.split()):
            chunks.append(Chunk(slide.index, "slide", window))
    notes = (slide.notes or "").split()
    if notes:
        prefix = f"{title}: " if title else ""
        for window in _windows(notes):
            chunks.append(Chunk(slide.index, "notes", prefix + window))
    if not chunks:
        # An image-only slide still needs a row so "slide 7" can be found and narrated.
        chunks.append(Chunk(slide.index, "slide", f"Slide {slide.index}"))
    return chunks
