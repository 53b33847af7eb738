"""PowerPoint decks: the zip is checked with ``zipfile`` before python-pptx reads a byte of it.

python-pptx reads every member into memory (``ZipFile.read`` per name), so the archive's index is
checked for member count, names and sizes first, and every deflated member is inflated once in
bounded chunks to prove its declared size is true: ``ZipExtFile.read()`` asks zlib for up to
2 GiB at a time and only then truncates to the declared size, so a member that lies about its
size would otherwise allocate gigabytes. Nothing is ever written to disk under a member's name.

XML entity attacks are handled by python-pptx's own parser (``resolve_entities=False``) on
top of libxml2's entity-amplification cap; ``test_extract.py`` pins that behaviour.
"""

from __future__ import annotations

import io
import logging
import re
import struct
import zipfile
import zlib
from collections.abc import Iterable, Iterator

from pptx import Presentation
from pptx.enum.shapes import PP_PLACEHOLDER
from pptx.exc import PythonPptxError
from pptx.opc.oxml import oxml_to_encoded_bytes
from pptx.oxml import parse_xml
from pptx.shapes.autoshape import Shape
from pptx.shapes.base import BaseShape
from pptx.shapes.graphfrm import GraphicFrame
from pptx.shapes.group import GroupShape
from pptx.slide import Slide

from control_plane.decks.limits import (
    DeckRejected,
    ExtractedDeck,
    ExtractedSlide,
    Limits,
    document_title,
    format_size,
    normalise_text,
    normalise_title,
)

logger = logging.getLogger(__name__)

# Average bytes per central-directory entry we accept before letting ZipFile parse the index
# (real entries are ~100 bytes); stops a 50 MB upload from becoming a million ZipInfo objects.
_INDEX_BYTES_PER_MEMBER = 1024
# Members smaller than this cannot hurt whatever their compression ratio.
_RATIO_FLOOR = 1024 * 1024
_INFLATE_CHUNK = 256 * 1024
_MAX_GROUP_DEPTH = 32
_SLIDE_PART = re.compile(r"ppt/slides/slide\d+\.xml")
_SKIPPED_PLACEHOLDERS = frozenset(
    {PP_PLACEHOLDER.DATE, PP_PLACEHOLDER.FOOTER, PP_PLACEHOLDER.SLIDE_NUMBER}
)
# What python-pptx, lxml and zipfile raise on malformed packages: a part missing from the
# relationships (KeyError), an XML element without a required child (AttributeError, TypeError),
# an out-of-range enum value (ValueError), a broken zip or deflate stream.
_MALFORMED = (
    PythonPptxError,
    SyntaxError,  # lxml.etree.XMLSyntaxError, including its entity-amplification refusal
    zipfile.BadZipFile,
    zlib.error,
    EOFError,
    KeyError,
    ValueError,
    AttributeError,
    TypeError,
    IndexError,
    NotImplementedError,
)

# Relationship parts, wherever they are: every one is checked, reachable from the package's
# root or not, since another reader may reach parts python-pptx would not.
_RELS_PART = re.compile(r"(?:.*/)?_rels/[^/]*\.rels", re.IGNORECASE)
_RELATIONSHIP = "{http://schemas.openxmlformats.org/package/2006/relationships}Relationship"
_HYPERLINKS = frozenset(
    {
        "http://schemas.openxmlformats.org/officeDocument/2006/relationships/hyperlink",
        "http://purl.oclc.org/ooxml/officeDocument/relationships/hyperlink",
    }
)
_NO_RELATIONSHIPS = (
    b'<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"/>'
)

_EOCD = struct.Struct("<4s4H2LH")
_ZIP64_LOCATOR = struct.Struct("<4sLQL")
_ZIP64_EOCD = struct.Struct("<4sQ2H2L4Q")


def _corrupt(detail: str = "it may be damaged") -> DeckRejected:
    return DeckRejected(
        "pptx_corrupt",
        f"The PowerPoint file could not be read ({detail}). Open it in PowerPoint, save it "
        "again as .pptx, and re-upload it.",
    )


def _unsafe(detail: str) -> DeckRejected:
    return DeckRejected(
        "archive_unsafe",
        f"The PowerPoint file was refused because {detail}. Save it again from PowerPoint "
        "and re-upload it.",
    )


def _index_size(data: bytes) -> tuple[int, int] | None:
    """(member count, central-directory bytes) from the end record, or None if not a zip."""
    start = data.rfind(b"PK\x05\x06", max(0, len(data) - _EOCD.size - 0xFFFF))
    if start < 0 or start + _EOCD.size > len(data):
        return None
    _, _, _, _, members, index_bytes, _, _ = _EOCD.unpack_from(data, start)
    locator = start - _ZIP64_LOCATOR.size
    if (members == 0xFFFF or index_bytes == 0xFFFFFFFF) and locator >= 0:
        _, _, offset, _ = _ZIP64_LOCATOR.unpack_from(data, locator)
        if offset + _ZIP64_EOCD.size <= len(data):
            fields = _ZIP64_EOCD.unpack_from(data, offset)
            if fields[0] == b"PK\x06\x06":
                members, index_bytes = fields[7], fields[8]
    return members, index_bytes


