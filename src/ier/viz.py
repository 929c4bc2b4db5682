"""Heatmap overlays: class colours, display sizes, per-window heat layers, blending (RGB and
yuv420p) and PNG encoding. The labels drawn over the heat (boxes, peak marks, label chips) are
``ier.overlay_labels``, re-exported here; the mp4 writer that carries the source's audio is
``ier.overlay_video``.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ier.overlay_labels import (  # noqa: F401  (re-exported)
    LABEL_BAR_ALPHA,
    LABEL_MAX_FONT_PX,
    LABEL_MAX_FRACTION,
    LABEL_MIN_CONTRAST,
    LABEL_MIN_FONT_PX,
    LABEL_TEXT,
    STATE_WORDS,
    ClassLabel,
    LabelChip,
    LabelLayout,
    _font,
    annotate_layer,
    class_labels,
    contrast_ratio,
    label_contrast,
    label_font_px,
    label_layout,
    relative_luminance,
)

# Tableau-10: distinct on video, readable as text on black.
PALETTE: tuple[tuple[int, int, int], ...] = (
    (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
    (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207),
)  # fmt: skip
HEAT_ALPHA = 0.6  # opacity of the hottest pixel
HEAT_FLOOR = 0.3  # map values below this fraction of the class peak stay transparent


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
