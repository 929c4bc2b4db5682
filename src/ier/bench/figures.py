"""Bench figures drawn with Pillow: a grouped bar chart of the main metrics and a qualitative grid
(the same test samples, one row per run, class maps overlaid, objects marked by state).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from ier.bench.plan import metric
from ier.data.datasets import list_splits, split_manifest
from ier.data.decode import DecodeSpec, decode_sample
from ier.data.manifest import read_manifest
from ier.overlay_labels import _font
from ier.predictions import load_predictions
from ier.viz import PALETTE, blend, upsample_maps

logger = logging.getLogger(__name__)

BAR_METRICS: tuple[tuple[str, str, str], ...] = (
    ("Solo IoU@0.5", "test/solo", "iou@0.5"),
    ("Syn. CIoU@0.3", "test/synthetic", "ciou@0.3"),
    ("Duet CIoU@0.3", "test/duet", "ciou@0.3"),
    ("Wild CIoU@0.3", "test/wild", "ciou@0.3"),
    ("AP (solo+neg.)", "extended", "ap"),
)
GRID_KINDS = ("test/wild", "test/synthetic", "test/wild", "test/negative", "test/duet")
"""The order in which grid columns draw their sample's split (cycled)."""
MAP_ALPHA = 0.75  # opacity of a map value of 1 (absolute: a weak map stays faint)
WHITE, BLACK, GRID_GRAY = (255, 255, 255), (0, 0, 0), (225, 225, 225)


def _rotated_text(text: str, font: Any, angle: float) -> Image.Image:
    probe = ImageDraw.Draw(Image.new("L", (1, 1)))
    left, top, right, bottom = probe.textbbox((0, 0), text, font=font)
    image = Image.new("RGBA", (right - left + 2, bottom - top + 2), (0, 0, 0, 0))
    ImageDraw.Draw(image).text((1 - left, 1 - top), text, fill=(*BLACK, 255), font=font)
    return image.rotate(angle, expand=True, resample=Image.Resampling.BICUBIC)


