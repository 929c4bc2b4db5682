r"""Diagnostics: would ImageNet's own classifier point at the sounding object better than a
trained model's class maps?

    python benchmarks/imagenet_pointing.py --data bench/default \
        --model ier-wild-small --json imagenet-pointing.json

The frozen visual trunk is ImageNet-pretrained, and its packaged weights keep the 1000-way
ImageNet classifier (``_fc``), which ``ier`` drops. Applied at every cell of the trunk's last
block (a class activation map), it gives each of our categories a map that needs no training on
this benchmark, from pictures of millions of objects instead of our 1-3 per class. This plays
the pointing game (``pointing_game.py``: for every sounding, labelled object, a hit is the
argmax cell of its category's map inside its box) with those maps, read from ``--model``'s
feature cache (so at its trunk and input size), in two forms:

- ``name``: each category's ImageNet classes chosen by name (``NAME_TO_IMAGENET``, for the
  built-in benchmark's 16 categories; a prior that uses our class names);
- ``train-photos``: its 3 ImageNet classes with the highest mean softmax over the box cells of
  its ``train/solo`` objects (training photos only).

A category's map is log Σ softmax over its ImageNet classes, per cell. Needs a model with a
frozen, pretrained EfficientNet-lite trunk (the ``cpu`` preset) and its feature cache.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pointing_game import peak_hit, sounding_objects  # noqa: E402

NAME_TO_IMAGENET = {
    "violin": [889], "cello": [486], "guitar": [402, 546], "trumpet": [513], "drum": [541],
    "dog": list(range(151, 269)), "cat": [281, 282, 283, 284, 285], "chicken": [7, 8],
    "cow": [345, 346], "sheep": [348, 349], "horse": [339], "duck": [97, 98], "pig": [341, 342],
    "owl": [24], "lion": [291], "tiger": [292],
}  # fmt: skip
"""ImageNet-1k class indices per built-in category (violin 889, cello 486, acoustic / electric
guitar 402 / 546, cornet 513, drum 541, the 118 dog breeds 151-268, the 5 domestic cats 281-285,
cock / hen 7 / 8, ox / water buffalo 345 / 346, ram / bighorn 348 / 349, sorrel 339, drake /
red-breasted merganser 97 / 98, hog / wild boar 341 / 342, great grey owl 24, lion 291,
tiger 292)."""


class ImageNetMaps:
    """Per-cell ImageNet log-probabilities of cached trunk features: the pretrained last block
    (1x1 conv to 1280 + BN + ReLU6) and classifier of the trunk's packaged weights."""

    def __init__(self, variant: str) -> None:
        from ier.models.backbones import build_visual_backbone, efficientnet_lite_weights_path

        self.backbone = build_visual_backbone(variant, pretrained=True).eval()
        state = torch.load(efficientnet_lite_weights_path(variant), map_location="cpu",
                           weights_only=True)  # fmt: skip
        self.weight, self.bias = state["_fc.weight"], state["_fc.bias"]

    @torch.no_grad()
    def __call__(self, features: torch.Tensor) -> torch.Tensor:
        f = self.backbone.head(features.float())
        return (torch.einsum("bchw,kc->bkhw", f, self.weight)
                + self.bias[:, None, None]).log_softmax(1)  # fmt: skip


def split_maps(maps: ImageNetMaps, model, data: Path, split: str, classes, batch_size: int):
    from ier.data.datasets import eval_batches, load_eval_split

    dataset = load_eval_split(data, split, model, classes=classes)
    out = [maps(b["image"]) for b in eval_batches(dataset, batch_size)]
    return dataset.samples, torch.cat(out)


def train_photo_mapping(samples, logp: torch.Tensor, classes, k: int = 3) -> dict:
    """Each category's ``k`` ImageNet classes of highest mean softmax over its box cells."""
    prob = logp.exp()
    h, w = prob.shape[-2:]
    total, count = torch.zeros(len(classes), prob.shape[1]), torch.zeros(len(classes))
    for i, sample in enumerate(samples):
        for c, (x0, y0, x1, y1) in sounding_objects(sample, classes)[:1]:
            ys = slice(int(y0 * h), max(int(y0 * h) + 1, int(np.ceil(y1 * h))))
            xs = slice(int(x0 * w), max(int(x0 * w) + 1, int(np.ceil(x1 * w))))
            total[c] += prob[i, :, ys, xs].mean((1, 2))
            count[c] += 1
    if (count == 0).any():
        missing = [classes[c] for c in torch.nonzero(count == 0).flatten().tolist()]
        raise SystemExit(f"train/solo has no object of {missing}")
    return {c: (total[j] / count[j]).topk(k).indices.tolist() for j, c in enumerate(classes)}


def pointing(samples, logp: torch.Tensor, mapping: dict, classes) -> float:
    maps = torch.stack([logp[:, mapping[c]].logsumexp(1) for c in classes], 1).numpy()
    hits = [peak_hit(maps[i, c], box) for i, s in enumerate(samples)
            for c, box in sounding_objects(s, classes)]  # fmt: skip
    return float(np.mean(hits))


def main() -> None:
    from ier.bench.plan import provenance
    from ier.data.datasets import read_classes
    from ier.localization import load_model

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="benchmark directory")
    parser.add_argument("--model", default="ier-wild-small", help="checkpoint or bundled name")
    parser.add_argument(
        "--splits", nargs="+", default=["test/solo", "test/synthetic", "test/duet", "test/wild"]
    )
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()

    model = load_model(args.model).eval()
    cfg = model.config
    if not (cfg.frozen_trunk and cfg.pretrained and cfg.visual_backbone.startswith("efficientnet")):
        parser.error(f"{args.model}: needs a frozen, pretrained EfficientNet-lite trunk")
    classes = list(read_classes(args.data))
    unknown = sorted(set(classes) - set(NAME_TO_IMAGENET))
    if unknown:
        parser.error(f"no ImageNet classes named for {unknown} (NAME_TO_IMAGENET)")
    maps = ImageNetMaps(cfg.visual_backbone)
    train = split_maps(maps, model, args.data, "train/solo", classes, args.batch_size)
    mappings = {"name": {c: NAME_TO_IMAGENET[c] for c in classes},
                "train-photos": train_photo_mapping(*train, classes)}  # fmt: skip
    result: dict = {"model": str(args.model), "trunk": cfg.visual_backbone,
                    "input_size": cfg.input_size, "mappings": mappings, "splits": {}}  # fmt: skip
    for split in args.splits:
        samples, logp = split_maps(maps, model, args.data, split, classes, args.batch_size)
        boxes = [b for s in samples for _, b in sounding_objects(s, classes)]
        area = [(b[2] - b[0]) * (b[3] - b[1]) for b in boxes]
        row = {"objects": len(boxes), "chance": float(np.mean(area))}
        row.update({k: pointing(samples, logp, m, classes) for k, m in mappings.items()})
        result["splits"][split] = row
        print(f"{split:16s} " + " ".join(f"{k}={v:.3f}" for k, v in row.items()), flush=True)
    if args.json:
        # the bench's record (commit, machine, date), with this script's own command line
        result["provenance"] = {**provenance(), "command": " ".join(["python", *sys.argv])}
        args.json.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
