"""What deck conversion may reach: external links removed from the package (hyperlinks kept),
a minimal environment, and a network namespace only where the system allows one."""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import pytest

from control_plane.decks.extract import extract, pptx_to_pdf
from control_plane.decks.extract_pptx import without_external_links
from control_plane.decks.isolation import minimal_env, network_namespace
from tests.factories import make_pptx, make_pptx_with_linked_image, rezip

SLIDE_RELS = "ppt/slides/_rels/slide1.xml.rels"


def _rels(pptx: bytes, name: str = SLIDE_RELS) -> str:
    with zipfile.ZipFile(io.BytesIO(pptx)) as archive:
        return archive.read(name).decode()


def test_linked_pictures_are_removed_and_hyperlinks_kept() -> None:
    pptx = make_pptx_with_linked_image("http://169.254.169.254/latest/meta-data")
    assert _rels(pptx).count("169.254.169.254") == 2
    stripped = without_external_links(pptx)
    rels = _rels(stripped)
    assert rels.count("169.254.169.254") == 1
    assert 'relationships/hyperlink" Target="http://169.254.169.254' in rels
    assert "../slideLayouts/slideLayout6.xml" in rels and "../media/image1.png" in rels
    assert extract(stripped) == extract(pptx)  # the text is the same


def test_every_relationship_part_is_checked_whatever_its_spelling() -> None:
    linked = (
        '<?xml version="1.0"?><Relationships xmlns="http://schemas.openxmlformats.org/package/'
        '2006/relationships"><Relationship Id="rId1" TargetMode=" external " Target="http://x/'
        'v.mp4" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/'
        'video"/></Relationships>'
    )
    pptx = rezip(
        make_pptx(),
        # a part nothing refers to, and one that is not XML at all
        {"ppt/orphans/_rels/thing.xml.rels": linked.encode(), "ppt/_rels/Broken.rels": b"<"},
    )
    stripped = without_external_links(pptx)
    assert "http://x/" not in _rels(stripped, "ppt/orphans/_rels/thing.xml.rels")
    assert "Relationship " not in _rels(stripped, "ppt/_rels/Broken.rels")


def test_a_deck_without_external_links_is_left_as_it_is() -> None:
    pptx = make_pptx()
    assert without_external_links(pptx) is pptx


def test_the_converters_environment_holds_nothing_of_ours(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PODIUM_DATABASE_URL", "postgresql://podium:hunter2@db/podium")
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    env = minimal_env(tmp_path)
    assert set(env) <= {"PATH", "LANG", "HOME", "TMPDIR"}
    assert env["HOME"] == str(tmp_path)


def test_no_network_namespace_where_unshare_is_refused(tmp_path: Path) -> None:
    refused = tmp_path / "unshare"
    refused.write_text(
        "#!/bin/sh\necho 'unshare: unshare failed: Operation not permitted' >&2\nexit 1\n"
    )
    refused.chmod(0o755)
    assert network_namespace(str(refused)) is None
    allowed = tmp_path / "unshare-ok"
    allowed.write_text('#!/bin/sh\nwhile [ "$1" != "--" ]; do shift; done; shift; exec "$@"\n')
    allowed.chmod(0o755)
    assert network_namespace(str(allowed)) == [str(allowed), "--net", "--"]


def test_a_file_that_is_no_zip_never_reaches_libreoffice(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """LibreOffice guesses a format from content: HTML named deck.pptx would be opened as HTML
    and its images fetched."""
    ran = tmp_path / "ran"
    fake = tmp_path / "soffice"
    fake.write_text(f"#!/bin/sh\ntouch {ran}\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    assert pptx_to_pdf(b'<html><img src="http://127.0.0.1:9/x.png"></html>') is None
    assert not ran.exists()
