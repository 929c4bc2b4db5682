"""Seeded scene composition: cut-outs pasted onto backgrounds (drifting frames) and audio mixes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from ier.audio import SAMPLE_RATE
from ier.mixing import apply_gain_db, normalize_rms, rms, scale_to_snr

SOURCE_LEVEL_DBFS = -26.0  # every source is loudness-normalised to this RMS before its gain
MIX_PEAK = 0.95
MAX_BOX_IOU = 0.1
_ALPHA_BOX_THRESHOLD = 128


# --------------------------------------------------------------------------- images


@dataclass(frozen=True)
class Placement:
    """A transformed cut-out and its position: top-left ``(x, y)`` px at the annotated frame,
    moving by ``(dx, dy)`` px over the whole clip."""

    patch: np.ndarray  # uint8 (h, w, 4)
    x: int
    y: int
    dx: float
    dy: float

    def offset(self, progress: float) -> tuple[int, int]:
        """Top-left at ``progress`` = (t - t_annotated) / clip_seconds, in [-0.5, 0.5]."""
        return round(self.x + self.dx * progress), round(self.y + self.dy * progress)

    def box_pixels(self) -> tuple[int, int, int, int]:
        """Tight ``(x0, y0, x1, y1)`` of the patch's opaque pixels at the annotated frame."""
        ys, xs = np.nonzero(self.patch[..., 3] >= _ALPHA_BOX_THRESHOLD)
        if ys.size == 0:
            ys, xs = np.nonzero(self.patch[..., 3] > 0)
        return (self.x + int(xs.min()), self.y + int(ys.min()),
                self.x + int(xs.max()) + 1, self.y + int(ys.max()) + 1)  # fmt: skip


def jitter_colors(rgb: np.ndarray, rng: np.random.Generator, strength: float = 0.12) -> np.ndarray:
    """Mild brightness, contrast and saturation jitter of a uint8 (..., 3) image."""
    x = rgb.astype(np.float32)
    gray = x.mean(axis=-1, keepdims=True)
    sat, con, bri = 1.0 + rng.uniform(-strength, strength, size=3)
    x = gray + (x - gray) * sat
    x = (x - x.mean()) * con + x.mean()
    return np.clip(x * bri, 0, 255).astype(np.uint8)


def transform_cutout(rgba: np.ndarray, rng: np.random.Generator, *, longest_px: int) -> np.ndarray:
    """Scale a cut-out so its longer side is ``longest_px``, flip it at random, jitter colours."""
    h, w = rgba.shape[:2]
    scale = longest_px / max(h, w)
    size = (max(2, round(w * scale)), max(2, round(h * scale)))
    out = np.asarray(Image.fromarray(rgba).resize(size, Image.Resampling.BILINEAR))
    if rng.random() < 0.5:
        out = out[:, ::-1]
    rgb = jitter_colors(out[..., :3], rng)
    return np.ascontiguousarray(np.concatenate([rgb, out[..., 3:]], axis=-1))


def box_iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    """IoU of two ``(x0, y0, x1, y1)`` boxes."""
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def place_cutouts(
    cutouts: list[np.ndarray],
    rng: np.random.Generator,
    *,
    width: int,
    height: int,
    scale_range: tuple[float, float],
    drift_fraction: float = 0.05,
    max_iou: float = MAX_BOX_IOU,
) -> list[Placement]:
    """Place cut-outs inside a ``width`` x ``height`` canvas with box IoU <= ``max_iou``.

    Each object's longer side is ``uniform(scale_range) * min(width, height)`` px; when an object
    cannot be placed after 40 tries it is shrunk by 15% and tried again. The whole drift path stays
    inside the canvas.
    """
    placed: list[Placement] = []
    side = min(width, height)
    for rgba in cutouts:
        longest = rng.uniform(*scale_range) * side
        for attempt in range(400):
            if attempt and attempt % 40 == 0:
                longest *= 0.85
            patch = transform_cutout(rgba, rng, longest_px=max(8, round(longest)))
            cand = _random_position(patch, rng, width, height, drift_fraction * side)
            if cand is None:
                continue
            box = cand.box_pixels()
            if all(box_iou(box, p.box_pixels()) <= max_iou for p in placed):
                placed.append(cand)
                break
        else:  # pragma: no cover - only with absurd scale ranges
            raise RuntimeError("could not place every cut-out without overlap")
    return placed


def _random_position(
    patch: np.ndarray, rng: np.random.Generator, width: int, height: int, drift_px: float
) -> Placement | None:
    h, w = patch.shape[:2]
    dx, dy = rng.uniform(-drift_px, drift_px, size=2)
    margin_x, margin_y = abs(dx) / 2 + 1, abs(dy) / 2 + 1
    if w + 2 * margin_x > width or h + 2 * margin_y > height:
        return None
    x = rng.uniform(margin_x, width - w - margin_x)
    y = rng.uniform(margin_y, height - h - margin_y)
    return Placement(patch, round(x), round(y), float(dx), float(dy))


def background_crop(
    photo: np.ndarray, rng: np.random.Generator, width: int, height: int
) -> np.ndarray:
    """A random crop (60-100% of the shorter side) of a photo, resized and colour-jittered."""
    ph, pw = photo.shape[:2]
    aspect = width / height
    crop_h = int(min(ph, pw / aspect) * rng.uniform(0.6, 1.0))
    crop_w = int(crop_h * aspect)
    y0 = int(rng.integers(0, ph - crop_h + 1))
    x0 = int(rng.integers(0, pw - crop_w + 1))
    crop = Image.fromarray(np.ascontiguousarray(photo[y0 : y0 + crop_h, x0 : x0 + crop_w]))
    out = np.asarray(crop.resize((width, height), Image.Resampling.BILINEAR))
    return jitter_colors(out[:, ::-1] if rng.random() < 0.5 else out, rng)


