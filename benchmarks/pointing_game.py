r"""Diagnostics: does a map's peak land on the sounding object? (the pointing game)

    python benchmarks/pointing_game.py --data bench/default \
        --checkpoint runs/ier-quick/stages/1-aii.safetensors
    python benchmarks/pointing_game.py --data bench/default \
        --checkpoint runs/ier-quick/model.safetensors --oracle-sizes 128 192 224
    python benchmarks/pointing_game.py --data bench/default --bench runs/bench-quick
    python benchmarks/pointing_game.py --data bench/default \
        --oracle-trunks efficientnet_lite0 efficientnet_lite1 --oracle-sizes 224 288

For every sounding, labelled object of a test split, a hit is the argmax cell of a map falling
inside the object's box; "chance" is the mean box area (a uniformly random cell). Maps compared:

- ``av``: the stage-1 AV map (one map for all classes);
- ``objectness``: the visual backbone's objectness O, no audio (``ier.models.common.objectness``);
- ``av*O``: the AV map gated by O (``model.object_prior = 1``);
- for an IEr checkpoint with prototypes, per category: ``Lv`` (visual prototype maps), ``A``
  (class AV maps of the expanded audio), ``Lav`` (the CMR maps, what ``localize`` returns).

``--bench DIR`` plays the game on the maps an ``ier bench`` folder already saved
(``runs/<run>/eval/predictions_<split>.npz``: each method's own class maps, or its one map for
every class), so every method is compared without a forward pass; it prints a Markdown table,
with one more column: the ROC AUC of the maps' peak between test/wild clips with on-screen sound
and test/negative clips, a threshold-free check of whether the maps react to the sound at all.
Unlike the alpha x max binarisation of IoU/CIoU, it is blind to a map's floor: a map whose every
cell is above 0.1 x its peak scores exactly like the uniform map on solo IoU/AUC, yet its peak can
still point at the object.

``--oracle-sizes`` adds a ceiling that **uses labels** (a diagnostic, never a result): class
prototypes are the mean normalised feature at the box centre of each ``--oracle-prototypes``
object (default ``test/solo``: the held-out test photos themselves, so it is transductive;
``train/solo`` uses the training photos only, the fair ceiling for a model trained here),
computed with a freshly built visual backbone (the checkpoint's, or each of ``--oracle-trunks``;
ImageNet weights when it is pretrained) at each input size; it then plays the pointing game with
cos(prototype_c, feature_xy) on the mixture splits, on the trunk output (the feature cache point)
and on the backbone output after its last block (``/head``). It measures how class-specific the
features are at that resolution before any training, and prints the trunk's extraction speed and
the float16 size of one cached frame. ``--oracle-trunks`` needs no checkpoint.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F


def peak_hit(cell_map: np.ndarray, box) -> bool:
    """Whether the centre of the (first) peak cell of an ``(h, w)`` map lies inside ``box``."""
    h, w = cell_map.shape
    y, x = np.unravel_index(int(cell_map.argmax()), (h, w))
    x0, y0, x1, y1 = box
    return bool(x0 <= (x + 0.5) / w <= x1 and y0 <= (y + 0.5) / h <= y1)


def sounding_objects(sample, classes) -> list:
    """(class index, box) of each sounding object of ``sample`` whose label is in ``classes``."""
    return [(classes.index(o.label), o.box) for o in sample.objects
            if o.sounding and o.label in classes]  # fmt: skip


def _load(data: Path, split: str, model, classes):
    from ier.data.datasets import load_eval_split

    return load_eval_split(data, split, model, classes=classes)


@torch.no_grad()
def map_variants(model, images: torch.Tensor, waves: torch.Tensor) -> dict[str, torch.Tensor]:
    """Name -> (B, 1 or C, h, w) maps of one batch."""
    features, fv, prior = model.encode_visual_all(images)
    fa, mid = model.encode_audio(waves)
    av = model.av_map(fv, fa)
    out = {"av": av, "objectness": prior, "av*O": av * prior}
    if getattr(model, "has_prototypes", False):
        pf = model.prototype_features(features, fv)
        cmr = model.cmr(fv, model.expand_audio(fa, mid), pf)
        out["Lv"] = model._to_categories(cmr["visual_maps"])
        out["A"] = model._to_categories(cmr["class_av_maps"])
        out["Lav"] = model._to_categories(cmr["cmr_maps"])
    return out


def pointing(model, data: Path, split: str, classes: list[str], batch_size: int) -> dict:
    """Pointing accuracy of every map variant on one split, plus the chance level."""
    from ier.data.datasets import eval_batches

    model.eval()
    dataset = _load(data, split, model, classes)
    map_classes = list(model.classes)
    hits: dict[str, int] = {}
    counted: dict[str, int] = {}  # per variant: objects whose class has a map
    n, area, start = 0, 0.0, 0
    for batch in eval_batches(dataset, batch_size):
        maps = {k: v.numpy() for k, v in map_variants(model, batch["image"], batch["wave"]).items()}
        for j in range(len(batch["image"])):
            for c, box in sounding_objects(dataset.samples[start + j], classes):
                n, area = n + 1, area + (box[2] - box[0]) * (box[3] - box[1])
                for name, m in maps.items():
                    if m.shape[1] == 1:
                        channel = 0
                    elif classes[c] in map_classes:
                        channel = map_classes.index(classes[c])
                    else:
                        continue
                    hits[name] = hits.get(name, 0) + peak_hit(m[j, channel], box)
                    counted[name] = counted.get(name, 0) + 1
        start += len(batch["image"])
    return {"n": n, "chance": area / max(n, 1), **{k: v / counted[k] for k, v in hits.items()}}


def _oracle_pointing(f: torch.Tensor, protos: torch.Tensor, samples, classes) -> float:
    maps = torch.einsum("bdhw,kd->bkhw", F.normalize(f, dim=1), protos).numpy()
    hits = [peak_hit(maps[i, c], box) for i, s in enumerate(samples)
            for c, box in sounding_objects(s, classes)]  # fmt: skip
    return float(np.mean(hits)) if hits else float("nan")


def _box_centre_prototypes(f: torch.Tensor, samples, classes) -> torch.Tensor:
    f = F.normalize(f, dim=1)
    h, w = f.shape[-2:]
    protos = torch.zeros(len(classes), f.shape[1])
    for i, sample in enumerate(samples):
        for c, (x0, y0, x1, y1) in sounding_objects(sample, classes)[:1]:
            cx, cy = min(int((x0 + x1) / 2 * w), w - 1), min(int((y0 + y1) / 2 * h), h - 1)
            protos[c] += f[i, :, cy, cx]
    return F.normalize(protos, dim=1)


@torch.no_grad()
def oracle_ceiling(
    backbone_name: str, data: Path, size: int, splits: list[str], classes: list[str], *,
    width: int = 64, pretrained: bool = True, batch_size: int = 16,
    prototype_split: str = "test/solo",
) -> dict:  # fmt: skip
    """Label-using ceiling of one visual backbone at one input size.

    Prototypes are the mean normalised feature at the box centre of each ``prototype_split``
    object (``test/solo``: the test photos themselves, a transductive ceiling; ``train/solo``: only
    the training photos, the ceiling a model trained on this benchmark's training data can reach);
    the pointing game is played with cos(prototype_c, feature_xy) on ``splits``, once on the
    trunk output (``<split>``: the feature cache point of ``ier.data.features``) and once on the
    backbone output after its last block (``<split>/head``). Also returns the trunk's speed
    (``trunk_img_s``, images per second of ``ier.data.features.trunk_features``, timed in this run)
    and the float16 bytes of one cached frame (``cache_bytes``).
    """
    import time

    from ier.data.datasets import eval_batches, load_split
    from ier.data.features import trunk_features
    from ier.models.backbones import build_visual_backbone
    from ier.models.common import ImageNormalizer

    backbone = build_visual_backbone(backbone_name, width=width, pretrained=pretrained).eval()
    normalizer = ImageNormalizer()
    seconds, images = 0.0, 0

    def features(split):
        nonlocal seconds, images
        dataset = load_split(data, split, classes=classes, input_size=size, sample_rate=16000,
                             num_samples=16000, train=False)  # fmt: skip
        trunk, head = [], []
        for batch in eval_batches(dataset, batch_size):
            started = time.perf_counter()
            t = trunk_features(backbone, normalizer(batch["image"]))
            seconds, images = seconds + time.perf_counter() - started, images + len(t)
            trunk.append(t.float())
            head.append(backbone.head(t.float()))
        return dataset.samples, torch.cat(trunk), torch.cat(head)

    solo, f_trunk, f_head = features(prototype_split)
    protos = {"trunk": _box_centre_prototypes(f_trunk, solo, classes),
              "head": _box_centre_prototypes(f_head, solo, classes)}  # fmt: skip
    out: dict = {}
    for split in splits:
        samples, f_trunk, f_head = features(split)
        out[split] = _oracle_pointing(f_trunk, protos["trunk"], samples, classes)
        out[f"{split}/head"] = _oracle_pointing(f_head, protos["head"], samples, classes)
    side = -(-size // 16)
    out["trunk_img_s"] = images / max(seconds, 1e-9)
    out["cache_bytes"] = int(backbone.trunk_channels * side * side * 2)
    return out


def main() -> None:
    from ier.checkpoint import load_model
    from ier.data.datasets import list_splits, read_classes

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="benchmark directory")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--checkpoint", type=Path, help="a model: every map variant it has")
    source.add_argument("--bench", type=Path, help="an ier bench folder: every run's saved maps")
    parser.add_argument("--splits", nargs="+", help="default: every test split with sound boxes")
    parser.add_argument("--oracle-sizes", type=int, nargs="*", default=[], metavar="PX")
    parser.add_argument("--oracle-trunks", nargs="*", default=[], metavar="BACKBONE",
                        help="visual backbones for the oracle (default: the checkpoint's)")
    parser.add_argument("--oracle-prototypes", default="test/solo", metavar="SPLIT",
                        help="split whose boxed objects give the oracle's class prototypes "
                             "(test/solo: transductive; train/solo: training photos only)")
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()

    classes = list(read_classes(args.data))
    splits = args.splits or [s for s in list_splits(args.data, "test/") if "negative" not in s]
    if args.bench:
        from ier.bench.diagnostics import read_test_samples, run_diagnostics
        from ier.bench.rows import Row
        from ier.bench.tables import diagnostics_table

        if args.splits or args.oracle_sizes or args.oracle_trunks:
            parser.error("--splits and --oracle-* need --checkpoint or --oracle-trunks; "
                         "--bench scores every run's saved maps on the splits of "
                         "ier.bench.diagnostics")  # fmt: skip
        if not (args.bench / "runs").is_dir():
            parser.error(f"{args.bench} is not an ier bench folder (it has no runs/)")
        samples = read_test_samples(args.data)
        runs = sorted(p.name for p in (args.bench / "runs").iterdir() if (p / "eval").is_dir())
        rows = [Row(r, r, False, [{"name": r}],
                    [run_diagnostics(args.bench / "runs" / r / "eval", samples, classes)])
                for r in runs]  # fmt: skip
        print("\n".join(diagnostics_table(rows)))
        return
    mixtures = [s for s in splits if not s.endswith("/solo")]
    if args.checkpoint is None:
        if not (args.oracle_sizes and args.oracle_trunks):
            parser.error("give --checkpoint or --bench, or --oracle-trunks with --oracle-sizes")
        _print_oracle(args.oracle_trunks, args.oracle_sizes, args.data, mixtures, classes,
                      prototype_split=args.oracle_prototypes)  # fmt: skip
        return
    model = load_model(args.checkpoint)
    if not hasattr(model, "encode_visual_with_prior"):
        parser.error(f"{args.checkpoint}: a {model.config.name!r} model has no AV map and backbone "
                     "objectness to compare; use an IEr, DSOL or OTS checkpoint")  # fmt: skip
    for split in splits:
        r = pointing(model, args.data, split, classes, args.batch_size)
        shown = " ".join(f"{k}={v:.3f}" for k, v in r.items() if k not in ("n", "chance"))
        print(f"pointing {split:16s} n={r['n']} chance={r['chance']:.3f} {shown}", flush=True)
    trunks = args.oracle_trunks or [model.config.visual_backbone]
    _print_oracle(trunks, args.oracle_sizes, args.data, mixtures, classes,
                  width=model.config.width, pretrained=model.config.pretrained,
                  prototype_split=args.oracle_prototypes)  # fmt: skip


def _print_oracle(trunks, sizes, data, splits, classes, **kwargs) -> None:
    for trunk in trunks:
        for size in sizes:
            r = oracle_ceiling(trunk, data, size, splits, classes, **kwargs)
            shown = " ".join(f"{k}={v:.3f}" for k, v in r.items())
            where = kwargs.get("prototype_split", "test/solo")
            print(f"oracle-prototype ceiling (uses labels, prototypes from {where}) {trunk} at "
                  f"{size} px: {shown}", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
