r"""Audio-free reference rows for a results table: what a map that ignores the sound scores.

    python benchmarks/reference_maps.py --data bench/default \
        --checkpoint runs/ier-quick/model.safetensors

Two references, scored by the same ``ier.evaluate.evaluate`` as every model:

- ``uniform``: every map 0.5 everywhere (no information at all).
- ``objectness``: the visual backbone's objectness O of ``--checkpoint`` (per-image min-max
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


def main() -> None:
    from ier.checkpoint import load_model
    from ier.data.datasets import list_splits, load_eval_split, read_classes
    from ier.evaluate import evaluate, split_kind
    from ier.predictions import Predictions, constant_predictions

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="benchmark directory")
    parser.add_argument("--checkpoint", type=Path, required=True, help="its backbone gives O")
    parser.add_argument("--splits", nargs="+", help="default: every test split")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--out", type=Path, help="write the metrics as JSON here")
    args = parser.parse_args()

    model = load_model(args.checkpoint)
    if not hasattr(model, "visual_backbone"):
        parser.error(f"{args.checkpoint}: a {model.config.name!r} model has no visual_backbone "
                     "to take the objectness from")  # fmt: skip
    classes = read_classes(args.data)
    results: dict[str, dict[str, dict]] = {"uniform": {}, "objectness": {}}
    for split in args.splits or list_splits(args.data, "test/"):
        dataset = load_eval_split(args.data, split, model, classes=classes)
        prior = objectness_maps(model, dataset, args.batch_size)
        names = ("*",) if split_kind(split) == "solo" else tuple(classes)
        n, side = len(prior), prior.shape[-1]
        ids = tuple(s.id for s in dataset.samples)
        maps = np.repeat(prior.astype(np.float32), len(names), axis=1)
        objectness = Predictions(
            ids=ids, classes=names, maps=maps, scores=maps.reshape(n, len(names), -1).max(axis=2)
        )
        for ref, preds in (("uniform", constant_predictions(ids, names, 0.5, side)),
                           ("objectness", objectness)):  # fmt: skip
            metrics = evaluate(preds, dataset.samples)
            results[ref][split] = {k: metrics[k] for k in KEYS if metrics.get(k) is not None}
            shown = " ".join(f"{k}={100 * v:.1f}" for k, v in results[ref][split].items())
            print(f"{ref:10s} {split:16s} {shown}", flush=True)
    if args.out:
        args.out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