def open_archive(data: bytes, limits: Limits) -> zipfile.ZipFile | None:
    """The zip with its index size checked, or None when ``data`` is not a zip at all."""
    index = _index_size(data)
    if index is None:
        return None
    members, index_bytes = index
    if members > limits.max_archive_members:
        raise _too_many_members(members, limits)
    if index_bytes > limits.max_archive_members * _INDEX_BYTES_PER_MEMBER:
        raise _unsafe("its table of contents is far larger than a presentation needs")
    try:
        return zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError, struct.error) as exc:
        raise _corrupt("the ZIP structure is damaged") from exc


def _too_many_members(members: int, limits: Limits) -> DeckRejected:
    return DeckRejected(
        "archive_too_large",
        f"The PowerPoint file has {members:,} internal parts; at most "
        f"{limits.max_archive_members:,} are allowed.",
    )


def _unsafe_name(name: str) -> bool:
    parts = name.split("/")
    return (
        name.startswith("/")
        or "\\" in name
        or ".." in parts
        or ":" in parts[0]
        or any(ord(c) < 0x20 for c in name)
    )


def check_archive(archive: zipfile.ZipFile, limits: Limits) -> None:
    """Member count, names, total and per-member sizes, then each declared size proven true."""
    infos = archive.infolist()
    if len(infos) > limits.max_archive_members:
        raise _too_many_members(len(infos), limits)
    names: set[str] = set()
    for info in infos:
        if _unsafe_name(info.filename):
            raise _unsafe("it contains a part with an unsafe name (an absolute or '..' path)")
        if info.filename in names:
            raise _unsafe("it contains two parts with the same name")
        names.add(info.filename)
        if info.flag_bits & 0x1:
            raise _corrupt("some of its parts are encrypted")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise _corrupt("it uses a compression method PowerPoint does not write")
        if (
            info.file_size > _RATIO_FLOOR
            and info.file_size > info.compress_size * limits.max_member_ratio
        ):
            raise _unsafe(
                f"one part expands more than {limits.max_member_ratio:g} times when unpacked "
                "(a 'zip bomb')"
            )
    total = sum(info.file_size for info in infos)
    if total > limits.max_uncompressed_bytes:
        raise DeckRejected(
            "archive_too_large",
            f"The PowerPoint file unpacks to {format_size(total)}; at most "
            f"{format_size(limits.max_uncompressed_bytes)} is allowed. Compress its pictures "
            "(File > Compress Pictures) or remove embedded media, then re-upload it.",
        )
    slide_parts = sum(1 for name in names if _SLIDE_PART.fullmatch(name))
    if slide_parts > limits.max_slides:
        raise _too_many_slides(slide_parts, limits)
    for info in infos:
        if info.compress_type == zipfile.ZIP_DEFLATED:
            _check_inflated_size(archive, info)


