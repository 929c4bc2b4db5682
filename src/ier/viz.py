"""Heatmap overlays: class colours, per-window overlay layers and labels, blending (RGB and
yuv420p) and PNG encoding. The mp4 writer that carries the source's audio is
``ier.overlay_video``.
"""

from __future__ import annotations

import functools
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont

# Tableau-10: distinct on video, readable as text on black.
PALETTE: tuple[tuple[int, int, int], ...] = (
    (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
    (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207),
)  # fmt: skip
HEAT_ALPHA = 0.6  # opacity of the hottest pixel
HEAT_FLOOR = 0.3  # map values below this fraction of the class peak stay transparent


class ClassLabel(Protocol):
    """What an overlay needs about one class in one window (``ier.localization.ClassRecord``)."""

    name: str
    state: str
    confidence: float
    box: tuple[float, float, float, float] | None
    peak: tuple[float, float]


def class_colors(n_classes: int) -> list[tuple[int, int, int]]:
    """One RGB colour per class, cycling through ``PALETTE``."""
    return [PALETTE[i % len(PALETTE)] for i in range(n_classes)]


def display_size(
    width: int, height: int, *, min_side: int | None = None, max_side: int | None = None
) -> tuple[int, int]:
    """(width, height) scaled so the long side is in [min_side, max_side], rounded to even.

    Small videos are enlarged so overlay labels stay legible; large ones shrink for speed.
    """
    long_side = max(width, height)
    scale = 1.0
    if max_side and long_side > max_side:
        scale = max_side / long_side
    elif min_side and long_side < min_side:
        scale = min_side / long_side
    return max(2, 2 * round(width * scale / 2)), max(2, 2 * round(height * scale / 2))


def resize_display(frame: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize an RGB uint8 frame (H, W, 3) to (height, width, 3), bilinear, antialiased.

    Uses torch's uint8 kernel: the same pixels as Pillow's bilinear filter at about a fifth of
    the cost, which matters once per decoded frame.
    """
    if frame.shape[:2] == (height, width):
        return frame
    image = torch.from_numpy(np.ascontiguousarray(frame)).permute(2, 0, 1)[None]
    out = F.interpolate(image, size=(height, width), mode="bilinear", antialias=True)
    return np.ascontiguousarray(out[0].permute(1, 2, 0).numpy())


def upsample_maps(maps: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear resize of (C, h, w) maps to (C, height, width), float32."""
    tensor = torch.as_tensor(np.asarray(maps, np.float32))[None]
    return F.interpolate(tensor, size=(height, width), mode="bilinear", align_corners=False)[
        0
    ].numpy()


def heat_layer(
    maps: np.ndarray,
    shown: Sequence[bool],
    colors: Sequence[tuple[int, int, int]],
    *,
    width: int,
    height: int,
) -> np.ndarray:
    """An RGBA layer with each shown class's map in its colour (the hottest class wins a cell).

    The layer is built at the map resolution and resized bilinearly, which is cheap at any
    frame size.

    Args:
        maps: (C, h, w) maps in [0, 1].
        shown: Per class, whether to draw it.
        colors: Per class RGB colour.
        width: Layer width in pixels.
        height: Layer height in pixels.

    Returns:
        uint8 (height, width, 4) RGBA; alpha rises from 0 at ``HEAT_FLOOR`` x peak to
        ``HEAT_ALPHA`` at the class peak.
    """
    index = [c for c, show in enumerate(shown) if show]
    if not index:
        return np.zeros((height, width, 4), np.uint8)
    chosen = np.asarray(maps, np.float32)[index]
    peaks = np.maximum(chosen.reshape(len(index), -1).max(axis=1), 1e-6)
    relative = chosen / peaks[:, None, None]
    winner = relative.argmax(axis=0)
    strength = np.take_along_axis(relative, winner[None], axis=0)[0]
    alpha = np.clip((strength - HEAT_FLOOR) / (1 - HEAT_FLOOR), 0, 1) * HEAT_ALPHA
    small = np.empty((*winner.shape, 4), np.uint8)
    small[..., :3] = np.asarray([colors[c] for c in index], np.uint8)[winner]
    small[..., 3] = np.rint(alpha * 255).astype(np.uint8)
    image = Image.fromarray(small, "RGBA").resize((width, height), Image.Resampling.BILINEAR)
    return np.asarray(image).copy()


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


def blend(frame: np.ndarray, layer: np.ndarray | Image.Image) -> np.ndarray:
    """Alpha-blend an RGBA layer (H, W, 4) over an RGB frame (H, W, 3), both uint8.

    ``layer`` may be a PIL RGBA image already (callers that reuse a layer keep it as one).
    """
    image = layer if isinstance(layer, Image.Image) else Image.fromarray(layer, "RGBA")
    base = Image.fromarray(np.ascontiguousarray(frame))
    base.paste(image, (0, 0), image)
    return np.asarray(base)


# --------------------------------------------------------------------------- yuv420p overlays

# Luma and chroma weights (Kr, Kb) of the two matrices a decoded yuv420p frame uses in practice.
_MATRICES = {"bt601": (0.299, 0.114), "bt709": (0.2126, 0.0722)}


@dataclass(frozen=True)
class YuvLayer:
    """An RGBA overlay layer prepared for blending onto yuv420p frames: per plane, inside the
    bounding box of its visible pixels, ``out = (frame * keep + add) / 255`` with integer maths.

    Attributes:
        rows: (top, bottom) luma rows of the visible region (even, bottom exclusive).
        cols: (left, right) luma columns of the visible region (even, right exclusive).
        keep: (luma (h, w), chroma (h/2, w/2)) ``255 - alpha`` as uint32.
        add: (Y, Cb, Cr) ``value * alpha`` as uint32 (Y at luma size, Cb/Cr at chroma size).
    """

    rows: tuple[int, int]
    cols: tuple[int, int]
    keep: tuple[np.ndarray, np.ndarray]
    add: tuple[np.ndarray, np.ndarray, np.ndarray]


def _yuv_matrix(matrix: str) -> tuple[np.ndarray, np.ndarray]:
    """(3, 3) matrix and (3,) offset taking RGB in [0, 255] to limited-range Y'CbCr."""
    kr, kb = _MATRICES[matrix]
    kg = 1 - kr - kb
    rows = np.array(
        [
            [219 * kr, 219 * kg, 219 * kb],
            [-112 * kr / (1 - kb), -112 * kg / (1 - kb), 112.0],
            [112.0, -112 * kg / (1 - kr), -112 * kb / (1 - kr)],
        ]
    ) / 255.0
    return rows.astype(np.float32), np.array([16.0, 128.0, 128.0], np.float32)


def yuv_layer(layer: np.ndarray, matrix: str = "bt601") -> YuvLayer | None:
    """Prepare an RGBA layer (H, W, 4) with even H and W for ``blend_yuv``; None if it is fully
    transparent. Chroma is subsampled 2x2 with alpha weighting (as a renderer of the RGBA
    overlay would subsample it)."""
    alpha = layer[..., 3]
    visible_rows, visible_cols = np.nonzero(alpha.any(axis=1))[0], np.nonzero(alpha.any(axis=0))[0]
    if not len(visible_rows):
        return None
    top, bottom = 2 * (visible_rows[0] // 2), min(layer.shape[0], 2 * (visible_rows[-1] // 2) + 2)
    left, right = 2 * (visible_cols[0] // 2), min(layer.shape[1], 2 * (visible_cols[-1] // 2) + 2)
    crop = layer[top:bottom, left:right]
    rows, _ = _yuv_matrix(matrix)
    r, g, b, a = (crop[..., i].astype(np.float32) for i in range(4))  # alpha in [0, 255]

    def block(x: np.ndarray) -> np.ndarray:  # sums of 2x2 blocks
        return x[0::2, 0::2] + x[1::2, 0::2] + x[0::2, 1::2] + x[1::2, 1::2]

    luma = (rows[0, 0] * r + rows[0, 1] * g + rows[0, 2] * b + 16.0) * a  # Y * alpha
    sr, sg, sb, sa = block(r * a), block(g * a), block(b * a), block(a)  # premultiplied sums
    cb = (rows[1, 0] * sr + rows[1, 1] * sg + rows[1, 2] * sb + 128.0 * sa) * 0.25
    cr = (rows[2, 0] * sr + rows[2, 1] * sg + rows[2, 2] * sb + 128.0 * sa) * 0.25

    def as_int(x: np.ndarray) -> np.ndarray:
        return np.rint(x).astype(np.uint32)

    return YuvLayer(
        rows=(int(top), int(bottom)), cols=(int(left), int(right)),
        keep=((255 - crop[..., 3]).astype(np.uint32), as_int(255 - 0.25 * sa)),
        add=(as_int(luma), as_int(cb), as_int(cr)),
    )  # fmt: skip


def _blend_plane(plane: np.ndarray, keep: np.ndarray, add: np.ndarray) -> None:
    x = plane.astype(np.uint32) * keep + add + 128
    plane[...] = (x + (x >> 8)) >> 8  # round(x / 255), exact for x < 65536 + 128


def blend_yuv(frame: np.ndarray, layer: YuvLayer | None) -> np.ndarray:
    """Blend a ``YuvLayer`` onto a yuv420p frame in place and return it.

    Args:
        frame: (H * 3 / 2, W) uint8, the planes Y (H, W), then U and V (H/2, W/2 each) stored
            one after the other (PyAV's ``to_ndarray()`` layout of yuv420p).
        layer: From ``yuv_layer`` at the same H and W, or None (nothing to draw).
    """
    if layer is None:
        return frame
    width = frame.shape[1]
    height = frame.shape[0] * 2 // 3
    flat = frame.reshape(-1)
    luma = flat[: height * width].reshape(height, width)
    quarter = (height // 2) * (width // 2)
    cb = flat[height * width : height * width + quarter].reshape(height // 2, width // 2)
    cr = flat[height * width + quarter :].reshape(height // 2, width // 2)
    (top, bottom), (left, right) = layer.rows, layer.cols
    _blend_plane(luma[top:bottom, left:right], layer.keep[0], layer.add[0])
    chroma = (slice(top // 2, bottom // 2), slice(left // 2, right // 2))
    _blend_plane(cb[chroma], layer.keep[1], layer.add[1])
    _blend_plane(cr[chroma], layer.keep[1], layer.add[2])
    return frame


def png_bytes(image: np.ndarray) -> bytes:
    """Encode a uint8 (H, W, 3) image as PNG."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG", compress_level=1)  # speed over size
    return buffer.getvalue()
