"""The predictions format: one ``.npz`` of localization maps per split (see ``docs/formats.md``)."""

from __future__ import annotations

import logging
import os
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ier.errors import PredictionsError
from ier.files import atomic_open

logger = logging.getLogger(__name__)

AGNOSTIC_CLASS = "*"
"""The single class name of a class-agnostic method: its one map serves every category."""

_REQUIRED_KEYS = ("ids", "classes", "maps")
_OPTIONAL_KEYS = ("scores",)

__all__ = [
    "AGNOSTIC_CLASS",
    "Predictions",
    "PredictionsError",
    "constant_predictions",
    "load_predictions",
    "save_predictions",
]


@dataclass(frozen=True, eq=False)
class Predictions:
    """Localization maps for a set of samples.

    Attributes:
        ids: sample ids, one per map, unique.
        classes: category names, unique; a class-agnostic method has ``("*",)``.
        maps: float32 array ``(N, C, H, W)`` with values in [0, 1]; ``maps[i, c]`` is the map of
            ``classes[c]`` for sample ``ids[i]``, at any resolution (the evaluator resizes it).
        scores: optional float32 ``(N, C)`` in [0, 1], the model's confidence per class.
    """

    ids: tuple[str, ...]
    classes: tuple[str, ...]
    maps: np.ndarray
    scores: np.ndarray | None = None
    _index: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        ids = tuple(str(i) for i in self.ids)
        classes = tuple(str(c) for c in self.classes)
        maps = np.asarray(self.maps)
        if maps.dtype.kind == "f" and maps.dtype != np.float32:
            maps = maps.astype(np.float32)
        scores = None if self.scores is None else np.asarray(self.scores)
        if scores is not None and scores.dtype.kind == "f" and scores.dtype != np.float32:
            scores = scores.astype(np.float32)
        _check(ids, classes, maps, scores)
        object.__setattr__(self, "ids", ids)
        object.__setattr__(self, "classes", classes)
        object.__setattr__(self, "maps", maps)
        object.__setattr__(self, "scores", scores)
        object.__setattr__(self, "_index", {sample_id: i for i, sample_id in enumerate(ids)})

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def class_agnostic(self) -> bool:
        """True when the method predicts one map, ``"*"``, for every category."""
        return self.classes == (AGNOSTIC_CLASS,)

    def index_of(self, sample_id: str) -> int | None:
        """Row of ``sample_id`` in ``maps``, or None when the sample has no prediction."""
        return self._index.get(sample_id)

    def map_for(self, sample_id: str) -> np.ndarray:
        """The ``(C, H, W)`` maps of one sample; raises ``KeyError`` if it has none."""
        return self.maps[self._index[sample_id]]


def constant_predictions(
    ids: Sequence[str], classes: Sequence[str], value: float = 0.5, side: int = 8
) -> Predictions:
    """Maps equal to ``value`` everywhere, for every sample and class, with scores ``value``.

    This is the audio-free "uniform map" reference row of a results table: it carries no
    information, so a method's margin over it is what the method adds. At ``value`` 0.5 it never
    exceeds the absolute threshold tau = 0.5, so its false-positive metrics are 0 by construction.
    """
    if not 0.0 <= value <= 1.0:
        raise PredictionsError(f"a constant map's value must lie in [0, 1], got {value}")
    n, c = len(ids), len(classes)
    return Predictions(
        ids=tuple(ids), classes=tuple(classes),
        maps=np.full((n, c, side, side), value, np.float32),
        scores=np.full((n, c), value, np.float32),
    )  # fmt: skip


