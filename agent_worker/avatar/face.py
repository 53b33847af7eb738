"""The local presenter's face: a flat, illustrated portrait drawn once per style, then composed
per video frame from pre-rendered layers (the scene, the head, eyes and mouth shapes).

Everything is drawn at twice the output size and scaled down, so edges are anti-aliased. A frame
then costs three alpha-composites of small patches and one copy: well under a millisecond's
worth of Python per frame, the pixels are all touched in Pillow's C code.

Design coordinates are a 640x360 canvas; other sizes scale them (and centre the portrait).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from shared.schemas import AvatarStyle

DESIGN_W, DESIGN_H = 640, 360
SUPERSAMPLE = 2
MOUTH_LEVELS = 8
"""Mouth openings, from closed (0) to wide open (MOUTH_LEVELS - 1)."""
MouthShape = Literal["round", "neutral", "wide"]
MOUTH_SHAPES: tuple[MouthShape, ...] = ("round", "neutral", "wide")
Eyes = Literal["open", "half", "closed"]
EYE_STATES: tuple[Eyes, ...] = ("open", "half", "closed")

# Patches in design coordinates: (left, top, right, bottom).
_HEAD_BOX = (196, 28, 444, 300)
_EYES_BOX = (278, 116, 362, 152)
_MOUTH_BOX = (292, 168, 348, 208)
_MOUTH_REGION = (296, 168, 344, 207)  # the widest mouth, swayed 4 px any way
_MOUTH_CENTRE = (320, 186)  # where the mouth sits, in design coordinates

RGB = tuple[int, int, int]


def mouth_region(width: int, height: int) -> tuple[int, int, int, int]:
    """Where the mouth can be in a ``width``x``height`` frame, whatever the head's sway:
    (left, top, right, bottom), all of it inside the face."""
    scale = min(width / DESIGN_W, height / DESIGN_H)
    x0, y0 = (width - DESIGN_W * scale) / 2, (height - DESIGN_H * scale) / 2
    left, top, right, bottom = _MOUTH_REGION
    return (
        round(x0 + left * scale),
        round(y0 + top * scale),
        round(x0 + right * scale),
        round(y0 + bottom * scale),
    )


def mouth_opening(rgba: np.ndarray, *, darker_than: float = 0.5) -> float:
    """How open the mouth is in a received frame (``height x width x 4``): the share of the
    mouth region darker than ``darker_than`` times the skin (the region's median): the inside
    of an open mouth; lips, teeth and the closed smile are lighter. 0 when closed. Measured on
    what a viewer's client decoded, so tests and the lip-sync benchmark see what a person
    would. (Reliable where the skin is clearly lighter than the mouth's inside: the default
    style and most others, not the very darkest skins.)"""
    left, top, right, bottom = mouth_region(rgba.shape[1], rgba.shape[0])
    patch = rgba[top:bottom, left:right, :3].astype(np.float32)
    luma = patch @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return float((luma < darker_than * np.median(luma)).mean())


def _rgb(hex_colour: str) -> RGB:
    value = int(hex_colour.lstrip("#"), 16)
    return (value >> 16) & 0xFF, (value >> 8) & 0xFF, value & 0xFF


def _shade(colour: RGB, factor: float) -> RGB:
    r, g, b = (max(0, min(255, round(c * factor))) for c in colour)
    return r, g, b


def _mix(a: RGB, b: RGB, t: float) -> RGB:
    r, g, bl = (round(x + (y - x) * t) for x, y in zip(a, b, strict=True))
    return r, g, bl


@dataclass(frozen=True)
class Pose:
    """One frame's expression: mouth opening and shape, eyelids, head offset in output pixels."""

    mouth: int = 0
    shape: MouthShape = "neutral"
    eyes: Eyes = "open"
    dx: int = 0
    dy: int = 0


class FaceRenderer:
    """Draws a style's layers once; ``frame(pose)`` composes one RGBA frame from them."""

    def __init__(self, style: AvatarStyle, width: int = 640, height: int = 360) -> None:
        if width < 160 or height < 90:
            raise ValueError(f"avatar video {width}x{height} is too small (min 160x90)")
        self.width, self.height = width, height
        self.scale = min(width / DESIGN_W, height / DESIGN_H)
        self._origin = ((width - DESIGN_W * self.scale) / 2, (height - DESIGN_H * self.scale) / 2)
        self._style = style
        self._skin = _rgb(style.skin)
        self._scene = self._draw_scene()
        self._head = self._layer(_HEAD_BOX, self._draw_head)
        self._eyes = {
            state: self._layer(_EYES_BOX, self._eyes_painter(state)) for state in EYE_STATES
        }
        self._mouths = {
            (level, shape): self._layer(_MOUTH_BOX, self._mouth_painter(level, shape))
            for level in range(MOUTH_LEVELS)
            for shape in MOUTH_SHAPES
        }

    def frame(self, pose: Pose) -> Image.Image:
        image = self._scene.copy()
        for layer, box in (
            (self._head, _HEAD_BOX),
            (self._eyes[pose.eyes], _EYES_BOX),
            (self._mouths[(max(0, min(MOUTH_LEVELS - 1, pose.mouth)), pose.shape)], _MOUTH_BOX),
        ):
            x, y = self._at(box[0], box[1])
            image.alpha_composite(layer, dest=(x + pose.dx, y + pose.dy))
        return image

    def rgba(self, pose: Pose) -> bytes:
        return self.frame(pose).tobytes()

    # -- drawing ---------------------------------------------------------------------------------

    def _at(self, x: float, y: float) -> tuple[int, int]:
        return round(self._origin[0] + x * self.scale), round(self._origin[1] + y * self.scale)

    def _layer(self, box: tuple[int, int, int, int], paint: _Painter) -> Image.Image:
        """A transparent patch covering ``box``, painted SUPERSAMPLE times larger, scaled down."""
        left, top = self._at(box[0], box[1])
        right, bottom = self._at(box[2], box[3])
        size = (right - left, bottom - top)
        k = self.scale * SUPERSAMPLE
        big = Image.new("RGBA", (size[0] * SUPERSAMPLE, size[1] * SUPERSAMPLE), (0, 0, 0, 0))
        paint(_Pen(ImageDraw.Draw(big), k, box[0], box[1]))
        return big.resize(size, Image.Resampling.LANCZOS)

    def _draw_scene(self) -> Image.Image:
        """Background, shoulders and neck: everything that does not move."""
        style = self._style
        k = self.scale * SUPERSAMPLE
        size = (self.width * SUPERSAMPLE, self.height * SUPERSAMPLE)
        background = _rgb(style.background)
        top, bottom = np.array(_shade(background, 1.04)), np.array(_shade(background, 0.86))
        rows = np.linspace(0.0, 1.0, size[1])[:, None, None]
        gradient = np.broadcast_to(top + (bottom - top) * rows, (size[1], size[0], 3))
        scene = Image.fromarray(gradient.round().astype(np.uint8), "RGB").convert("RGBA")
        pen = _Pen(
            ImageDraw.Draw(scene), k, -self._origin[0] / self.scale, -self._origin[1] / self.scale
        )
        accent = _rgb(style.accent)
        # a soft brand-coloured halo behind the head, and a thin brand line at the bottom
        halo_colour = _mix(background, accent, 0.35)
        halo = Image.new("RGBA", size, (*halo_colour, 0))
        _Pen(ImageDraw.Draw(halo), k, pen.x0, pen.y0).ellipse(
            (170, 10, 470, 310), (*halo_colour, 150)
        )
        scene.alpha_composite(halo.filter(ImageFilter.GaussianBlur(18 * k)))
        pen.rect((-400, 352, 1040, 400), (*accent, 255))
        jacket = _rgb(style.jacket)
        shirt = _rgb(style.shirt)
        skin = self._skin
        if style.hair_style == "long":
            pen.rounded((250, 120, 390, 300), 50, (*_shade(_rgb(style.hair), 0.85), 255))
        pen.rect((300, 196, 340, 262), (*_shade(skin, 0.88), 255))  # neck
        pen.rounded((156, 248, 484, 440), 78, (*jacket, 255))  # shoulders
        pen.polygon([(288, 250), (352, 250), (320, 318)], (*shirt, 255))  # shirt
        pen.polygon([(300, 236), (340, 236), (320, 262)], (*_shade(skin, 0.88), 255))
        lapel = _shade(jacket, 0.78)
        pen.polygon([(282, 252), (300, 250), (320, 322), (296, 300)], (*lapel, 255))
        pen.polygon([(358, 252), (340, 250), (320, 322), (344, 300)], (*lapel, 255))
        pen.polygon([(300, 244), (320, 262), (312, 272), (292, 252)], (*_shade(shirt, 0.9), 255))
        pen.polygon([(340, 244), (320, 262), (328, 272), (348, 252)], (*_shade(shirt, 0.9), 255))
        return scene.resize((self.width, self.height), Image.Resampling.LANCZOS)

    def _draw_head(self, pen: _Pen) -> None:
        style = self._style
        skin = self._skin
        hair = _rgb(style.hair)
        if style.hair_style in ("bob", "long"):  # long hair falls behind the shoulders: scene
            pen.rounded((248, 60, 392, 222), 46, (*_shade(hair, 0.85), 255))
        pen.ellipse((252, 128, 274, 166), (*_shade(skin, 0.93), 255))  # ears
        pen.ellipse((366, 128, 388, 166), (*_shade(skin, 0.93), 255))
        pen.ellipse((262, 62, 378, 216), (*skin, 255))  # face
        blush = (*_mix(skin, (226, 118, 118), 0.18), 255)
        pen.ellipse((276, 160, 298, 176), blush)
        pen.ellipse((342, 160, 364, 176), blush)
        if style.hair_style != "none":
            pen.sector("pieslice", (256, 50, 384, 146), 180, 360, (*hair, 255))  # crown
            pen.rounded((261, 90, 271, 126), 4, (*hair, 255))  # sideburns
            pen.rounded((369, 90, 379, 126), 4, (*hair, 255))
            pen.polygon(
                [(262, 98), (300, 84), (352, 76), (380, 100), (378, 84), (320, 58)], (*hair, 255)
            )
            pen.polygon([(262, 100), (300, 86), (330, 74), (262, 80)], (*hair, 255))  # side part
        brow = (*_shade(hair, 0.8), 255)
        pen.arc((287, 115, 309, 127), 200, 330, brow, 3.0)
        pen.arc((331, 115, 353, 127), 210, 340, brow, 3.0)
        nose = (*_shade(skin, 0.78), 255)
        pen.line([(322, 142), (325, 160), (318, 163)], nose, 2.0)
        if style.glasses:
            frame = (40, 40, 48, 255)
            pen.rounded_outline((284, 124, 312, 146), 7, frame, 2.2)
            pen.rounded_outline((328, 124, 356, 146), 7, frame, 2.2)
            pen.line([(312, 133), (328, 133)], frame, 2.0)

    def _eyes_painter(self, state: Eyes) -> _Painter:
        iris = _rgb(self._style.eyes)
        lid = _shade(self._skin, 0.9)
        lash = (*_shade(_rgb(self._style.hair), 0.6), 255)

        def paint(pen: _Pen) -> None:
            for cx in (298, 342):
                if state == "closed":
                    pen.arc((cx - 9, 128, cx + 9, 140), 20, 160, lash, 2.2)
                    continue
                pen.ellipse((cx - 9, 129, cx + 9, 141), (255, 255, 255, 255))
                pen.ellipse((cx - 5.2, 129.8, cx + 5.2, 140.2), (*iris, 255))
                pen.ellipse((cx - 2.5, 132.5, cx + 2.5, 137.5), (22, 18, 20, 255))
                pen.ellipse((cx + 0.8, 131.2, cx + 2.6, 133.0), (255, 255, 255, 230))
                if state == "half":
                    pen.sector("chord", (cx - 10, 124, cx + 10, 142), 180, 360, (*lid, 255))
                pen.arc((cx - 9.5, 128.5, cx + 9.5, 141.5), 195, 345, lash, 1.8)

        return paint

    def _mouth_painter(self, level: int, shape: MouthShape) -> _Painter:
        opening = level / (MOUTH_LEVELS - 1)
        width = {"round": 0.72, "neutral": 1.0, "wide": 1.14}[shape] * (1 - 0.12 * opening)
        lips = _mix(_shade(self._skin, 0.82), (176, 70, 78), 0.45)
        cx, cy = _MOUTH_CENTRE

        def paint(pen: _Pen) -> None:
            half_w = 13 * width
            if level == 0:  # closed: a soft smile
                pen.arc((cx - half_w, cy - 7, cx + half_w, cy + 3), 20, 160, (*lips, 255), 3.0)
                return
            half_h = 1.5 + 7.5 * opening
            pen.ellipse(
                (cx - half_w - 2, cy - half_h - 2, cx + half_w + 2, cy + half_h + 2), (*lips, 255)
            )
            pen.ellipse((cx - half_w, cy - half_h, cx + half_w, cy + half_h), (74, 24, 32, 255))
            if opening > 0.3:  # upper teeth, then the tongue
                pen.sector(
                    "chord",
                    (cx - half_w * 0.8, cy - half_h, cx + half_w * 0.8, cy - half_h * 0.2),
                    0,
                    180,
                    (246, 244, 240, 255),
                )
            if opening > 0.55:
                pen.sector(
                    "chord",
                    (cx - half_w * 0.6, cy + half_h * 0.2, cx + half_w * 0.6, cy + half_h * 1.2),
                    180,
                    360,
                    (196, 92, 100, 255),
                )

        return paint


class _Pen:
    """ImageDraw in design coordinates: ``(x - x0) * k``, ``(y - y0) * k``."""

    def __init__(self, draw: ImageDraw.ImageDraw, k: float, x0: float, y0: float) -> None:
        self._draw, self._k, self.x0, self.y0 = draw, k, x0, y0

    def _box(self, box: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
        x1, y1 = self._pt((box[0], box[1]))
        x2, y2 = self._pt((box[2], box[3]))
        return x1, y1, x2, y2

    def _pt(self, point: tuple[float, float]) -> tuple[float, float]:
        return (point[0] - self.x0) * self._k, (point[1] - self.y0) * self._k

    def ellipse(self, box: tuple[float, float, float, float], fill: tuple[int, ...]) -> None:
        self._draw.ellipse(self._box(box), fill=fill)

    def rect(self, box: tuple[float, float, float, float], fill: tuple[int, ...]) -> None:
        self._draw.rectangle(self._box(box), fill=fill)

    def rounded(
        self, box: tuple[float, float, float, float], r: float, fill: tuple[int, ...]
    ) -> None:
        self._draw.rounded_rectangle(self._box(box), radius=r * self._k, fill=fill)

    def rounded_outline(
        self, box: tuple[float, float, float, float], r: float, colour: tuple[int, ...], w: float
    ) -> None:
        self._draw.rounded_rectangle(
            self._box(box), radius=r * self._k, outline=colour, width=max(1, round(w * self._k))
        )

    def polygon(self, points: list[tuple[float, float]], fill: tuple[int, ...]) -> None:
        self._draw.polygon([self._pt(p) for p in points], fill=fill)

    def sector(
        self,
        kind: Literal["pieslice", "chord"],
        box: tuple[float, float, float, float],
        start: float,
        end: float,
        fill: tuple[int, ...],
    ) -> None:
        """A filled slice of the ellipse in ``box`` (``pieslice``) or its segment (``chord``)."""
        draw = self._draw.pieslice if kind == "pieslice" else self._draw.chord
        draw(self._box(box), start, end, fill=fill)

    def arc(
        self,
        box: tuple[float, float, float, float],
        start: float,
        end: float,
        colour: tuple[int, ...],
        w: float,
    ) -> None:
        self._draw.arc(self._box(box), start, end, fill=colour, width=max(1, round(w * self._k)))

    def line(self, points: list[tuple[float, float]], colour: tuple[int, ...], w: float) -> None:
        self._draw.line(
            [self._pt(p) for p in points],
            fill=colour,
            width=max(1, round(w * self._k)),
            joint="curve",
        )


_Painter = Callable[[_Pen], None]
