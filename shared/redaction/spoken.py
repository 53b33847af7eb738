"""Spoken-form normalisation: speech-to-text writes what was said ("jane dot doe at example dot
com", "plus forty four seven nine one one ..."), the detectors read written forms. `normalise`
rewrites the text and keeps, for every character it writes, the span of the original it came from,
so a finding in the written form maps back to offsets of the original string."""

from __future__ import annotations

import re
from dataclasses import dataclass

_TOKEN = re.compile(r"[A-Za-z]+(?:['\u2019][A-Za-z]+)?|\d+|\S")
_UNITS = {
    "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4",
    "five": "5", "six": "6", "seven": "7", "eight": "8", "nine": "9",
}  # fmt: skip
_TEENS = {
    "ten": "10", "eleven": "11", "twelve": "12", "thirteen": "13", "fourteen": "14",
    "fifteen": "15", "sixteen": "16", "seventeen": "17", "eighteen": "18", "nineteen": "19",
}  # fmt: skip
_TENS = {
    "twenty": "2", "thirty": "3", "forty": "4", "fifty": "5",
    "sixty": "6", "seventy": "7", "eighty": "8", "ninety": "9",
}  # fmt: skip
_REPEAT = {"double": 2, "triple": 3}
# "oh" and "o" are zero only next to other digits ("oh seven nine", "three oh nine").
_ZERO_WORDS = {"oh", "o"}
_JOINERS = {"dot": ".", "underscore": "_", "dash": "-", "hyphen": "-"}
# The last label of a spoken e-mail domain: generic TLDs people say, or any two-letter country.
# Words before "at" that are the sentence, not an address ("our code is at github dot com").
_NOT_LOCAL = {
    "is", "me", "us", "it", "was", "are", "be", "were", "here", "there", "them", "him",
    "available", "online", "live", "hosted", "found", "up", "out", "site", "website", "page",
    "met", "meet", "work", "works", "worked", "stay", "stayed", "look", "see", "start", "go",
}  # fmt: skip
_TLDS = {"com", "org", "net", "edu", "gov", "io", "dev", "info", "biz", "app", "ai", "tech", "me"}


@dataclass(frozen=True)
class Normalised:
    """The written form and, per character of it, the original span it came from."""

    text: str
    starts: tuple[int, ...]
    ends: tuple[int, ...]

    def original(self, start: int, end: int) -> tuple[int, int]:
        """The original span behind `text[start:end]` (a non-empty range)."""
        return self.starts[start], self.ends[end - 1]


@dataclass
class _Tok:
    start: int
    end: int
    out: str
    digits: bool = False  # came from spoken digit words (joins with its digit neighbours)
    glue: bool = False  # written without the spaces around it (spoken "@", ".", "_")
    glue_right: bool = False  # written without the space after it (spoken "+")


def _is_tld(word: str) -> bool:
    return word in _TLDS or (len(word) == 2 and word.isalpha())


def _words(text: str) -> list[tuple[int, int, str]]:
    return [(m.start(), m.end(), m.group()) for m in _TOKEN.finditer(text)]