def generated_background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A two-colour gradient with a soft noise texture (uint8 (height, width, 3))."""
    c0, c1 = rng.uniform(30, 225, size=(2, 3))
    angle = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    t = (np.cos(angle) * xx / width + np.sin(angle) * yy / height + 1.0) / 2.0
    img = c0 + (c1 - c0) * t[..., None]
    small = rng.normal(0, 14, size=(height // 28 + 2, width // 28 + 2)).astype(np.float32)
    texture = np.asarray(Image.fromarray(small).resize((width, height), Image.Resampling.BICUBIC))
    return np.clip(img + texture[..., None], 0, 255).astype(np.uint8)


def _premultiplied(patch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    alpha = patch[..., 3:].astype(np.float32) / 255.0
    return patch[..., :3].astype(np.float32) * alpha, 1.0 - alpha


def paste(canvas: np.ndarray, patch: np.ndarray, x: int, y: int) -> None:
    """Alpha-blend an RGBA patch into an RGB float32 canvas in place (clipped at the borders)."""
    _paste_premultiplied(canvas, _premultiplied(patch), x, y)


def _paste_premultiplied(
    canvas: np.ndarray, layer: tuple[np.ndarray, np.ndarray], x: int, y: int
) -> None:
    color, keep = layer
    h, w = keep.shape[:2]
    ch, cw = canvas.shape[:2]
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + w, cw), min(y + h, ch)
    if x0 >= x1 or y0 >= y1:
        return
    region = canvas[y0:y1, x0:x1]
    region *= keep[y0 - y : y1 - y, x0 - x : x1 - x]
    region += color[y0 - y : y1 - y, x0 - x : x1 - x]


def render_frames(
    layers: list[tuple[np.ndarray, int, int, list[Placement]]],
    *,
    size: int,
    n_frames: int,
    annotated_index: int,
) -> np.ndarray:
    """Render the clip's frames: uint8 (n_frames, size, size, 3).

    ``layers`` holds ``(background, x, y, placements)`` tiles (one tile for a free scene, four
    for a mosaic); placements are relative to their tile.
    """
    frames = np.empty((n_frames, size, size, 3), np.uint8)
    canvas = np.zeros((size, size, 3), np.float32)
    tiles = [
        (background.astype(np.float32), tx, ty, [(p, _premultiplied(p.patch)) for p in placed])
        for background, tx, ty, placed in layers
    ]
    for k in range(n_frames):
        progress = (k - annotated_index) / n_frames
        for background, tx, ty, placed in tiles:
            th, tw = background.shape[:2]
            tile = canvas[ty : ty + th, tx : tx + tw]
            tile[...] = background
            for p, layer in placed:
                px, py = p.offset(progress)
                _paste_premultiplied(tile, layer, px, py)
        np.rint(canvas, out=canvas)
        frames[k] = canvas.astype(np.uint8)
    return frames


# --------------------------------------------------------------------------- audio


def fill_window(
    wave: np.ndarray, rng: np.random.Generator, *, seconds: float, window: tuple[float, float]
) -> tuple[np.ndarray, float, float]:
    """Fit a recording (range) to a clip of ``seconds``.

    A recording longer than the clip gives a crop whose annotated ``window`` is not silent (the
    best of 6 random starts); a shorter one is repeated with random 0.05-0.4 s gaps from a random
    onset, so every 1 s window holds sound.

    Returns:
        ``(clip (n,), start, end)``: the clip and the seconds of ``wave`` it was cut from.
    """
    n = round(seconds * SAMPLE_RATE)
    length = wave.shape[0]
    if length >= n:
        w0, w1 = (round(t * SAMPLE_RATE) for t in window)
        best, best_score = 0, -1.0
        for _ in range(6):
            start = int(rng.integers(0, length - n + 1))
            score = rms(wave[start + w0 : start + w1])
            if score > best_score:
                best, best_score = start, score
        return wave[best : best + n].copy(), best / SAMPLE_RATE, (best + n) / SAMPLE_RATE
    out = np.zeros(n, np.float32)
    pos = -int(rng.integers(0, max(1, length // 2)))
    while pos < n:
        a, b = max(pos, 0), min(pos + length, n)
        out[a:b] += wave[a - pos : b - pos]
        pos += length + round(rng.uniform(0.05, 0.4) * SAMPLE_RATE)
    return out, 0.0, length / SAMPLE_RATE


def level(wave: np.ndarray, gain_db: float) -> np.ndarray:
    """Loudness-normalise a source to ``SOURCE_LEVEL_DBFS`` RMS, then apply ``gain_db``."""
    return apply_gain_db(normalize_rms(wave, SOURCE_LEVEL_DBFS), gain_db).astype(np.float32)


def mix(
    sources: list[np.ndarray], noise: np.ndarray | None, snr_db: float | None, *, n_samples: int
) -> np.ndarray:
    """Sum leveled sources, add ``noise`` at ``snr_db`` below their sum, peak-limit to 0.95.

    With no sources, the noise (if any) is kept at the source level.
    """
    signal = np.zeros(n_samples, np.float32)
    for wave in sources:
        signal += wave
    if noise is not None:
        if rms(signal) > 0 and snr_db is not None:
            signal = signal + scale_to_snr(signal, noise, snr_db).astype(np.float32)
        else:
            signal = signal + level(noise, 0.0)
    peak = float(np.max(np.abs(signal))) if signal.size else 0.0
    if peak > MIX_PEAK:
        signal *= MIX_PEAK / peak
    return signal.astype(np.float32)