def bar_chart(records: Sequence[dict[str, Any]], path: Path, *, bar_px: int = 11) -> Path:
    """Grouped bars (one group per run, one bar per ``BAR_METRICS`` entry), 0-100 %.

    A missing value draws no bar. Returns ``path``.
    """

    n_bars = len(BAR_METRICS)
    group_px = n_bars * bar_px + 18
    left, top, plot_h, bottom = 46, 58, 240, 130
    width = left + max(len(records), 1) * group_px + 16
    image = Image.new("RGB", (max(width, 520), top + plot_h + bottom), WHITE)
    draw = ImageDraw.Draw(image)
    font, small = _font(12), _font(10)
    draw.text((left, 6), "Main metrics (%) per run", fill=BLACK, font=font)
    x = left
    for i, (name, _, _) in enumerate(BAR_METRICS):  # legend
        draw.rectangle((x, 28, x + 10, 38), fill=PALETTE[i])
        draw.text((x + 14, 27), name, fill=BLACK, font=small)
        x += 24 + int(draw.textlength(name, font=small))
    base = top + plot_h
    for pct in range(0, 101, 20):
        y = base - plot_h * pct / 100
        draw.line((left, y, image.width - 10, y), fill=GRID_GRAY)
        draw.text((left - 30, y - 6), f"{pct:3d}", fill=BLACK, font=small)
    draw.line((left, top, left, base), fill=BLACK)
    for g, record in enumerate(records):
        x0 = left + g * group_px + 9
        for i, (_, source, key) in enumerate(BAR_METRICS):
            value = metric(record, source, key)
            if value is not None:
                h = plot_h * min(max(value, 0.0), 1.0)
                draw.rectangle((x0 + i * bar_px, base - h, x0 + (i + 1) * bar_px - 2, base),
                               fill=PALETTE[i])  # fmt: skip
        label = _rotated_text(record.get("label") or record["name"], small, 35)
        image.paste(label, (x0 + n_bars * bar_px // 2 - label.width, base + 4), label)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path


# --- qualitative grid ----------------------------------------------------------------------------


def _interest(sample: Any) -> tuple[int, ...]:
    sounding = sum(o.sounding for o in sample.objects)
    silent = len(sample.objects) - sounding
    return (int(sounding > 0) + int(silent > 0) + int(bool(sample.offscreen)), len(sample.objects))


def pick_samples(data_dir: Path, count: int) -> list[tuple[str, Any]]:
    """``count`` (split, sample) pairs cycling over ``GRID_KINDS``; within a split the first
    sample with the most kinds of objects (sounding, silent, off-screen). Deterministic."""

    available = set(list_splits(data_dir, "test/"))
    kinds = [k for k in GRID_KINDS if k in available] or sorted(available)
    pools = {k: read_manifest(split_manifest(data_dir, k)) for k in set(kinds)}
    chosen: list[tuple[str, Any]] = []
    for i in range(count * len(kinds)):
        if len(chosen) == count:
            break
        split = kinds[i % len(kinds)]
        pool = [s for s in pools[split] if (split, s.id) not in {(k, c.id) for k, c in chosen}]
        if pool:
            chosen.append((split, max(pool, key=_interest)))
    return chosen


def _sample_labels(sample: Any) -> list[tuple[str, str]]:
    """(label, state) for the sample's visible objects then its off-screen sounds, unique."""
    out: dict[str, str] = {}
    for obj in sample.objects:
        out.setdefault(obj.label, "sounding" if obj.sounding else "silent")
    for label in sample.offscreen:
        out.setdefault(label, "off-screen")
    return list(out.items())


def _overlay(
    frame: np.ndarray, maps: np.ndarray, colors: Sequence[tuple[int, int, int]]
) -> np.ndarray:
    """Blend (C, h, w) maps over an RGB frame: each pixel takes its strongest map's colour, with
    opacity proportional to that map's absolute value."""
    size = frame.shape[0]
    layer = np.zeros((size, size, 4), np.uint8)
    if len(maps):
        big = upsample_maps(maps, size, size).clip(0.0, 1.0)
        winner = big.argmax(axis=0)
        strength = np.take_along_axis(big, winner[None], axis=0)[0]
        layer[..., :3] = np.asarray(colors, np.uint8)[winner]
        layer[..., 3] = np.rint(strength * MAP_ALPHA * 255).astype(np.uint8)
    return blend(frame, layer)


def _dashed_rectangle(
    draw: ImageDraw.ImageDraw, box: Sequence[float], color: tuple, width: int
) -> None:
    x0, y0, x1, y1 = box
    for a, b, horizontal, fixed in ((x0, x1, True, y0), (x0, x1, True, y1), (y0, y1, False, x0),
                                    (y0, y1, False, x1)):  # fmt: skip
        for start in np.arange(a, b, 7.0):
            end = min(start + 4.0, b)
            line = (start, fixed, end, fixed) if horizontal else (fixed, start, fixed, end)
            draw.line(line, fill=color, width=width)


def _cell(sample: Any, frame: np.ndarray, maps: np.ndarray | None, classes: Sequence[str],
          colors: dict[str, tuple[int, int, int]]) -> Image.Image:  # fmt: skip
    """One grid cell: the frame, the run's maps of the sample's labels, and the object boxes."""
    if maps is not None:
        if tuple(classes) == ("*",):
            frame = _overlay(frame, maps[:1], [(255, 64, 0)])
        else:
            index = {c: i for i, c in enumerate(classes)}
            shown = [label for label in colors if label in index]
            frame = _overlay(frame, maps[[index[c] for c in shown]], [colors[c] for c in shown])
    image = Image.fromarray(frame)
    draw = ImageDraw.Draw(image)
    size = frame.shape[0]
    for obj in sample.objects:
        box = [v * size for v in obj.box]
        color = colors.get(obj.label, WHITE)
        if obj.sounding:
            draw.rectangle(box, outline=color, width=2)
        else:
            _dashed_rectangle(draw, box, color, 2)
    if maps is None:
        draw.text((4, size // 2 - 6), "no prediction", fill=WHITE, font=_font(11))
    return image


def _predictions(cache: dict[Path, Any], run_dir: Path, split: str) -> Any:
    """The run's saved predictions of ``split`` (``eval/predictions_<name>.npz``), or None."""

    file = run_dir / "eval" / f"predictions_{split.split('/')[-1]}.npz"
    if file not in cache:
        cache[file] = load_predictions(file) if file.is_file() else None
    return cache[file]


def qualitative_grid(
    records: Sequence[dict[str, Any]], runs_dir: Path, data_dir: Path, path: Path, *,
    samples: int = 4, cell_px: int = 160,
) -> Path | None:  # fmt: skip
    """The same test samples for every run: rows = runs, columns = samples.

    Boxes: solid = sounding object, dashed = silent object; the column header lists each label's
    colour and state (sounding, silent, off-screen). Maps of class-aware methods are drawn for
    the sample's labels in their colours; a class-agnostic map is drawn in orange. Returns
    ``path``, or None when there is nothing to draw.
    """

    chosen = pick_samples(data_dir, samples)
    if not chosen or not records:
        return None
    spec = DecodeSpec(cell_px, 1, 16_000, 1_600)
    frames = [decode_sample(s, spec)[0][0] for _, s in chosen]
    labels = [_sample_labels(s) for _, s in chosen]
    header_px = 18 + 12 * max(len(items) for items in labels)
    label_px = 170
    image = Image.new(
        "RGB", (label_px + len(chosen) * cell_px, header_px + len(records) * cell_px), WHITE
    )
    draw = ImageDraw.Draw(image)
    small = _font(10)
    cache: dict[Path, Any] = {}
    for col, ((_, sample), items) in enumerate(zip(chosen, labels)):
        x = label_px + col * cell_px
        draw.text((x + 3, 2), sample.id, fill=BLACK, font=small)
        for i, (label, state) in enumerate(items):
            draw.text((x + 3, 15 + 12 * i), f"{label}: {state}", fill=PALETTE[i % len(PALETTE)],
                      font=small)  # fmt: skip
    draw.text((4, 2), "box: solid = sounding,", fill=BLACK, font=small)
    draw.text((4, 14), "dashed = silent", fill=BLACK, font=small)
    for row, record in enumerate(records):
        y = header_px + row * cell_px
        draw.text((4, y + cell_px // 2 - 6), record.get("label") or record["name"], fill=BLACK,
                  font=_font(11))  # fmt: skip
        for col, ((split, sample), items) in enumerate(zip(chosen, labels)):
            preds = _predictions(cache, runs_dir / record.get("run_dir", record["name"]), split)
            found = preds is not None and preds.index_of(sample.id) is not None
            maps = preds.map_for(sample.id) if found else None
            colors = {label: PALETTE[i % len(PALETTE)] for i, (label, _) in enumerate(items)}
            cell = _cell(sample, frames[col], maps, preds.classes if preds else (), colors)
            image.paste(cell, (label_px + col * cell_px, y))
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path
