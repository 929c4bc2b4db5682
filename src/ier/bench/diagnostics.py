"""What the bench scores without a forward pass, from the maps a bench run saved
(``runs/<run>/eval/predictions_<split>.npz``), every value computed by ``ier.evaluate.evaluate``
(docs/metrics.md defines them):

- **Uniform map**: maps of 0.5 everywhere, no model and no audio. Its AUC is each split's chance
  level; its false-positive rates are 0 by construction (0.5 never exceeds tau = 0.5), not an
  achievement.
- **Diagnostics** of a run: the pointing game per split (``pointing``, with its chance level
  ``pointing_chance``), and the threshold-free ``peak_auroc`` of test/wild against test/negative
  (0.5 means the maps ignore the sound). They are recomputed from the saved maps, so a bench
  folder written before these metrics existed gets them too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ier.data.datasets import list_splits, split_manifest
from ier.data.manifest import read_manifest
from ier.data.sample import Sample
from ier.evaluate import evaluate, split_kind
from ier.inference import JOINT_SPLITS, concat_predictions
from ier.predictions import AGNOSTIC_CLASS, constant_predictions, load_predictions

POINTING_SPLITS = ("test/solo", "test/synthetic", "test/duet", "test/wild")
"""Splits of the pointing-game table (those with sounding boxes), in table order."""
AUROC_SPLITS = ("test/wild", "test/negative")
"""(positives, negatives) of the peak AUROC."""


def read_test_samples(data_dir: Path) -> dict[str, list[Sample]]:
    """Every ``test/*`` split's manifest samples, read once for all the rows of a report."""

    return {s: read_manifest(split_manifest(data_dir, s)) for s in list_splits(data_dir, "test/")}


UNIFORM_REFERENCE = "uniform"
"""Name of the reference row every metric table starts with."""


def uniform_reference(
    samples: Mapping[str, Sequence[Sample]], classes: Sequence[str]
) -> dict[str, Any]:
    """The uniform-map reference record: every split of ``samples`` (and SLAVC's extended
    protocol, test/solo positives + test/negative negatives) scored on maps of 0.5 everywhere
    (``constant_predictions``); solo splits get the one class-agnostic map."""

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
        classes: The benchmark's categories (unused; kept for the callers' signature).

    Returns:
        ``{"pointing": {split: hit}, "chance": {split: mean box area}, "peak_auroc": x}``, with
        the splits (and the AUROC) that have no saved predictions or samples left out (None).
    """

    def load(split: str):  # noqa: ANN202
        path = eval_dir / f"predictions_{split.split('/')[-1]}.npz"
        if not path.is_file() or split not in samples:
            return None
        return load_predictions(path), samples[split]

    out: dict[str, Any] = {"pointing": {}, "chance": {}, "peak_auroc": None}
    for split in POINTING_SPLITS:
        loaded = load(split)
        if loaded is not None:
            metrics = evaluate(*loaded)
            out["pointing"][split] = metrics["pointing"]
            out["chance"][split] = metrics["pointing_chance"]
    parts = [load(s) for s in JOINT_SPLITS["test/wild+negative"]]
    if all(p is not None for p in parts):
        joined = concat_predictions([p[0] for p in parts])
        out["peak_auroc"] = evaluate(joined, [s for p in parts for s in p[1]])["peak_auroc"]
    return out
