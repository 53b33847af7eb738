"""The long-lived LibreOffice (real soffice and python3-uno): reused across decks, killed when it
hangs (the next deck still converts), recycled after its quota, gone after close."""

from __future__ import annotations

import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pypdfium2 as pdfium
import pytest

from control_plane.decks.converter import ConverterBounds, PptxConverter, find_uno_python
from control_plane.decks.extract_pptx import without_external_links
from control_plane.decks.isolation import network_namespace
from tests.factories import make_pptx

pytestmark = pytest.mark.skipif(
    find_uno_python() is None, reason="LibreOffice with python3-uno not installed"
)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # An orphan killed with its group is reaped by init; until then it is a zombie.
    stat = Path(f"/proc/{pid}/stat")
    try:
        return stat.read_text().split(") ")[-1][0] != "Z"
    except FileNotFoundError:
        return False


def _environ(pid: int) -> list[bytes]:
    return Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")


def _page_texts(pdf: bytes) -> list[str]:
    document = pdfium.PdfDocument(pdf)
    try:
        return [page.get_textpage().get_text_bounded() for page in document]
    finally:
        document.close()


@pytest.fixture
def package() -> bytes:
    return without_external_links(make_pptx(hidden_last=True))


async def _converter(**bounds: float) -> AsyncIterator[PptxConverter]:
    converter = PptxConverter.from_system(ConverterBounds(**bounds))  # type: ignore[arg-type]
    assert converter is not None
    try:
        yield converter
    finally:
        await converter.aclose()


@pytest.fixture
async def converter() -> AsyncIterator[PptxConverter]:
    async for c in _converter(timeout_s=60):
        yield c


async def test_one_office_converts_deck_after_deck(
    converter: PptxConverter, package: bytes
) -> None:
    assert converter.pid is None  # started by the first deck, not before
    first = await converter.convert(package)
    office = converter.pid
    second = await converter.convert(package)
    assert first is not None and second is not None
    # Hidden slides are exported too: page N is slide N.
    for pdf in (first, second):
        texts = _page_texts(pdf)
        assert len(texts) == 3
        assert "Two columns" in texts[1] and "EMEA" in texts[2]
    assert office is not None and converter.pid == office and _alive(office)


async def test_the_office_runs_without_network_and_without_our_environment(
    converter: PptxConverter, package: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PODIUM_CANARY_SECRET", "not for LibreOffice")
    assert await converter.convert(package) is not None
    office = converter.pid
    assert office is not None
    assert not [v for v in _environ(office) if v.startswith(b"PODIUM_")]
    if network_namespace() is not None:  # this system allows one, so the office must be in it
        assert os.readlink(f"/proc/{office}/ns/net") != os.readlink("/proc/self/ns/net")


async def test_a_hung_office_is_killed_and_the_next_deck_converts(package: bytes) -> None:
    async for converter in _converter(timeout_s=20):
        assert await converter.convert(package) is not None
        hung = converter.pid
        assert hung is not None
        os.killpg(os.getpgid(hung), signal.SIGSTOP)  # the driver and the office stop answering
        assert await converter.convert(package) is None
        assert not _alive(hung)
        pdf = await converter.convert(package)
        assert pdf is not None and len(_page_texts(pdf)) == 3
        assert converter.pid not in (None, hung)


async def test_the_office_is_replaced_after_its_quota_and_stopped_on_close(
    package: bytes,
) -> None:
    async for converter in _converter(timeout_s=60, max_conversions=2):
        await converter.convert(package)
        first = converter.pid
        assert first is not None
        await converter.convert(package)  # the second: the quota is spent, the office stops
        assert converter.pid is None and not _alive(first)
        await converter.convert(package)
        last = converter.pid
        assert last is not None and last != first
        await converter.aclose()
        assert not _alive(last)
