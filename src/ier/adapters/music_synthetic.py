"""MUSIC-Synthetic (DSOL/CSOL release): 2x2 mosaics, 201x64 log-mel pickles and .npy box rows.

Files are matched by stem (the reference loader pairs them by sorted position). The pickles are
read with an arrays-only unpickler; since the release has no waveforms, the audio is rebuilt from
the log-mel (see :mod:`ier.adapters.logmel_inversion`) and the released log-mel is kept as ``.npy``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ier.adapters.common import (
    DSOL_CATEGORY_TO_LABEL,
    AdapterOutput,
    ObjectSpec,
    SampleSpec,
    clean_box,
    xywh_to_xyxy,
)
from ier.errors import DatasetError

logger = logging.getLogger(__name__)

FORMAT_VERSION = "dsol-music-synthetic-v1"
_SPLIT_DIRS = {"synthetic_train": ("train/train", "train"), "synthetic_test": ("test1",)}


def find_synthetic_root(root: Path) -> Path | None:
    """The folder holding ``test1/`` and/or ``train/`` (``root`` or ``root/synthetic``)."""
    for base in (root, root / "synthetic", root / "MUSIC-Synthetic"):
        if (base / "test1").is_dir() or (base / "train").is_dir():
            return base
    return None


def _by_stem(folder: Path, suffix: str) -> dict[str, Path]:
    if not folder.is_dir():
        return {}
    return {p.stem: p for p in sorted(folder.iterdir()) if p.suffix.lower() == suffix}


def read_box_rows(path: Path) -> np.ndarray:
    """A box file as a float64 (n, 5) array of ``[x, y, w, h, category_id]`` rows.

    Raises:
        ValueError: not a numeric .npy of shape (n, 5) (object arrays are refused unpickled).
    """
    rows = np.load(path, allow_pickle=False)
    if rows.ndim == 1 and rows.size == 5:
        rows = rows[None]
    if rows.ndim != 2 or rows.shape[1] != 5 or rows.dtype.kind not in "iuf":
        raise ValueError(f"expected a numeric (n, 5) array, got {rows.dtype} {rows.shape}")
    return rows.astype(np.float64)


def box_objects(rows: np.ndarray) -> tuple[tuple[ObjectSpec, ...], list[str]]:
    """Box rows -> sounding objects (xywh of the mosaic -> xyxy), and the problems found.

    An unknown ``category_id`` (not one of DSOL's seven) or an unusable box is a problem that
    excludes the sample (the reference evaluator would crash or score an empty map).
    """
    objects, problems = [], []
    for row in rows:
        category = float(row[4])
        label = DSOL_CATEGORY_TO_LABEL.get(int(category)) if category.is_integer() else None
        if label is None:
            known = sorted(DSOL_CATEGORY_TO_LABEL)
            problems.append(f"unknown category_id {row[4]:g} (known: {known})")
            continue
        box, note = clean_box(xywh_to_xyxy(row[:4]))
        if box is None:
            problems.append(f"{label}: {note}")
            continue
        objects.append(ObjectSpec(label, box, True, extra=(("category_id", int(category)),)))
    return tuple(objects), problems


def build_music_synthetic(root: Path, *, skip: tuple[Path, ...] = ()) -> AdapterOutput:
    """Splits ``synthetic_train`` (``train/train/``) and ``synthetic_test`` (``test1/``)."""
    base = find_synthetic_root(root)
    if base is None:
        raise DatasetError(f"{root}: no MUSIC-Synthetic test1/ or train/train/ folder found")
    out = AdapterOutput(
        format={
            "adapter": "music-synthetic",
            "version": FORMAT_VERSION,
            "boxes": "rows [x, y, w, h, category_id], xywh normalised to the whole mosaic",
            "audio": "pickled float32 (201, 64) log-mel; no waveform in the release",
        }
    )
    for split, candidates in _SPLIT_DIRS.items():
        folder = next((base / c for c in candidates if (base / c / "video").is_dir()), None)
        if folder is None:
            continue
        _add_split(out, split, folder, with_boxes=split == "synthetic_test")
    if not out.splits and not out.problems:
        raise DatasetError(f"{base}: no video/ folder with mosaics under test1/ or train/train/")
    return out


def _add_split(out: AdapterOutput, split: str, folder: Path, *, with_boxes: bool) -> None:
    images = _by_stem(folder / "video", ".jpg") | _by_stem(folder / "video", ".png")
    audios = _by_stem(folder / "audio", ".pkl")
    boxes = _by_stem(folder / "box", ".npy") if with_boxes else {}
    stems = sorted(set(images) | set(audios) | set(boxes))
    out.count(split, "listed", len(stems))
    for stem in stems:
        missing = [n for n, d in (("video", images), ("audio", audios)) if stem not in d]
        if with_boxes and stem not in boxes:
            missing.append("box")
        if missing:
            names = ", ".join(
                f"{m}/{stem}.{'npy' if m == 'box' else 'pkl' if m == 'audio' else 'jpg'}"
                for m in missing
            )
            out.problem(split, stem, f"missing {names} (files are matched by stem)")
            continue
        objects: tuple[ObjectSpec, ...] = ()
        if with_boxes:
            try:
                objects, problems = box_objects(read_box_rows(boxes[stem]))
            except (ValueError, OSError) as err:
                problems = [f"{boxes[stem].name}: {err}"]
            if problems or not objects:
                reason = "; ".join(problems) or "no box rows"
                out.problem(split, stem, reason, kind="annotation", path=str(boxes[stem]))
                continue
        out.add(
            split,
            SampleSpec(
                id=stem,
                split="synthetic",
                objects=objects,
                frame=images[stem],
                features=audios[stem],
                time_seconds=0.5,
                window=(0.0, 1.0),
                extra=(("dataset", "music_synthetic"),),
            ),
        )
