"""How slides become search chunks.

Listeners mostly ask about one fact ("what's the uptime guarantee?"), and a fact diluted among a
slide's other bullets embeds far from the question. So a body of several lines becomes a chunk
per line (short lines joined to the next), and speaker notes a chunk per sentence; a body of one
line stays whole. Search scores a slide by all of its matching chunks together, which stands in
for a whole-slide chunk (scripts/bench_grounding.py measured it no better, at more ingestion
time). Every chunk carries the slide title, because a question about "pricing" should find the
notes of the slide titled "Pricing" even when they never say it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Literal

import blingfire  # type: ignore[import-untyped]

from control_plane.decks.extract import ExtractedSlide

WINDOW_WORDS = 120
OVERLAP_WORDS = 30
# Per slide, at most this many line chunks and this many notes chunks: a text-heavy slide has its
# lines grouped instead, so one slide cannot flood the index (or the ingestion time).
MAX_UNITS = 16
# A line of one or two words ("Team", "NPS 72") embeds as noise on its own; it joins the next.
MIN_UNIT_WORDS = 3

_SENTENCE_END = re.compile(r"[.!?:;]$")


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


def _lines(text: str) -> list[str]:
    """Body lines, with a line that continues a wrapped sentence (PDF text is one line per
    visual line) joined back to the line before it."""
    lines: list[str] = []
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        if lines and line[0].islower() and not _SENTENCE_END.search(lines[-1]):
            lines[-1] += " " + line
        else:
            lines.append(line)
    return lines


def _units(lines: list[str]) -> list[str]:
    """Lines as search units, short ones joined to the lines after them."""
    units: list[str] = []
    pending: list[str] = []
    for line in lines:
        pending.append(line)
        if len(" ".join(pending).split()) >= MIN_UNIT_WORDS:
            units.append(" ".join(pending))
            pending = []
    if pending and units:
        units[-1] += " " + " ".join(pending)
    elif pending:
        units.append(" ".join(pending))
    return units


def _bounded(units: list[str]) -> list[str]:
    """At most MAX_UNITS units, neighbours grouped evenly when there are more."""
    if len(units) <= MAX_UNITS:
        return units
    size = math.ceil(len(units) / MAX_UNITS)
    return [" ".join(units[i : i + size]) for i in range(0, len(units), size)]


def _sentences(text: str) -> list[str]:
    return [s for s in blingfire.text_to_sentences(text).splitlines() if s.strip()]


def chunk_slide(slide: ExtractedSlide) -> list[Chunk]:
    title = (slide.title or "").strip()
    prefix = f"{title}: " if title else ""
    chunks: list[Chunk] = []
    units = _units(_lines(slide.text))
    if len(units) > 1:
        for unit in _bounded(units):
            for window in _windows(unit.split()):
                chunks.append(Chunk(slide.index, "slide", prefix + window))
    elif main := "\n".join(part for part in (title, slide.text.strip()) if part):
        for window in _windows(main.split()):
            chunks.append(Chunk(slide.index, "slide", window))
    for unit in _bounded(_sentences(slide.notes or "")):
        for window in _windows(unit.split()):
            chunks.append(Chunk(slide.index, "notes", prefix + window))
    if not chunks:
        # An image-only slide still needs a row so "slide 7" can be found and narrated.
        chunks.append(Chunk(slide.index, "slide", f"Slide {slide.index}"))
    return chunks
