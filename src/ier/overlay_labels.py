"""Overlay labels: the boxes, peak marks and label chips ``annotate_layer`` draws onto a window's
RGBA layer, the chips' layout (font size, rows, shortened names, "+N more"), and the WCAG
contrast that the label bar keeps over any frame. Colours, heat layers and blending are
``ier.viz``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from PIL import Image, ImageDraw, ImageFont


class ClassLabel(Protocol):
    """What an overlay needs about one class in one window (``ier.localization.ClassRecord``)."""

    name: str
    state: str
    confidence: float
    box: tuple[float, float, float, float] | None
    peak: tuple[float, float]


@functools.lru_cache(maxsize=16)
def _font(size: int) -> Any:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has only the bitmap font
        return ImageFont.load_default()


# Labels: white text on a dark translucent bar, with a swatch in the class colour. The bar's alpha
# is chosen so the text keeps a WCAG contrast of at least LABEL_MIN_CONTRAST over any frame,
# even a white one (``label_contrast``); class colours appear only in the swatch, never as text.
LABEL_TEXT = (255, 255, 255)
LABEL_BAR_ALPHA = 190
LABEL_MIN_CONTRAST = 4.5
LABEL_MAX_FRACTION = 0.25  # the label rows cover at most this fraction of the frame's height
LABEL_MIN_FONT_PX = 10
LABEL_MAX_FONT_PX = 36
STATE_WORDS = {
    "sounding-on-screen": "sounding",
    "heard-off-screen": "off-screen",
    "visible-silent": "silent",
}
"""The overlay's short names of the states (``localization.json`` has the full ones)."""
_STATE_ORDER = ("sounding-on-screen", "heard-off-screen", "visible-silent")