def _numbers(words: list[tuple[int, int, str]]) -> list[_Tok]:
    """Spoken digits to written ones, one token per original word (or word pair)."""
    toks: list[_Tok] = []
    i = 0
    while i < len(words):
        start, end, word = words[i]
        low = word.lower()
        nxt = words[i + 1][2].lower() if i + 1 < len(words) else ""
        if low in _UNITS:
            toks.append(_Tok(start, end, _UNITS[low], digits=True))
        elif low in _TEENS:
            toks.append(_Tok(start, end, _TEENS[low], digits=True))
        elif low in _TENS:
            if nxt in _UNITS and nxt != "zero":
                toks.append(_Tok(start, words[i + 1][1], _TENS[low] + _UNITS[nxt], digits=True))
                i += 1
            else:
                toks.append(_Tok(start, end, _TENS[low] + "0", digits=True))
        elif low == "hundred" and toks and toks[-1].digits and len(toks[-1].out) == 1:
            # "one eight hundred ...": a digit then "hundred" is two zeros in a number
            toks.append(_Tok(start, end, "00", digits=True))
        elif low in _REPEAT and (nxt in _UNITS or nxt in _ZERO_WORDS):
            digit = _UNITS.get(nxt, "0")
            toks.append(_Tok(start, words[i + 1][1], digit * _REPEAT[low], digits=True))
            i += 1
        else:
            toks.append(_Tok(start, end, word))
        i += 1
    # Zero words, now that the digits around them are known.
    for k, tok in enumerate(toks):
        if tok.out.lower() in _ZERO_WORDS and not tok.digits:
            before = k > 0 and toks[k - 1].digits
            after = k + 1 < len(toks) and (toks[k + 1].digits or toks[k + 1].out in _ZERO_WORDS)
            if before or after:
                tok.out, tok.digits = "0", True
    for k, tok in enumerate(toks):
        if tok.out.lower() == "plus" and k + 1 < len(toks) and toks[k + 1].digits:
            tok.out, tok.glue_right = "+", True
    # A pause written as "," or "-" inside a spoken number ("oh seven nine one one, one two
    # three") is not a separator of two numbers.
    for k in range(1, len(toks) - 1):
        if toks[k].out in (",", "-") and toks[k - 1].digits and toks[k + 1].digits:
            toks[k].out, toks[k].glue, toks[k].digits = "", True, True
    return toks


# A recogniser often writes the dots and leaves the "at" spoken ("jane.doe at example.com"): a
# written joiner counts like its word.
_WRITTEN_JOINERS = {".": "dot", "_": "underscore", "-": "dash"}


def _emails(toks: list[_Tok]) -> None:
    """Rewrites "<local> at <domain> dot <tld>" in place ("at" → "@", "dot" → ".", ...)."""
    low = [_WRITTEN_JOINERS.get(t.out, t.out.lower()) for t in toks]
    for k, word in enumerate(low):
        if word != "at":
            continue
        # domain: WORD ((dot|dash) WORD)* with at least one dot, ending in a TLD
        j, dots = k + 1, 0
        if j >= len(toks) or not toks[j].out.isalnum():
            continue
        while j + 2 < len(toks) and low[j + 1] in ("dot", "dash") and toks[j + 2].out.isalnum():
            dots += low[j + 1] == "dot"
            j += 2
        last = j
        if not dots or low[last - 1] != "dot" or not _is_tld(low[last]):
            continue
        # local part: WORD ((dot|underscore|dash) WORD)* right before "at"
        i = k - 1
        if i < 0 or not toks[i].out.isalnum() or low[i] in _NOT_LOCAL:
            continue
        while i - 2 >= 0 and low[i - 1] in _JOINERS and toks[i - 2].out.isalnum():
            i -= 2
        for m in range(i, last + 1):
            if low[m] in _JOINERS:
                toks[m].out, toks[m].glue = _JOINERS[low[m]], True
        toks[k].out, toks[k].glue = "@", True


def normalise(text: str) -> Normalised:
    toks = _numbers(_words(text))
    _emails(toks)
    out: list[str] = []
    starts: list[int] = []
    ends: list[int] = []

    def emit(piece: str, start: int, end: int) -> None:
        out.append(piece)
        starts.extend([start] * len(piece))
        ends.extend([end] * len(piece))

    prev: _Tok | None = None
    for tok in toks:
        if prev is not None:
            gap = text[prev.end : tok.start]
            joined = (
                prev.glue
                or prev.glue_right
                or tok.glue
                or (prev.digits and tok.digits and not gap.strip())
                or (prev.digits and tok.out.isdigit() and not gap.strip())
                or (tok.digits and prev.out.isdigit() and not gap.strip() and not prev.glue)
            )
            if not joined:
                # What stood between the two words, one character per original character.
                for offset, char in enumerate(gap):
                    emit(char, prev.end + offset, prev.end + offset + 1)
        emit(tok.out, tok.start, tok.end)
        prev = tok
    return Normalised("".join(out), tuple(starts), tuple(ends))
