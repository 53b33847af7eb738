"""Finding and removing personal data in transcripts, offline.

    find_pii(text)            -> [Finding(start, end, entity)], offsets into `text`
    redact(text, mode)        -> Redacted(text, findings): "off", "mask" ("[EMAIL]") or "drop"
    word_spans(text, findings, words) -> time spans of the STT words to silence in a recording
    warm()                    -> load the NER model now (start-up), not on the first call

Spoken forms are read ("jane dot doe at example dot com", "plus forty four seven nine ..."):
`spoken.normalise` writes them out before detection and findings map back to the original text.
Numbers count only when valid: cards by Luhn, IBANs by their check digits, phones by
libphonenumber's numbering plans, national ids by python-stdnum. Names and addresses come from
spaCy's small English NER plus a street pattern. Everything runs in-process with no network.

Calls are CPU-bound (about 5-10 ms a sentence): from async code, run them in a thread.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from shared.redaction import detectors, ner
from shared.redaction.spoken import normalise

Mode = Literal["off", "mask", "drop"]
Entity = Literal["EMAIL", "PHONE", "CARD", "IBAN", "NATIONAL_ID", "ADDRESS", "PERSON"]

DROPPED = "[removed: personal data]"
# Where two detectors claim overlapping text, the one whose evidence is stronger wins: checksums
# first, then formats, then the NER model.
_PRIORITY: dict[str, int] = {
    "CARD": 0,
    "IBAN": 1,
    "NATIONAL_ID": 2,
    "EMAIL": 3,
    "PHONE": 4,
    "ADDRESS": 5,
    "PERSON": 6,
}


@dataclass(frozen=True)
class Finding:
    start: int  # char offsets into the text given
    end: int
    entity: Entity


@dataclass(frozen=True)
class Redacted:
    text: str
    findings: tuple[Finding, ...]


def warm() -> None:
    """Loads the NER model now; `find_pii` otherwise loads it on its first call."""
    ner.load()


def find_pii(text: str) -> list[Finding]:
    """Personal data in `text`: sorted by start, never overlapping."""
    if not text.strip():
        return []
    written = normalise(text)
    candidates: list[tuple[int, int, str]] = []
    for detector in detectors.PATTERNS:
        candidates.extend(detector(written.text))
    candidates.extend(ner.names_and_addresses(written.text))
    chosen: list[Finding] = []
    taken: list[tuple[int, int]] = []
    for start, end, entity in sorted(candidates, key=lambda c: (_PRIORITY[c[2]], c[0] - c[1])):
        start, end = _trim(written.text, start, end)
        if start >= end or any(start < e and s < end for s, e in taken):
            continue
        taken.append((start, end))
        orig_start, orig_end = written.original(start, end)
        chosen.append(Finding(orig_start, orig_end, entity))  # type: ignore[arg-type]
    return sorted(chosen, key=lambda f: f.start)


def _trim(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start] in " ,":
        start += 1
    while end > start and text[end - 1] in " ,":
        end -= 1
    return start, end


def redact(text: str, mode: Mode) -> Redacted:
    """`off`: the text as given, not scanned; `mask`: each finding replaced by its entity in
    brackets ("[PHONE]"); `drop`: the whole text replaced when anything was found."""
    if mode == "off":
        return Redacted(text, ())
    findings = tuple(find_pii(text))
    if not findings:
        return Redacted(text, ())
    if mode == "drop":
        return Redacted(DROPPED, findings)
    parts: list[str] = []
    pos = 0
    for finding in findings:
        parts.append(text[pos : finding.start])
        parts.append(f"[{finding.entity}]")
        pos = finding.end
    parts.append(text[pos:])
    return Redacted("".join(parts), findings)


_ALNUM = re.compile(r"[^\W_]", re.UNICODE)
# How far past the last aligned word a word may be found: words the STT heard but the text does
# not have are skipped instead of dragging the alignment to a later repetition.
_LOOKAHEAD = 64


def word_spans(
    text: str, findings: Sequence[Finding], words: Sequence[tuple[str, float, float]]
) -> list[tuple[float, float]]:
    """Time spans (seconds, merged, sorted) of the STT words covering each finding.

    `words` are the STT's (word, start_s, end_s) for `text`, in order. Each word is matched to
    the text by a forward search over letters and digits only (case and punctuation ignored).
    """
    # The text's letters and digits, lower-cased, with each one's offset in `text`.
    offsets = [m.start() for m in _ALNUM.finditer(text)]
    letters = "".join(text[i] for i in offsets).lower()
    placed: list[tuple[int, int, float, float]] = []  # text start, end, time start, end
    cursor = 0
    for word, start_s, end_s in words:
        key = "".join(_ALNUM.findall(word)).lower()
        if not key:
            continue
        at = letters.find(key, cursor, cursor + _LOOKAHEAD + len(key))
        if at < 0:
            continue
        placed.append((offsets[at], offsets[at + len(key) - 1] + 1, start_s, end_s))
        cursor = at + len(key)
    spans: list[tuple[float, float]] = []
    for finding in findings:
        covering = [(s, e) for ws, we, s, e in placed if ws < finding.end and finding.start < we]
        if covering:
            spans.append((min(s for s, _ in covering), max(e for _, e in covering)))
    merged: list[tuple[float, float]] = []
    for start_s, end_s in sorted(spans):
        if merged and start_s <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end_s))
        else:
            merged.append((start_s, end_s))
    return merged
