"""Slide previews drawn by several sandboxed children at once: every page once, in order, and
in the right colours."""

from __future__ import annotations

import io
import uuid
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from control_plane.decks.extract import Limits, render_pdf_pages
from control_plane.decks.ingest import IngestionRunner, _ProgressWriter
from control_plane.decks.sandbox import Bounds
from tests.factories import make_pdf


class _Seen(_ProgressWriter):
    """Progress as the runner reports it, kept instead of written to Postgres."""

    def __init__(self, total: int) -> None:
        super().__init__(pool=None, deck_id=uuid.uuid4(), total=total)  # type: ignore[arg-type]
        self.reports: list[tuple[int, int]] = []

    def rendered(self, done: int, total: int) -> None:
        self.reports.append((done, total))


def _deck(pages: int) -> bytes:
    return make_pdf([[f"Slide {i}", f"page {i} of {pages}"] for i in range(1, pages + 1)])


def test_shares_render_every_nth_page(tmp_path: Path) -> None:
    pdf = _deck(5)
    progress: list[tuple[int, int]] = []
    first = render_pdf_pages(
        pdf, tmp_path, Limits(), share=(0, 2), on_page=lambda *p: progress.append(p)
    )
    second = render_pdf_pages(pdf, tmp_path, Limits(), share=(1, 2))
    assert [full.name for full, _ in first] == ["slide-001.jpg", "slide-003.jpg", "slide-005.jpg"]
    assert [full.name for full, _ in second] == ["slide-002.jpg", "slide-004.jpg"]
    assert progress == [(1, 5), (2, 5), (3, 5)]  # this share's pages, of the document's


@pytest.mark.parametrize("share", [(2, 2), (-1, 2), (0, 0)])
def test_a_share_outside_the_document_is_refused(tmp_path: Path, share: tuple[int, int]) -> None:
    with pytest.raises(ValueError, match="share"):
        render_pdf_pages(_deck(1), tmp_path, Limits(), share=share)


def test_colours_come_out_in_rgb_order(tmp_path: Path) -> None:
    page = io.BytesIO()
    Image.new("RGB", (400, 300), (220, 30, 40)).save(page, "PDF")
    [(full, thumb)] = render_pdf_pages(page.getvalue(), tmp_path, Limits())
    for path in (full, thumb):
        with Image.open(path) as image:
            red, green, blue = image.convert("RGB").getpixel((image.width // 2, image.height // 2))
            assert red > 180 and green < 80 and blue < 80, (path.name, red, green, blue)


async def test_the_runner_merges_the_children_shares_in_slide_order(tmp_path: Path) -> None:
    pages = 7
    runner: Any = IngestionRunner(
        None,  # type: ignore[arg-type]  # drawing touches neither Postgres nor storage
        None,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        Limits(),
        Bounds(),
        render_processes=3,
    )
    seen = _Seen(pages)
    drawn = await runner._render_pages(_deck(pages), "pdf", str(tmp_path), seen)
    assert [Path(full).name for full, _ in drawn] == [f"slide-{i:03d}.jpg" for i in range(1, 8)]
    assert [Path(thumb).name for _, thumb in drawn] == [
        f"slide-{i:03d}-thumb.jpg" for i in range(1, 8)
    ]
    # three children counted together, up to every page of the document
    assert max(done for done, _ in seen.reports) == pages
    assert {total for _, total in seen.reports} == {pages}
