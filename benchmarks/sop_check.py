r"""Does a trained Sound of Pixels model separate anything? (a collapse check)

    python benchmarks/sop_check.py --checkpoint runs/bench-cpu/runs/sop-seed0/model.safetensors \
        --data bench/default --json docs/results/sop-cpu-check.json

Takes 32 `--split` clips (every 16th), mixes each with the next one's audio as the `sop` task
does, and prints: the mixture magnitudes and SoP's loss weights clamp(log(1 + |X|), 1e-3, 10);
the unweighted BCE of the predicted masks against the ideal binary masks, next to chance (all
logits 0); the mask accuracy with each clip's own visual vector and with another clip's (equal:
the picture is not used); and the spread of the masks, pixel features and sound features (all
near 0: the model has collapsed to a constant mask of 0.5).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from ier import losses
from ier.checkpoint import load_model
from ier.data.datasets import load_eval_split, read_classes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--split", default="test/solo")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    model = load_model(args.checkpoint).eval()
    ds = load_eval_split(args.data, args.split, model, classes=read_classes(args.data))
    idx = list(range(0, len(ds), 16))[:32]
    items = [ds.item(i, augment=False) for i in idx]  # the evaluation view, pixels or features
    waves = torch.stack([item["wave"] for item in items])
    visual = torch.stack([item["image"] for item in items])
    q = torch.tensor([0.1, 0.5, 0.9, 0.99])
    with torch.no_grad():
        own = model.magnitude(waves)
        other = torch.roll(own, 1, 0)
        mixture = model.magnitude(0.5 * (waves + torch.roll(waves, 1, 0)))
        weight = losses.separation_weight(mixture)
        sound = model.sound_features(mixture)
        pixels = model.pixel_features(visual)
        vectors = pixels.flatten(2).amax(dim=2)
        logits = model.mask_logits(vectors, sound)
        swapped = model.mask_logits(torch.roll(vectors, 1, 0), sound)
        target = (own >= other).float()
        masks = torch.sigmoid(logits)
        bce = F.binary_cross_entropy_with_logits
        shown = sys.argv[1:] if argv is None else argv
        out = {
            "command": "python benchmarks/sop_check.py " + " ".join(shown),
            "date": time.strftime("%Y-%m-%d"),
            "clips": len(idx),
            "mixture_magnitude_quantiles": torch.quantile(mixture.flatten(), q).tolist(),
            "loss_weight_quantiles": torch.quantile(weight.flatten(), q).tolist(),
            "quantiles": q.tolist(),
            "bce_unweighted": bce(logits, target).item(),
            "bce_chance": bce(torch.zeros_like(logits), target).item(),
            "mask_accuracy_own_vector": ((logits > 0).float() == target).float().mean().item(),
            "mask_accuracy_other_vector": ((swapped > 0).float() == target).float().mean().item(),
            "mask_mean": masks.mean().item(), "mask_std": masks.std().item(),
            "pixel_feature_std_over_space": pixels.std(dim=(2, 3)).mean().item(),
            "visual_vector_std_over_clips": vectors.std(0).mean().item(),
            "sound_feature_std": sound.std().item(),
            "synth_scale_mean_abs": model.synth_scale.abs().mean().item(),
        }  # fmt: skip
    for key, value in out.items():
        print(f"{key}: {value}")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
