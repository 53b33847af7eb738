"""Deck extraction: what an uploader gets back for real decks, and every way an upload is refused.

Decks are generated here (python-pptx, a hand-written PDF) rather than committed as binaries.
"""

from __future__ import annotations

import io
import os
import pickle
import random
import shutil
import struct
import sys
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pypdfium2 as pdfium
import pytest
from PIL import Image
from pptx import Presentation

from control_plane.decks.extract import (
    DeckRejected,
    Limits,
    extract,
    pptx_to_pdf,
    render_pdf_pages,
    sniff_kind,
)
from tests.factories import make_pdf, make_pptx, rezip, saved

if TYPE_CHECKING:
    from _pytest.mark import ParameterSet


@pytest.fixture(scope="module")
def pptx() -> bytes:
    return make_pptx(hidden_last=True)


# --- what comes out -------------------------------------------------------------------------


def test_pptx_slides_read_in_visual_order_with_tables_groups_and_notes(pptx: bytes) -> None:
    deck = extract(pptx)

    assert deck.kind == "pptx"
    assert [s.index for s in deck.slides] == [1, 2, 3]
    assert [s.title for s in deck.slides] == ["Quarterly review", "Two columns", "Numbers"]
    assert deck.slides[0].text == "Revenue up 12%\nDriven by EMEA\nChurn down"
    assert deck.slides[0].notes == "Open with the revenue number."
    assert deck.slides[1].text == "Intro\nLeft column\nRight column\nFooter remark"
    assert deck.slides[1].notes is None
    # The third slide is hidden in PowerPoint; it is kept, numbered where the editor shows it.
    assert deck.slides[2].text == "Region | Sales\nEMEA | 42"
    assert deck.slides[2].notes == "Mention\nEMEA."
    # python-pptx's (and PowerPoint's) default core title names nothing: slide 1's title does.
    assert deck.title == "Quarterly review"


def test_pptx_document_title_and_text_cap() -> None:
    deck = extract(make_pptx(core_title="Board deck"), Limits(max_text_chars_per_slide=12))
    assert deck.title == "Board deck"
    assert deck.slides[0].text == "Revenue up 1"
    assert all(len(s.text) <= 12 and len(s.notes or "") <= 12 for s in deck.slides)


def test_pdf_pages_become_slides_with_rendered_previews(tmp_path: Path) -> None:
    pdf = make_pdf(
        [["Welcome", "to the   launch"], ["Agenda", "One", "Two"], ["Thanks"]],
        title="Launch deck",
    )
    deck = extract(pdf)

    assert deck.kind == "pdf"
    assert deck.title == "Launch deck"
    assert [(s.index, s.title, s.text) for s in deck.slides] == [
        (1, "Welcome", "to the launch"),
        (2, "Agenda", "One\nTwo"),
        (3, "Thanks", ""),
    ]

    progress: list[tuple[int, int]] = []
    images = render_pdf_pages(
        pdf, tmp_path / "out", Limits(), on_page=lambda d, t: progress.append((d, t))
    )
    assert progress == [(1, 3), (2, 3), (3, 3)]
    assert len(images) == 3
    for full, thumb in images:
        with Image.open(full) as big, Image.open(thumb) as small:
            assert big.size == (1280, 720)
            assert small.size == (320, 180)
    with Image.open(images[0][0]) as first:
        # The page is drawn, not blank: the title's black glyphs are in the image.
        assert sum(first.convert("L").histogram()[:64]) > 500


def test_pdf_without_metadata_is_titled_by_its_first_page() -> None:
    deck = extract(b"\xef\xbb\xbf\n" + make_pdf([["Roadmap 2026", "Q1"]]))
    assert deck.title == "Roadmap 2026"


def test_giant_page_renders_within_the_pixel_cap(tmp_path: Path) -> None:
    # A 1-inch by 200-inch strip: scaling to 1280 px wide would need a 256,000 px tall bitmap.
    pdf = make_pdf([["tall"]], size=(72, 14400))
    [(full, thumb)] = render_pdf_pages(pdf, tmp_path, Limits())
    with Image.open(full) as image, Image.open(thumb) as small:
        assert image.size == (21, 4096)  # 4096 / 200 = 20.5 px wide
        assert small.size == (21, 4096)  # never enlarged


