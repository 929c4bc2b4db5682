"""What the bench scores without a forward pass: the uniform-map reference row, and diagnostics
that the default metrics hide, computed from the maps a bench run saved
(``runs/<run>/eval/predictions_<split>.npz``).

- **Uniform map**: maps of 0.5 everywhere, no model and no audio, scored by the same
  ``ier.evaluate.evaluate``. Its AUC is each split's chance level; its false-positive rates are 0
  by construction (0.5 never exceeds tau = 0.5), not an achievement.

- **Pointing game**: for each sounding, labelled object, a hit is the peak cell of the object's
  class map (a class-agnostic method's one map) inside the object's box; chance is the mean box
  area. Unlike the alpha x max binarisation of IoU/CIoU, it is blind to a map's floor: on a solo
  split at alpha = 0.1, a map whose every cell is above a tenth of its peak scores exactly as the
  uniform map, yet its peak can still point at the object.
- **Peak AUROC**: ROC AUC of each clip's map peak (over cells and classes) between test/wild clips
  with a sounding on-screen object and test/negative clips. 0.5 means the maps ignore the sound.
  Unlike the tau = 0.5 false-positive rates, it does not depend on the maps' absolute scale.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ier.data.records import Box, Sample
from ier.predictions import Predictions

POINTING_SPLITS = ("test/solo", "test/synthetic", "test/duet", "test/wild")
"""Splits of the pointing-game table (those with sounding boxes), in table order."""
AUROC_SPLITS = ("test/wild", "test/negative")
"""(positives, negatives) of the peak AUROC."""


def peak_hit(cell_map: np.ndarray, box: Box) -> bool:
    """Whether the centre of the (first) peak cell of an ``(h, w)`` map lies inside ``box``
    (``x0, y0, x1, y1`` normalised)."""
    h, w = cell_map.shape
    y, x = np.unravel_index(int(cell_map.argmax()), (h, w))
    x0, y0, x1, y1 = box
    return bool(x0 <= (x + 0.5) / w <= x1 and y0 <= (y + 0.5) / h <= y1)


def sounding_objects(sample: Sample, classes: Sequence[str]) -> list[tuple[int, Box]]:
    """(class index, box) of each sounding object of ``sample`` whose label is in ``classes``."""
    return [(classes.index(o.label), o.box) for o in sample.objects
            if o.sounding and o.label in classes]  # fmt: skip


def pointing_accuracy(
    preds: Predictions, samples: Sequence[Sample], classes: Sequence[str]
) -> dict[str, Any]:
    """Pointing game of saved predictions on a split's samples.

    Each sounding, labelled object is scored on its class's map (a class-agnostic method's one map
    for every class); objects whose class has no map are left out of ``hit`` (not of ``chance``),
    and a sample without a prediction is a miss.

    Returns:
        ``{"n": objects, "chance": mean box area, "hit": fraction of hits or None}``.
    """
    classes = list(classes)
    hits = counted = n = 0
    area = 0.0
    for sample in samples:
        row = preds.index_of(sample.id)
        for c, box in sounding_objects(sample, classes):
            n, area = n + 1, area + (box[2] - box[0]) * (box[3] - box[1])
            if preds.class_agnostic:
                channel = 0
            elif classes[c] in preds.classes:
                channel = preds.classes.index(classes[c])
            else:
                continue
            counted += 1
            hits += row is not None and peak_hit(preds.maps[row, channel], box)
    return {"n": n, "chance": area / n if n else None, "hit": hits / counted if counted else None}


def peak_auroc(
    positives: Predictions, negatives: Predictions, positive_ids: set[str] | None = None
) -> float | None:
    """ROC AUC of the clips' map peaks (max over classes and cells), ``positives`` (restricted to
    ``positive_ids`` if given) against ``negatives``; None when either side is empty."""
    from sklearn.metrics import roc_auc_score

    rows = [i for i, sample_id in enumerate(positives.ids)
            if positive_ids is None or sample_id in positive_ids]  # fmt: skip
    if not rows or not len(negatives):
        return None
    peaks = np.concatenate([positives.maps[rows].reshape(len(rows), -1).max(axis=1),
                            negatives.maps.reshape(len(negatives), -1).max(axis=1)])  # fmt: skip
    labels = np.r_[np.ones(len(rows)), np.zeros(len(negatives))]
    return float(roc_auc_score(labels, peaks))


def read_test_samples(data_dir: Path) -> dict[str, list[Sample]]:
    """Every ``test/*`` split's manifest samples, read once for all the rows of a report."""
    from ier.data.datasets import list_splits, split_manifest
    from ier.data.manifest import read_manifest

    return {s: read_manifest(split_manifest(data_dir, s)) for s in list_splits(data_dir, "test/")}


UNIFORM_REFERENCE = "uniform"
"""Name of the reference row every metric table starts with."""


def uniform_reference(
    samples: Mapping[str, Sequence[Sample]], classes: Sequence[str]
) -> dict[str, Any]:
    """The uniform-map reference record: every split of ``samples`` (and SLAVC's extended
    protocol, test/solo positives + test/negative negatives) scored on maps of 0.5 everywhere
    (``constant_predictions``); solo splits get the one class-agnostic map."""
    from ier.evaluate import evaluate, split_kind
    from ier.predictions import AGNOSTIC_CLASS, constant_predictions

    def score(split_samples: Sequence[Sample], names: Sequence[str]) -> dict[str, Any]:
        ids = [s.id for s in split_samples]
        result = evaluate(constant_predictions(ids, names), split_samples)
        return {k: v for k, v in result.items() if k != "settings"}

    metrics = {
        split: score(found, (AGNOSTIC_CLASS,) if split_kind(split) == "solo" else classes)
        for split, found in samples.items()
    }
    extended = None
    if {"test/solo", "test/negative"} <= set(samples):
        extended = score([*samples["test/solo"], *samples["test/negative"]], (AGNOSTIC_CLASS,))
    return {
        "name": UNIFORM_REFERENCE, "method": UNIFORM_REFERENCE, "overrides": [],
        "label": "Uniform map (reference: no model, no audio)", "ablation": False,
        "reference": True, "metrics": metrics, "extended": extended,
    }  # fmt: skip


def run_diagnostics(
    eval_dir: Path, samples: Mapping[str, Sequence[Sample]], classes: Sequence[str]
) -> dict[str, Any]:
    """Pointing game per split and the peak AUROC of one run's saved predictions.

    Args:
        eval_dir: The run's ``eval`` folder (``predictions_<split>.npz``).
        samples: ``read_test_samples`` of the benchmark.
        classes: The benchmark's categories (``read_classes``).

    Returns:
        ``{"pointing": {split: hit}, "chance": {split: mean box area}, "peak_auroc": x}``, with
        the splits (and the AUROC) that have no saved predictions or samples left out (None).
    """
    from ier.predictions import load_predictions

    def load(split: str) -> tuple[Predictions, Sequence[Sample]] | None:
        path = eval_dir / f"predictions_{split.split('/')[-1]}.npz"
        if not path.is_file() or split not in samples:
            return None
        return load_predictions(path), samples[split]

    out: dict[str, Any] = {"pointing": {}, "chance": {}, "peak_auroc": None}
    for split in POINTING_SPLITS:
        loaded = load(split)
        if loaded is not None:
            r = pointing_accuracy(*loaded, classes)
            out["pointing"][split], out["chance"][split] = r["hit"], r["chance"]
    wild, negative = (load(s) for s in AUROC_SPLITS)
    if wild is not None and negative is not None:
        heard = {s.id for s in wild[1] if any(o.sounding for o in s.objects)}
        out["peak_auroc"] = peak_auroc(wild[0], negative[0], heard)
    return out
