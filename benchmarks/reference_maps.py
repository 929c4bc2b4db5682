r"""Audio-free reference rows for a results table: what a map that ignores the sound scores.

    python benchmarks/reference_maps.py --data bench/default            # the uniform row only
    python benchmarks/reference_maps.py --data bench/default \
        --checkpoint runs/ier-quick/model.safetensors                     # and the objectness row

Two references, scored by the same ``ier.evaluate.evaluate`` as every model:

- ``uniform``: every map 0.5 everywhere (no information at all;
  ``ier.bench.diagnostics.uniform_reference``, the row ``ier bench`` reports). Needs no model.
- ``objectness`` (with ``--checkpoint``): the visual backbone's objectness O of the checkpoint
  (per-image min-max
  normalised mean |activation|, ``ier.models.common.objectness``), the same map for every class
  and with no audio input. It measures how far "point at the most salient object" goes on each
  split; a sound localizer should beat it wherever the sound decides which object is meant.

Prints one line per reference and split, and writes ``--out`` JSON if given.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

KEYS = ("iou@0.5", "auc", "ciou@0.3", "ciou_auc", "silent_fp", "negative_fp", "pia", "ap", "max_f1")


def objectness_maps(model: torch.nn.Module, dataset, batch_size: int) -> np.ndarray:
    """(N, 1, h, w) objectness of the model's visual backbone for every sample."""
    from ier.data.datasets import eval_batches
    from ier.models.common import backbone_features, objectness

    model.eval()
    maps = []
    with torch.no_grad():
        for batch in eval_batches(dataset, batch_size):
            features = backbone_features(model.visual_backbone, model.image_normalizer,
                                         batch["image"])  # fmt: skip
            maps.append(objectness(features).numpy())
    return np.concatenate(maps)


def _print(ref: str, split: str, metrics: dict) -> None:
    shown = " ".join(f"{k}={100 * v:.1f}" for k, v in metrics.items())
    print(f"{ref:10s} {split:16s} {shown}", flush=True)


def main() -> None:
    from ier.bench.diagnostics import uniform_reference
    from ier.data.datasets import list_splits, read_classes, split_manifest
    from ier.data.manifest import read_manifest

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="benchmark directory")
    parser.add_argument(
        "--checkpoint", type=Path, help="its backbone gives O (without it: the uniform row only)"
    )
    parser.add_argument("--splits", nargs="+", help="default: every test split")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--out", type=Path, help="write the metrics as JSON here")
    args = parser.parse_args()

    classes = read_classes(args.data)
    splits = args.splits or list_splits(args.data, "test/")
    samples = {split: read_manifest(split_manifest(args.data, split)) for split in splits}
    results: dict[str, dict[str, dict]] = {"uniform": {}}
    for split, metrics in uniform_reference(samples, classes)["metrics"].items():
        results["uniform"][split] = {k: metrics[k] for k in KEYS if metrics.get(k) is not None}
        _print("uniform", split, results["uniform"][split])
    if args.checkpoint is not None:
        results["objectness"] = objectness_rows(args, classes, splits)
    if args.out:
        args.out.write_text(json.dumps(results, indent=1))


def objectness_rows(args: argparse.Namespace, classes, splits) -> dict[str, dict]:
    """The objectness reference of ``args.checkpoint`` on every split."""
    from ier.checkpoint import load_model
    from ier.data.datasets import load_eval_split
    from ier.evaluate import evaluate, split_kind
    from ier.predictions import Predictions

    model = load_model(args.checkpoint)
    if not hasattr(model, "visual_backbone"):
        raise SystemExit(f"{args.checkpoint}: a {model.config.name!r} model has no "
                         "visual_backbone to take the objectness from")  # fmt: skip
    rows: dict[str, dict] = {}
    for split in splits:
        dataset = load_eval_split(args.data, split, model, classes=classes)
        prior = objectness_maps(model, dataset, args.batch_size)
        names = ("*",) if split_kind(split) == "solo" else tuple(classes)
        n = len(prior)
        ids = tuple(s.id for s in dataset.samples)
        maps = np.repeat(prior.astype(np.float32), len(names), axis=1)
        objectness = Predictions(
            ids=ids, classes=names, maps=maps, scores=maps.reshape(n, len(names), -1).max(axis=2)
        )
        metrics = evaluate(objectness, dataset.samples)
        rows[split] = {k: metrics[k] for k in KEYS if metrics.get(k) is not None}
        _print("objectness", split, rows[split])
    return rows


if __name__ == "__main__":
    main()
