"""Decks made at test time (python-pptx, a hand-written PDF) instead of committed binaries."""

from __future__ import annotations

import io
import zipfile
from typing import TYPE_CHECKING

from pptx import Presentation
from pptx.opc.constants import RELATIONSHIP_TYPE as RT
from pptx.shapes.shapetree import GroupShapes, SlideShapes
from pptx.util import Emu, Inches

if TYPE_CHECKING:
    from pptx.presentation import Presentation as PresentationObject

# --- deck builders ---------------------------------------------------------------------------


def _pdf_string(text: str) -> str:
    return "(" + text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)") + ")"


def make_pdf(
    pages: list[list[str]],
    *,
    size: tuple[float, float] = (720, 405),
    title: str | None = None,
    encrypt: bool = False,
) -> bytes:
    """A minimal PDF: one Helvetica line per string, top-down, each page ``size`` points."""
    width, height = size
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>"]
    kids = " ".join(f"{4 + 2 * i} 0 R" for i in range(len(pages)))
    objects.append(f"<< /Type /Pages /Kids [{kids}] /Count {len(pages)} >>".encode())
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    for i, lines in enumerate(pages):
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {width} {height}] "
            f"/Resources << /Font << /F1 3 0 R >> >> /Contents {5 + 2 * i} 0 R >>".encode()
        )
        ops = [f"BT /F1 24 Tf 40 {height - 60} Td 30 TL"]
        ops += [f"{_pdf_string(line)} Tj T*" for line in lines] + ["ET"]
        stream = "\n".join(ops).encode()
        objects.append(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream))
    trailer = ""
    if title is not None:
        objects.append(f"<< /Title {_pdf_string(title)} >>".encode())
        trailer += f" /Info {len(objects)} 0 R"
    if encrypt:
        # Standard security handler with a user password that the empty string does not match.
        objects.append(
            b"<< /Filter /Standard /V 1 /R 2 /O <%s> /U <%s> /P -4 >>" % (b"ab" * 32, b"cd" * 32)
        )
        trailer += f" /Encrypt {len(objects)} 0 R /ID [<{'11' * 16}> <{'11' * 16}>]"
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += (
        f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R{trailer} >>\nstartxref\n{xref}\n%%EOF\n"
    ).encode()
    return bytes(out)


def _text_box(shapes: SlideShapes | GroupShapes, left: float, top: float, text: str) -> None:
    box = shapes.add_textbox(Inches(left), Inches(top), Inches(3), Inches(0.6))
    box.text_frame.text = text


def make_pptx(*, hidden_last: bool = False, core_title: str | None = None) -> bytes:
    """Three slides whose shapes are added out of visual order, as real decks often are."""
    prs = Presentation()
    prs.slide_width, prs.slide_height = Emu(12_192_000), Emu(6_858_000)  # PowerPoint 16:9
    title_and_content, title_only = prs.slide_layouts[1], prs.slide_layouts[5]

    first = prs.slides.add_slide(title_and_content)
    first.shapes.title.text = "Quarterly   review"
    body = first.placeholders[1].text_frame
    body.text = "Revenue up 12%"
    sub = body.add_paragraph()
    sub.text, sub.level = "Driven by EMEA", 1
    body.add_paragraph().text = "Churn down"
    first.notes_slide.notes_text_frame.text = "Open with the revenue number."

    second = prs.slides.add_slide(title_only)
    second.shapes.title.text = "Two columns"
    _text_box(second.shapes, 1, 6.5, "Footer remark")
    group = second.shapes.add_group_shape()
    _text_box(group.shapes, 7, 3, "Right column")
    _text_box(group.shapes, 1, 3.05, "Left column")
    _text_box(second.shapes, 1, 1.6, "Intro")

    third = prs.slides.add_slide(title_only)
    third.shapes.title.text = "Numbers"
    table = third.shapes.add_table(2, 2, Inches(1), Inches(2), Inches(6), Inches(1.5)).table
    for r, row in enumerate([["Region", "Sales"], ["EMEA", "42"]]):
        for c, value in enumerate(row):
            table.cell(r, c).text = value
    third.notes_slide.notes_text_frame.text = "Mention\nEMEA."
    if hidden_last:
        third._element.set("show", "0")

    if core_title is not None:
        prs.core_properties.title = core_title
    return saved(prs)


