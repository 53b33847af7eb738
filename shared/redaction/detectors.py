"""Detectors over the written form: each yields (start, end, entity) spans of the text it is given.
Numbers count only when their checksum or numbering plan says they can be real: cards by Luhn,
IBANs by ISO 7064 mod 97, phones by libphonenumber's plan for the country, national ids by the
rules python-stdnum implements."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

import phonenumbers
from stdnum import iban, luhn
from stdnum.ca import sin as ca_sin
from stdnum.es import dni as es_dni
from stdnum.gb import nhs as gb_nhs
from stdnum.in_ import aadhaar as in_aadhaar
from stdnum.nl import bsn as nl_bsn
from stdnum.us import ssn as us_ssn

Span = tuple[int, int, str]

_EMAIL = re.compile(
    r"(?<![\w.+-])[A-Za-z0-9][A-Za-z0-9._%+'-]*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b"
)
# 13-19 digits, optionally grouped by single spaces or hyphens.
_CARD = re.compile(r"(?<![\d.,])\d(?:[ -]?\d){12,18}(?![\d])")
# Country code, check digits, then up to 30 letters or digits, any of them spaced apart.
_IBAN = re.compile(r"\b[A-Z] ?[A-Z] ?\d ?\d(?: ?[A-Z0-9]){11,30}\b", re.IGNORECASE)
_SSN = re.compile(r"(?<![\d-])\d{3}[- ]\d{2}[- ]\d{4}(?![\d-])")
# UK National Insurance number: two letters (HMRC never issues D, F, I, Q, U, V; nor O second;
# nor the pairs below), six digits, suffix A-D.
_NINO = re.compile(
    r"\b([A-CEGHJ-PR-TW-Z]) ?([A-CEGHJ-NPR-TW-Z]) ?(\d ?\d ?\d ?\d ?\d ?\d) ?([A-D])\b",
    re.IGNORECASE,
)
_NINO_BAD_PREFIXES = {"BG", "GB", "NK", "KN", "TN", "NT", "ZZ"}
_DIGIT_RUN = re.compile(r"(?<![\d.,])\d(?:[ -]?\d){7,13}[A-Z]?(?![\d])", re.IGNORECASE)
# Each national id without a distinctive written form counts only after words that name it.
_ID_CONTEXTS: tuple[tuple[re.Pattern[str], Callable[[str], bool]], ...] = (
    (re.compile(r"\b(?:social security|ssn|social)\b", re.I), us_ssn.is_valid),
    (re.compile(r"\bnhs\b", re.I), gb_nhs.is_valid),
    (re.compile(r"\b(?:dni|nif|documento)\b", re.I), es_dni.is_valid),
    (re.compile(r"\b(?:bsn|burgerservicenummer)\b", re.I), nl_bsn.is_valid),
    (re.compile(r"\b(?:sin|social insurance)\b", re.I), ca_sin.is_valid),
    (re.compile(r"\baadhaar\b", re.I), in_aadhaar.is_valid),
)
_CONTEXT_WINDOW = 40  # characters before a number in which its naming words may stand
# Where a number without "+" is dialled from: the markets we sell in first.
_PHONE_REGIONS = ("US", "GB")


def _compact(text: str) -> str:
    return re.sub(r"[\s-]", "", text)


def emails(text: str) -> Iterator[Span]:
    for m in _EMAIL.finditer(text):
        yield m.start(), m.end(), "EMAIL"


def cards(text: str) -> Iterator[Span]:
    for m in _CARD.finditer(text):
        digits = _compact(m.group())
        # Issuers' ranges start with 2-6 (Mastercard 2-series and 5, Amex/Diners/JCB 3, Visa 4,
        # Discover/UnionPay 6): a Luhn-valid "1111..." is a counter, not a card.
        if digits[0] in "23456" and luhn.is_valid(digits):
            yield m.start(), m.end(), "CARD"


def ibans(text: str) -> Iterator[Span]:
    for m in _IBAN.finditer(text):
        # The pattern also swallows words after the number ("... 7654 32 by friday" is not, but
        # "... 32 AB" could be): keep the longest prefix whose check digits hold.
        candidate = m.group()
        for end in range(len(candidate), 0, -1):
            if end < len(candidate) and candidate[end].isalnum() and candidate[end - 1] != " ":
                continue
            # ISO 13616 structure and mod-97 check digits; stdnum's per-country extras (bank-code
            # registries) would reject real accounts at banks its lists do not know.
            if iban.is_valid(candidate[:end].upper(), check_country=False):
                yield m.start(), m.start() + end, "IBAN"
                break


def national_ids(text: str) -> Iterator[Span]:
    for m in _SSN.finditer(text):
        if us_ssn.is_valid(_compact(m.group())):
            yield m.start(), m.end(), "NATIONAL_ID"
    for m in _NINO.finditer(text):
        prefix = (m.group(1) + m.group(2)).upper()
        if prefix not in _NINO_BAD_PREFIXES:
            yield m.start(), m.end(), "NATIONAL_ID"
    for m in _DIGIT_RUN.finditer(text):
        before = text[max(0, m.start() - _CONTEXT_WINDOW) : m.start()]
        number = _compact(m.group()).upper()
        if any(c.search(before) and _valid(v, number) for c, v in _ID_CONTEXTS):
            yield m.start(), m.end(), "NATIONAL_ID"


def _valid(validator: Callable[[str], bool], number: str) -> bool:
    try:
        return validator(number)
    except Exception:  # stdnum validators raise on some malformed input instead of returning
        return False


# A recogniser groups spoken digits as it likes ("415-55-5-5-0-132"), which libphonenumber's
# matcher does not take for a number; after words that announce one, the digits alone decide.
_PHONE_CUE = re.compile(
    r"\b(?:call|phone|number|mobile|cell|ring|reach|text|whatsapp|contact|dial)\b", re.I
)
_LOOSE_DIGITS = re.compile(r"(?<![\w.])\+?\d(?:[ .-]{0,2}\d){6,14}(?!\w)")


def phones(text: str) -> Iterator[Span]:
    for region in _PHONE_REGIONS:
        for match in phonenumbers.PhoneNumberMatcher(text, region, phonenumbers.Leniency.VALID):
            yield match.start, match.end, "PHONE"
    for m in _LOOSE_DIGITS.finditer(text):
        if _PHONE_CUE.search(text[max(0, m.start() - 40) : m.start()]) and _phone_digits(m.group()):
            yield m.start(), m.end(), "PHONE"


def _phone_digits(written: str) -> bool:
    digits = "+" * written.startswith("+") + re.sub(r"\D", "", written)
    for region in (None,) if digits.startswith("+") else _PHONE_REGIONS:
        try:
            if phonenumbers.is_valid_number(phonenumbers.parse(digits, region)):
                return True
        except phonenumbers.NumberParseException:
            continue
    return False


PATTERNS: tuple[Callable[[str], Iterator[Span]], ...] = (
    cards,
    ibans,
    national_ids,
    emails,
    phones,
)