# --- what is refused ------------------------------------------------------------------------


def _member_size_lie(pptx: bytes) -> bytes:
    """A member of 8 MB of zeros whose central-directory entry claims 1,000 bytes."""
    data = bytearray(rezip(pptx, {"ppt/media/liar.bin": bytes(8 * 1024 * 1024)}))
    entry = data.rfind(b"PK\x01\x02", 0, data.rfind(b"ppt/media/liar.bin"))
    struct.pack_into("<I", data, entry + 24, 1000)
    return bytes(data)


LAUGHS = (
    b'<?xml version="1.0"?><!DOCTYPE p:sld [<!ENTITY a0 "lollollollollollol">'
    + b"".join(b'<!ENTITY a%d "%s">' % (i, b"&a%d;" % (i - 1) * 10) for i in range(1, 10))
    + b']><p:sld xmlns:p="http://schemas.openxmlformats.org/presentationml/2006/main">'
    b"<p:cSld><p:spTree>&a9;</p:spTree></p:cSld></p:sld>"
)


DEFAULTS = Limits()


def case(
    name: str, make: Callable[[bytes], bytes], code: str, says: str, limits: Limits = DEFAULTS
) -> ParameterSet:
    """``make`` turns the good 3-slide pptx into the upload under test."""
    return pytest.param(make, limits, code, says, id=name)