# A 1x1 PNG: the picture a linked image replaces, as PowerPoint writes "link to file".
_PIXEL = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
    "0000000d4944415478da63fccfc0f01f00050502005fc8f1d20000000049454e44ae426082"
)
_R = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}"


def make_pptx_with_linked_image(image_url: str) -> bytes:
    """One slide whose picture is linked, not embedded (fetched from ``image_url`` when the
    slide is drawn), and whose text links to the same address (a hyperlink, never fetched)."""
    prs = Presentation()
    slide = prs.slides.add_slide(prs.slide_layouts[5])
    slide.shapes.title.text = "Linked picture"
    picture = slide.shapes.add_picture(io.BytesIO(_PIXEL), Inches(1), Inches(2), Inches(3))
    blip = picture._element.blipFill.blip
    del blip.attrib[f"{_R}embed"]
    blip.set(f"{_R}link", slide.part.relate_to(image_url, RT.IMAGE, is_external=True))
    box = slide.shapes.add_textbox(Inches(5), Inches(2), Inches(3), Inches(1))
    run = box.text_frame.paragraphs[0].add_run()
    run.text = "Source"
    run.hyperlink.address = image_url
    return saved(prs)


def saved(prs: PresentationObject) -> bytes:
    buffer = io.BytesIO()
    prs.save(buffer)
    return buffer.getvalue()


def rezip(
    pptx: bytes, extra: dict[str, bytes], *, replace: dict[str, bytes] | None = None
) -> bytes:
    """The package with members replaced or added, written without any name checks."""
    replace = replace or {}
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(pptx)) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            data = replace.get(info.filename, src.read(info))
            dst.writestr(info.filename, data, compress_type=zipfile.ZIP_DEFLATED)
        for name, data in extra.items():
            dst.writestr(name, data, compress_type=zipfile.ZIP_DEFLATED)
    return out.getvalue()


PRODUCT_DECK = [
    ("Acme Analytics", "Decisions from your data in minutes", "Welcome everyone."),
    (
        "The problem",
        "Teams wait weeks for reports\nSpreadsheets break at scale",
        "Most of our customers used to spend two days a week building reports by hand.",
    ),
    (
        "How it works",
        "Connect your warehouse\nAsk questions in plain English\nShare live dashboards",
        "Setup takes about fifteen minutes with the Snowflake or BigQuery connector.",
    ),
    (
        "Pricing",
        "Starter\nTeam\nEnterprise",
        "Plans start at 49 dollars per month for five seats; enterprise is custom with "
        "volume discounts and an annual contract.",
    ),
    (
        "Security and compliance",
        "SOC 2 Type II\nSSO with SAML\nData encrypted at rest",
        "We never store raw customer rows; only aggregates are cached for an hour.",
    ),
    ("Our team", "Founded 2021 in Lisbon\n40 people", "The founders previously built Looker."),
    (
        "Roadmap",
        "Q1: alerts\nQ2: forecasting\nQ3: mobile app",
        "Forecasting uses seasonal models and ships in the second quarter.",
    ),
    ("Questions?", "sales@acme.example", None),
]


def make_product_deck() -> bytes:
    """An eight-slide sales deck with speaker notes, for ingestion and search tests."""
    prs = Presentation()
    layout = prs.slide_layouts[1]
    for title, body, notes in PRODUCT_DECK:
        slide = prs.slides.add_slide(layout)
        slide.shapes.title.text = title
        slide.placeholders[1].text_frame.text = body
        if notes:
            slide.notes_slide.notes_text_frame.text = notes
    return saved(prs)