def _check(
    ids: tuple[str, ...], classes: tuple[str, ...], maps: np.ndarray, scores: np.ndarray | None
) -> None:
    """Raise ``PredictionsError`` naming every problem with the arrays."""
    problems = []
    if len(set(ids)) != len(ids):
        dup = sorted({i for i in ids if ids.count(i) > 1})[:5]
        problems.append(f"`ids` has duplicates, e.g. {dup}")
    if not classes:
        problems.append("`classes` is empty (a class-agnostic method uses ['*'])")
    if len(set(classes)) != len(classes):
        problems.append(f"`classes` has duplicates: {list(classes)}")
    if AGNOSTIC_CLASS in classes and len(classes) > 1:
        problems.append("`classes`: '*' (class-agnostic) must be the only class")
    if maps.dtype != np.float32:
        problems.append(f"`maps` must be float32, got {maps.dtype}")
    elif maps.ndim != 4:
        problems.append(f"`maps` must have shape (N, C, H, W), got {maps.shape}")
    else:
        n, c, h, w = maps.shape
        if n != len(ids):
            problems.append(f"`maps` has {n} rows but `ids` has {len(ids)}")
        if c != len(classes):
            problems.append(f"`maps` has {c} channels but `classes` has {len(classes)}")
        if h < 1 or w < 1:
            problems.append(f"`maps` has an empty spatial size {h}x{w}")
        elif maps.size and not (np.isfinite(maps).all() and maps.min() >= 0 and maps.max() <= 1):
            finite = maps[np.isfinite(maps)]
            low, high = (finite.min(), finite.max()) if finite.size else (np.nan, np.nan)
            problems.append(
                f"`maps` values must lie in [0, 1] and be finite (min {low:.4g}, "
                f"max {high:.4g}, {maps.size - finite.size} non-finite)"
            )
    if scores is not None:
        if scores.dtype != np.float32 or scores.shape != (len(ids), len(classes)):
            problems.append(
                f"`scores` must be float32 of shape (N, C) = ({len(ids)}, {len(classes)}), "
                f"got {scores.dtype} {scores.shape}"
            )
        elif scores.size and not (
            np.isfinite(scores).all() and 0 <= scores.min() <= scores.max() <= 1
        ):
            problems.append("`scores` values must lie in [0, 1] and be finite")
    if problems:
        raise PredictionsError("invalid predictions: " + "; ".join(problems))


def _string_array(values: Sequence[str]) -> np.ndarray:
    return np.array(list(values), dtype=np.str_) if values else np.zeros(0, dtype="<U1")


def save_predictions(
    path: str | os.PathLike[str], preds: Predictions, *, compress: bool = False
) -> Path:
    """Write predictions to ``path`` (an ``.npz``), atomically: temp file, then rename.

    Args:
        path: destination file; its folder is created if needed.
        preds: the predictions to write.
        compress: use zip deflate (smaller, slower to write and read).
    """
    path = Path(path)
    arrays = {"ids": _string_array(preds.ids), "classes": _string_array(preds.classes)}
    arrays["maps"] = preds.maps
    if preds.scores is not None:
        arrays["scores"] = preds.scores
    with atomic_open(path, "wb", fsync=True) as handle:
        (np.savez_compressed if compress else np.savez)(handle, **arrays)
    logger.debug("wrote predictions for %d samples to %s", len(preds), path)
    return path


def load_predictions(path: str | os.PathLike[str]) -> Predictions:
    """Read and validate a predictions ``.npz`` (never unpickles anything).

    Raises:
        PredictionsError: the file is missing, not an ``.npz``, lacks an array, or an array has
            the wrong dtype, shape or value range.
    """
    path = Path(path)
    if not path.is_file():
        raise PredictionsError(f"predictions file not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = [k for k in _REQUIRED_KEYS if k not in data.files]
            if missing:
                raise PredictionsError(f"{path}: missing array(s) {missing}; found {data.files}")
            arrays = {k: data[k] for k in (*_REQUIRED_KEYS, *_OPTIONAL_KEYS) if k in data.files}
    except PredictionsError:
        raise
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as err:
        raise PredictionsError(f"{path}: not a readable predictions .npz ({err})") from err
    for key in ("ids", "classes"):
        arr = arrays[key]
        if arr.dtype.kind != "U" or arr.ndim != 1:
            raise PredictionsError(
                f"{path}: `{key}` must be a 1-D array of strings, got {arr.dtype} {arr.shape}"
            )
    for key in ("maps", "scores"):
        if key in arrays and arrays[key].dtype != np.float32:
            raise PredictionsError(f"{path}: `{key}` must be float32, got {arrays[key].dtype}")
    try:
        return Predictions(
            ids=tuple(arrays["ids"].tolist()),
            classes=tuple(arrays["classes"].tolist()),
            maps=arrays["maps"],
            scores=arrays.get("scores"),
        )
    except PredictionsError as err:
        raise PredictionsError(f"{path}: {err}") from None
