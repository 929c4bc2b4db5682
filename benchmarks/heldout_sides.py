r"""Which held-out modality does the overlay fail on: the test recordings, the test images, or
both? The same model, on wild and no-sound scenes whose assets are held out on neither side, on
one side only, or on both.

    python benchmarks/heldout_sides.py --data bench/default --diag bench/default-diag \
        --model ier-wild-small --clips 256 --json docs/results/heldout-sides.json

The one-modality scenes are ``ier.scenes.build.DIAGNOSTIC_SPLITS``, built into ``--diag`` from the
benchmark's seed (``build_diagnostic_splits``; resumed when already there). Four conditions, each
a wild split and the no-sound split of the same assets:

- training assets: ``val/wild`` + ``val/negative`` (where the stored threshold was calibrated);
- held-out images, training recordings: ``diag/wild-test-images`` + ``diag/negative-test-images``;
- training images, held-out recordings: ``diag/wild-test-audio`` + ``diag/negative-test-audio``;
- held-out both: ``test/wild`` + ``test/negative``.

Every clip goes once through ``ier.localization.localize`` (the path of ``ier localize``), and the
counts follow from each window's evidence as in ``benchmarks/overlay_sweep.py``. Per condition:
the wild windows marked / with a labelled hit / with a hit on any sounding object, and the clips
hit in most windows, at the stored threshold, and with an oracle decision (the classes that sound,
no threshold: the maps' share); the no-sound windows marked at the stored threshold; the ROC AUC of
a window's highest evidence, wild windows against no-sound windows (does anything sound on screen?
threshold-free); and, as a diagnostic, the labelled hits at the threshold that marks 10 % of the
condition's own no-sound windows (what a calibration on that material would give).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from overlay_sweep import budget_threshold, counts_at, window_rows

from ier.bench.plan import provenance
from ier.data.manifest import read_manifest
from ier.localization import load_model, localize
from ier.metrics import roc_auc
from ier.scenes.build import build_diagnostic_splits

CONDITIONS = {
    "training assets": ("data", "val/wild", "val/negative"),
    "held-out images": ("diag", "diag/wild-test-images", "diag/negative-test-images"),
    "held-out recordings": ("diag", "diag/wild-test-audio", "diag/negative-test-audio"),
    "held-out both": ("data", "test/wild", "test/negative"),
}
"""Condition -> (folder: the benchmark or the diagnostic one, wild split, no-sound split)."""
DIAGNOSTIC_BUDGET = 0.10  # share of the condition's own no-sound windows marked


def window_maxima(clips: list) -> np.ndarray:
    """Each window's highest evidence over the classes, for every window of every clip."""
    return np.array([max(r[0] for r in row) for clip in clips for row in clip])


def summarise(wild: list, negative: list, stored: float) -> dict[str, Any]:
    """One condition's figures from ``overlay_sweep.window_rows`` of its wild and no-sound clips
    at the stored threshold ``stored``."""
    own = budget_threshold(negative, DIAGNOSTIC_BUDGET)
    return {
        "wild_at_stored": counts_at(wild, stored),
        "negative_at_stored": counts_at(negative, stored),
        "wild_oracle_decision": counts_at(wild, None),
        "window_auroc": roc_auc(window_maxima(wild), window_maxima(negative)),
        "own_budget_threshold": own,
        "wild_at_own_budget": counts_at(wild, own),
    }


def run(data: Path, diag: Path, model: str, clips: int) -> dict[str, Any]:
    build_diagnostic_splits(data, diag, count=clips, progress=False)
    net = load_model(model)
    roots = {"data": data, "diag": diag}
    rows: dict[str, list] = {}
    stored, seconds = None, {}
    for root, *splits in CONDITIONS.values():
        for split in splits:
            started = time.perf_counter()
            records = read_manifest(roots[root] / split / "manifest.jsonl")[:clips]
            rows[split] = []
            for record in records:
                result = localize(roots[root] / split / record.video, model=net)
                rows[split].append(window_rows(result, record))
                stored = result.settings.rule.score_threshold
            seconds[split] = round(time.perf_counter() - started, 1)
    return {"model": model, "clips": clips, "stored_threshold": stored, "seconds": seconds,
            "diagnostic_budget": DIAGNOSTIC_BUDGET,
            "conditions": {name: {"splits": [wild, negative],
                                  **summarise(rows[wild], rows[negative], stored)}
                           for name, (_, wild, negative) in CONDITIONS.items()}}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="benchmark directory")
    parser.add_argument("--diag", type=Path, required=True,
                        help="folder of the one-modality splits (built there when missing)")
    parser.add_argument("--model", default="ier-wild-small", help="bundled name or checkpoint")
    parser.add_argument("--clips", type=int, default=256, help="clips of each split")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    out = run(args.data, args.diag, args.model, args.clips)
    print(f"model {out['model']}, stored threshold {out['stored_threshold']:.3f}, "
          f"first {out['clips']} clips of each split")
    print("| condition | wild: marked / labelled hit / any hit of windows (clips mostly hit) | "
          "no-sound windows marked | window AUROC | labelled hits at 10 % own no-sound | "
          "oracle decision: labelled hits |")
    print("|---|---|---|---|---|---|")
    for name, c in out["conditions"].items():
        w, n, o, b = (c["wild_at_stored"], c["negative_at_stored"], c["wild_oracle_decision"],
                      c["wild_at_own_budget"])  # fmt: skip
        print(f"| {name} | {w['marked']} / {w['hit']} / {w['any_hit']} of {w['windows']} "
              f"({w['clips_most_hit']}) | {n['marked']} of {n['windows']} | "
              f"{100 * c['window_auroc']:.1f} | {b['hit']} ({b['clips_most_hit']}) | "
              f"{o['hit']} ({o['clips_most_hit']}) |")
    if args.json:
        out["provenance"] = {**provenance(), "command": " ".join(["python", *sys.argv])}
        args.json.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