def relative_luminance(rgb: Sequence[float]) -> float:
    """WCAG 2 relative luminance of an sRGB colour with 0-255 channels."""

    def linear(c: float) -> float:
        c = c / 255.0
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (linear(float(c)) for c in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast_ratio(first: Sequence[float], second: Sequence[float]) -> float:
    """WCAG 2 contrast ratio of two sRGB colours (1 to 21; 4.5 is the minimum for body text)."""
    a, b = sorted((relative_luminance(first), relative_luminance(second)), reverse=True)
    return (a + 0.05) / (b + 0.05)


def label_contrast(frame_color: Sequence[float] = (255, 255, 255)) -> float:
    """Contrast of the label text against its bar drawn over ``frame_color`` (white: the worst)."""
    keep = 1 - LABEL_BAR_ALPHA / 255
    background = [c * keep for c in frame_color]
    return contrast_ratio(LABEL_TEXT, background)


def label_font_px(width: int, height: int) -> int:
    """Label font size for a frame: about 1/18 of its height (of a 16:9 band of a tall frame),
    at least ``LABEL_MIN_FONT_PX`` and at most ``LABEL_MAX_FONT_PX``."""
    side = min(height, width * 9 / 16)
    return int(min(LABEL_MAX_FONT_PX, max(LABEL_MIN_FONT_PX, round(side / 18))))


@dataclass(frozen=True)
class LabelChip:
    """One label on the overlay: its text, the swatch colour (None: no swatch), and where the
    bar, the swatch and the text go (pixels; boxes are (x0, y0, x1, y1), x1/y1 exclusive)."""

    text: str
    color: tuple[int, int, int] | None
    bar: tuple[int, int, int, int]
    swatch: tuple[int, int, int, int] | None
    text_xy: tuple[int, int]


@dataclass(frozen=True)
class LabelLayout:
    """Labels placed on a frame: ``chips`` in rows from the top left; ``hidden`` classes did not
    fit in ``LABEL_MAX_FRACTION`` of the height (a "+N more" chip says how many)."""

    font_px: int
    chips: tuple[LabelChip, ...]
    hidden: int

    @property
    def bottom(self) -> int:
        """The lowest pixel row any bar covers (exclusive); 0 without chips."""
        return max((chip.bar[3] for chip in self.chips), default=0)


def _text_width(font: Any, text: str) -> int:
    left, _, right, _ = font.getbbox(text)
    return int(math.ceil(right - left))


def _fit_text(font: Any, name: str, tail: str, width: int) -> str:
    """"name: tail", with ``name`` shortened ("…") until it fits in ``width`` px; the tail
    (state and confidence) is always kept whole."""
    text = f"{name}: {tail}"
    while _text_width(font, text) > width and len(name) > 1:
        name = name[:-1]
        text = f"{name}…: {tail}"
    return text


def label_layout(
    width: int,
    height: int,
    labels: Sequence[tuple[str, str, tuple[int, int, int] | None]],
    *,
    time_text: str | None = None,
) -> LabelLayout:
    """Place label chips on a ``width`` x ``height`` frame.

    Args:
        width: Frame width in pixels.
        height: Frame height in pixels.
        labels: (name, tail, swatch colour) per label in display order; the tail (e.g.
            "sounding 0.93") is never shortened, a long name is.
        time_text: Optional first chip (the window time), without a swatch.

    Returns:
        Chips in rows from the top left, wrapping at the right edge; at most the rows that fit in
        ``LABEL_MAX_FRACTION`` of the height (at least one). Labels that do not fit are counted
        in ``hidden`` and replaced by one "+N more" chip.
    """
    font_px = label_font_px(width, height)
    font = _font(font_px)
    ascent, descent = font.getmetrics()
    pad = max(2, font_px // 5)
    row_h = ascent + descent + 2 * pad
    gap = max(2, font_px // 4)
    max_rows = max(1, int(LABEL_MAX_FRACTION * height) // (row_h + gap))
    swatch_side = max(4, ascent - 2)
    room = width - 2 * gap

    def chip(text: str, color: tuple[int, int, int] | None, x: int, row: int) -> LabelChip:
        swatch_w = swatch_side + pad if color is not None else 0
        chip_w = _text_width(font, text) + 2 * pad + swatch_w
        y = gap + row * (row_h + gap)
        swatch = None
        if color is not None:
            top = y + (row_h - swatch_side) // 2
            swatch = (x + pad, top, x + pad + swatch_side, top + swatch_side)
        return LabelChip(text, color, (x, y, x + chip_w, y + row_h), swatch,
                         (x + pad + swatch_w, y + pad))  # fmt: skip

    texts: list[tuple[str, tuple[int, int, int] | None]] = [(time_text, None)] if time_text else []
    for name, tail, color in labels:
        fixed = 2 * pad + (swatch_side + pad if color is not None else 0)
        texts.append((_fit_text(font, name, tail, room - fixed) if tail else name, color))
    placed: list[LabelChip] = []
    x, row = gap, 0
    for text, color in texts:
        candidate = chip(text, color, x, row)
        if x > gap and candidate.bar[2] > width - gap:
            x, row = gap, row + 1
            candidate = chip(text, color, x, row)
        if row >= max_rows:
            break
        placed.append(candidate)
        x = candidate.bar[2] + gap
    hidden = len(texts) - len(placed)
    while hidden:  # replace the tail of the last row by a "+N more" chip that fits
        last = placed[-1] if placed else None
        row = (last.bar[1] - gap) // (row_h + gap) if last else 0
        x = last.bar[2] + gap if last else gap
        more = chip(f"+{hidden} more", None, x, row)
        if more.bar[2] <= width - gap or not placed or placed[-1].bar[0] == gap:
            if more.bar[2] > width - gap and placed and row + 1 < max_rows:
                more = chip(f"+{hidden} more", None, gap, row + 1)
            elif more.bar[2] > width - gap and placed:
                placed.pop()
                hidden += 1
                continue
            placed.append(more)
            break
        placed.pop()
        hidden += 1
    return LabelLayout(font_px, tuple(placed), hidden)


def class_labels(
    records: Sequence[ClassLabel], colors: Sequence[tuple[int, int, int]]
) -> list[tuple[str, str, tuple[int, int, int]]]:
    """(name, "state confidence", colour) of every class that is not absent, sounding classes
    first, then off-screen, then silent, each by confidence."""
    active = [(r, c) for r, c in zip(records, colors) if r.state in STATE_WORDS]
    active.sort(key=lambda rc: (_STATE_ORDER.index(rc[0].state), -rc[0].confidence))
    return [(r.name, f"{STATE_WORDS[r.state]} {r.confidence:.2f}", c) for r, c in active]


def annotate_layer(
    layer: np.ndarray,
    records: Sequence[ClassLabel],
    colors: Sequence[tuple[int, int, int]],
    *,
    time_seconds: float | None = None,
) -> np.ndarray:
    """Draw boxes, peak marks and labels onto an RGBA layer (in place, also returned).

    Sounding-on-screen classes get their box (in their colour) and a cross at the peak; every
    class that is not ``absent`` gets a label chip "name state confidence" (``label_layout``).
    """
    height, width = layer.shape[:2]
    image = Image.fromarray(layer, "RGBA")
    draw = ImageDraw.Draw(image)
    line = max(1, round(min(width, height) / 110))
    for record, color in zip(records, colors):
        if record.state == "sounding-on-screen" and record.box is not None:
            x0, y0, x1, y1 = record.box
            box = (x0 * width, y0 * height, x1 * width - 1, y1 * height - 1)
            draw.rectangle(box, outline=(*color, 255), width=line)
            px, py = record.peak[0] * width, record.peak[1] * height
            r = max(3, min(width, height) // 40)
            draw.line((px - r, py, px + r, py), fill=(255, 255, 255, 255), width=line)
            draw.line((px, py - r, px, py + r), fill=(255, 255, 255, 255), width=line)
    time_text = f"{time_seconds:.2f} s" if time_seconds is not None else None
    layout = label_layout(width, height, class_labels(records, colors), time_text=time_text)
    font = _font(layout.font_px)
    for chip in layout.chips:
        draw.rectangle((chip.bar[0], chip.bar[1], chip.bar[2] - 1, chip.bar[3] - 1),
                       fill=(0, 0, 0, LABEL_BAR_ALPHA))  # fmt: skip
        if chip.swatch is not None and chip.color is not None:
            sx0, sy0, sx1, sy1 = chip.swatch
            draw.rectangle((sx0, sy0, sx1 - 1, sy1 - 1), fill=(*chip.color, 255),
                           outline=(*LABEL_TEXT, 255))  # fmt: skip
        draw.text(chip.text_xy, chip.text, fill=(*LABEL_TEXT, 255), font=font)
    return np.asarray(image).copy()