def _check_inflated_size(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> None:
    """Inflate the member in bounded steps; refuse it once it passes its declared size."""
    fp = archive.fp
    if fp is None:
        raise ValueError("archive is closed")
    fp.seek(info.header_offset)
    header = fp.read(30)
    if len(header) != 30 or header[:4] != b"PK\x03\x04":
        raise _corrupt("the ZIP structure is damaged")
    name_len, extra_len = struct.unpack_from("<HH", header, 26)
    fp.seek(info.header_offset + 30 + name_len + extra_len)
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    remaining, produced = info.compress_size, 0
    try:
        while remaining > 0 and not inflater.eof:
            chunk = fp.read(min(_INFLATE_CHUNK, remaining))
            if not chunk:
                break
            remaining -= len(chunk)
            while chunk and not inflater.eof:
                produced += len(inflater.decompress(chunk, _INFLATE_CHUNK))
                if produced > info.file_size:
                    raise _unsafe("one part is larger than the archive declares (a 'zip bomb')")
                chunk = inflater.unconsumed_tail
    except zlib.error as exc:
        raise _corrupt("a compressed part is damaged") from exc


def _too_many_slides(slides: int, limits: Limits) -> DeckRejected:
    return DeckRejected(
        "too_many_slides",
        f"The presentation has {slides:,} slides; at most {limits.max_slides:,} are allowed.",
    )


def _reading_order(shapes: Iterable[BaseShape], band: int) -> list[BaseShape]:
    """Top to bottom, then left to right; shapes whose tops are within ``band`` share a row."""
    # Each position read once: a placeholder's is inherited, looked up in its layout by XPath,
    # and was looked up again in every comparison (5,700 XPath queries for a 100-slide deck
    # before, 4,300 now).
    placed = sorted(((s.top or 0, s.left or 0, s) for s in shapes), key=lambda p: (p[0], p[1]))
    rows: list[list[tuple[int, int, BaseShape]]] = []
    for top, left, shape in placed:
        if rows and top - rows[-1][0][0] <= band:
            rows[-1].append((top, left, shape))
        else:
            rows.append([(top, left, shape)])
    return [shape for row in rows for _, _, shape in sorted(row, key=lambda p: p[1])]


def _shape_text(shape: BaseShape, band: int, depth: int = 0) -> Iterator[str]:
    if isinstance(shape, GroupShape):
        # Child offsets are in the group's own coordinate space, so a group is ordered among
        # its siblings as one block and its children among themselves.
        if depth < _MAX_GROUP_DEPTH:
            for child in _reading_order(shape.shapes, band):
                yield from _shape_text(child, band, depth + 1)
    elif isinstance(shape, GraphicFrame) and shape.has_table:
        for row in shape.table.rows:
            cells = (" ".join(cell.text.split()) for cell in row.cells if not cell.is_spanned)
            yield " | ".join(cell for cell in cells if cell)
    elif isinstance(shape, Shape):
        if shape.is_placeholder and shape.placeholder_format.type in _SKIPPED_PLACEHOLDERS:
            return
        yield shape.text_frame.text


def _extract_slide(slide: Slide, index: int, band: int, cap: int) -> ExtractedSlide:
    title_shape = slide.shapes.title
    # Shape equality is element identity; shape ids are not unique in every real deck.
    body_shapes = [s for s in slide.shapes if s != title_shape]
    lines = (line for s in _reading_order(body_shapes, band) for line in _shape_text(s, band))
    notes: str | None = None
    if slide.has_notes_slide:
        frame = slide.notes_slide.notes_text_frame
        notes = normalise_text(frame.text, cap) if frame is not None else None
    return ExtractedSlide(
        index=index,
        title=normalise_title(title_shape.text_frame.text) if title_shape is not None else None,
        text=normalise_text("\n".join(lines), cap),
        notes=notes or None,
    )


def extract_pptx(data: bytes, limits: Limits) -> ExtractedDeck:
    """Every slide, hidden ones included, numbered as PowerPoint's slide sorter numbers them."""
    archive = open_archive(data, limits)
    if archive is None:
        raise _corrupt("it is not a ZIP archive")
    with archive:
        check_archive(archive, limits)
    try:
        presentation = Presentation(io.BytesIO(data))
        slides = list(presentation.slides)
        if len(slides) > limits.max_slides:
            raise _too_many_slides(len(slides), limits)
        # Rows of text are told apart at 1/40 of the slide height (about 0.19 in on 16:9).
        band = (presentation.slide_height or 6_858_000) // 40
        extracted = [
            _extract_slide(slide, i, band, limits.max_text_chars_per_slide)
            for i, slide in enumerate(slides, start=1)
        ]
        core_title = presentation.core_properties.title
    except _MALFORMED as exc:
        logger.info("pptx rejected as malformed", extra={"error": type(exc).__name__})
        raise _corrupt() from exc
    if not extracted:
        raise DeckRejected("no_slides", "The presentation has no slides.")
    return ExtractedDeck(
        kind="pptx",
        slides=extracted,
        title=document_title(core_title, extracted[0].title),
    )


def without_external_links(data: bytes) -> bytes:
    """The package without its links to resources outside it (linked images, video and audio,
    OLE objects, templates…), which LibreOffice would fetch while drawing the slides; hyperlinks
    stay, they are never fetched. ``data`` has passed :func:`extract_pptx`'s checks."""
    replaced: dict[str, bytes] = {}
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        for info in archive.infolist():
            if _RELS_PART.fullmatch(info.filename):
                stripped = _strip_external(archive.read(info))
                if stripped is not None:
                    replaced[info.filename] = stripped
        if not replaced:
            return data
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as copy:
            for info in archive.infolist():
                copy.writestr(info, replaced.get(info.filename) or archive.read(info))
    logger.info("external links removed before rendering", extra={"parts": len(replaced)})
    return out.getvalue()


def _strip_external(rels: bytes) -> bytes | None:
    """The relationships without external non-hyperlink targets; None when nothing changes.
    A part that does not parse loses all its relationships: a reader might parse it anyway."""
    try:
        root = parse_xml(rels)
    except SyntaxError:
        return _NO_RELATIONSHIPS
    external = [
        rel
        for rel in root.iter(_RELATIONSHIP)
        if (rel.get("TargetMode") or "").strip().lower() == "external"
        and (rel.get("Type") or "").strip() not in _HYPERLINKS
    ]
    if not external:
        return None
    for rel in external:
        rel.getparent().remove(rel)
    encoded: bytes = oxml_to_encoded_bytes(root, encoding="UTF-8", standalone=True)
    return encoded