REJECTIONS = [
    case("empty", lambda p: b"", "empty_file", "The file is empty."),
    case("random-bytes", lambda p: random.Random(7).randbytes(4096), "unsupported_type",
         "Upload a PDF or a PowerPoint (.pptx) file."),
    case("renamed-txt", lambda p: b"Meeting notes, saved as deck.pptx\n", "unsupported_type",
         "neither a PDF nor a PowerPoint presentation"),
    case("legacy-ppt", lambda p: b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(600),
         "unsupported_type", "older PowerPoint (.ppt)"),
    case("over-max-bytes", lambda p: make_pdf([["x"]] * 20), "too_large",
         "at most 1,000 bytes is allowed", Limits(max_bytes=1000)),
    case("encrypted-pdf", lambda p: make_pdf([["Secret"]], encrypt=True), "pdf_encrypted",
         "password-protected"),
    case("truncated-pdf", lambda p: make_pdf([["a"], ["b"]])[:400], "pdf_corrupt", "cut off"),
    case("garbage-pdf", lambda p: b"%PDF-1.7\nnot really a pdf\n%%EOF\n", "pdf_corrupt",
         "damaged"),
    case("412-pages", lambda p: make_pdf([["a"]] * 412), "too_many_slides",
         "The PDF has 412 pages; at most 300 are allowed."),
    case("pptx-too-many-slides", lambda p: p, "too_many_slides",
         "The presentation has 3 slides; at most 2 are allowed.", Limits(max_slides=2)),
    case("zip-bomb", lambda p: rezip(p, {"ppt/media/zeros.bin": bytes(50 * 1024 * 1024)}),
         "archive_unsafe", "zip bomb"),
    case("zip-size-lie", _member_size_lie, "archive_unsafe", "larger than the archive declares"),
    case("path-traversal", lambda p: rezip(p, {"../../etc/cron.d/evil": b"x"}),
         "archive_unsafe", "unsafe name"),
    case("absolute-path", lambda p: rezip(p, {"/etc/passwd": b"x"}), "archive_unsafe",
         "unsafe name"),
    case("backslash-path", lambda p: rezip(p, {"ppt\\..\\evil": b"x"}), "archive_unsafe",
         "unsafe name"),
    case("too-many-members", lambda p: p, "archive_too_large", "; at most 10 are allowed.",
         Limits(max_archive_members=10)),
    case("unpacks-too-large", lambda p: p, "archive_too_large",
         "; at most 9.8 KB is allowed.", Limits(max_uncompressed_bytes=10_000)),
    case("broken-xml", lambda p: rezip(p, {}, replace={"ppt/presentation.xml": b"<p:pres"}),
         "pptx_corrupt", "could not be read"),
    case("billion-laughs", lambda p: rezip(p, {}, replace={"ppt/slides/slide1.xml": LAUGHS}),
         "pptx_corrupt", "could not be read"),
    case("no-slides", lambda p: saved(Presentation()), "no_slides", "has no slides"),
    case("truncated-pptx", lambda p: p[: len(p) // 2], "pptx_corrupt", "cut off"),
]  # fmt: skip


@pytest.mark.parametrize(("make", "limits", "code", "says"), REJECTIONS)
def test_rejections_name_the_problem(
    pptx: bytes, make: Callable[[bytes], bytes], limits: Limits, code: str, says: str
) -> None:
    upload = make(pptx)
    started = time.perf_counter()
    with pytest.raises(DeckRejected) as info:
        extract(upload, limits)
    assert info.value.code == code
    assert says in info.value.message
    assert time.perf_counter() - started < 1  # refused before any expensive work


def test_zip_without_a_presentation_is_not_a_deck() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("word/document.xml", "<w:document/>")
    with pytest.raises(DeckRejected, match="not a PowerPoint presentation") as info:
        sniff_kind(buffer.getvalue())
    assert info.value.code == "unsupported_type"


def test_external_entities_are_not_read(pptx: bytes, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-VALUE")
    with zipfile.ZipFile(io.BytesIO(pptx)) as archive:
        slide = archive.read("ppt/slides/slide1.xml")
    doctype = f'<!DOCTYPE p:sld [<!ENTITY x SYSTEM "{secret.as_uri()}">]>'.encode()
    root = slide.index(b"<p:sld")
    slide = slide[:root] + doctype + slide[root:].replace(b"Churn down", b"&x;")
    deck = extract(rezip(pptx, {}, replace={"ppt/slides/slide1.xml": slide}))
    assert "TOP-SECRET-VALUE" not in repr(deck)
    assert deck.slides[0].text == "Revenue up 12%\nDriven by EMEA"


def test_rejection_survives_a_process_pool_boundary() -> None:
    error = pickle.loads(pickle.dumps(DeckRejected("too_large", "The file is 60 MB.")))
    assert (error.code, error.message, str(error)) == ("too_large", *["The file is 60 MB."] * 2)


# --- LibreOffice ----------------------------------------------------------------------------


def test_pptx_to_pdf_without_soffice_returns_none(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, pptx: bytes
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert pptx_to_pdf(pptx) is None


def test_pptx_to_pdf_timeout_kills_the_whole_process_group(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture, pptx: bytes
) -> None:
    child_pid = tmp_path / "child.pid"
    fake = tmp_path / "soffice"
    # Like the real launcher: a wrapper whose child does the work.
    sleeper = f"{sys.executable} -c 'import time; time.sleep(60)'"
    fake.write_text(f"#!/bin/sh\n{sleeper} &\necho $! > {child_pid}\nwait\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")

    started = time.perf_counter()
    assert pptx_to_pdf(pptx, timeout_s=0.5) is None
    assert time.perf_counter() - started < 5
    assert "timed out" in caplog.text
    pid = int(child_pid.read_text())
    deadline = time.monotonic() + 5
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(pid)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A killed child of the shell is reaped by init; until then it is a zombie.
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split(") ")[-1][0] != "Z"


@pytest.mark.skipif(shutil.which("soffice") is None, reason="LibreOffice (soffice) not installed")
def test_pptx_converts_to_pdf_with_one_page_per_slide(pptx: bytes, tmp_path: Path) -> None:
    pdf = pptx_to_pdf(pptx)
    assert pdf is not None
    # The hidden third slide is exported too, so page N previews slide N.
    document = pdfium.PdfDocument(pdf)
    try:
        texts = [page.get_textpage().get_text_bounded() for page in document]
    finally:
        document.close()
    assert len(texts) == 3
    assert "Two columns" in texts[1] and "EMEA" in texts[2]
    images = render_pdf_pages(pdf, tmp_path, Limits())
    with Image.open(images[0][0]) as image:
        assert image.size == (1280, 720)
