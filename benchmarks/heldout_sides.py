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

With ``--presence`` the same splits are also scored clip by clip (the centre window, from the
feature cache; ``ier.inference.predict_with_cues``), as ``benchmarks/decision_cues.py`` does:
per condition, the clips marked and hit at each rule's validation threshold, the no-sound clips
marked, the clip-level ROC AUC and the hits at the condition's own 10 % budget, for the stored
presence and for presences refitted on ``val/wild`` + ``val/negative`` on other features
(``VARIANTS``: can a recombination of the cues transfer better?); and the stored presence at
thresholds read off each condition's no-sound clips, applied to ``test/wild`` and
``test/negative`` (``threshold_sources``; a diagnostic of calibrating on material the model never
saw: the one-modality conditions use test assets, so none of this may set a stored threshold).
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
from ier.data.datasets import load_eval_split, read_classes
from ier.data.manifest import read_manifest
from ier.inference import predict_with_cues
from ier.localization import load_model, localize
from ier.localization.results import presence_calibration
from ier.metrics import roc_auc
from ier.models.output import DECISION_CUES
from ier.presence import (
    PRESENCE_BUDGET,
    REGULARISATION,
    presence_metrics,
    presence_probability,
    sounding_targets,
)
from ier.presence import budget_threshold as clip_budget_threshold
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


def _relative_visual(c: np.ndarray) -> np.ndarray:
    """The five cues with the visual peak made relative to the frame's highest class, which is
    kept as a feature of its own: (N, C, 5) -> (N, C, 6)."""
    i = DECISION_CUES.index("visual_peak")
    top = c[..., i].max(axis=1, keepdims=True)
    return np.concatenate([c[..., :i], (c[..., i] - top)[..., None],
                           np.broadcast_to(top, c.shape[:2])[..., None], c[..., i + 1:]], axis=2)


VARIANTS = {
    "five cues, refitted": lambda c: c,
    "without the visual peak": lambda c: np.delete(c, DECISION_CUES.index("visual_peak"), axis=2),
    "visual peak relative to the frame's highest": _relative_visual,
}
"""Presences refitted on the validation splits on other features of the same cues."""


def fit_variant(features, wild: tuple[np.ndarray, np.ndarray], negative: np.ndarray):
    """A logistic regression on ``features(cues)`` of the validation (clip, class) pairs, as
    ``ier.presence.fit_presence`` fits the stored one; returns cues (N, C, F) -> probability
    (N, C) and its threshold at ``PRESENCE_BUDGET`` of the no-sound clips."""
    from sklearn.linear_model import LogisticRegression

    xw, xn = features(wild[0]), features(negative)
    x = np.concatenate([xw.reshape(-1, xw.shape[-1]), xn.reshape(-1, xn.shape[-1])])
    y = np.concatenate([wild[1].reshape(-1), np.zeros(xn.shape[0] * xn.shape[1], bool)])
    fit = LogisticRegression(C=REGULARISATION, max_iter=5000).fit(x, y)

    def probability(c: np.ndarray) -> np.ndarray:
        f = features(c)
        return fit.predict_proba(f.reshape(-1, f.shape[-1]))[:, 1].reshape(c.shape[:2])

    return probability, clip_budget_threshold(probability(negative).max(axis=1), PRESENCE_BUDGET)


def presence_part(data: Path, diag: Path, model_name: str) -> dict[str, Any]:
    """The clip-level figures of ``--presence`` (module docstring)."""
    model = load_model(model_name).float().eval()
    stored = presence_calibration(model)
    if stored is None:
        raise SystemExit(f"{model_name} stores no usable calibrated presence")
    classes, roots = read_classes(data), {"data": data, "diag": diag}
    found: dict[str, tuple[np.ndarray, np.ndarray, Any]] = {}
    for root, *splits in CONDITIONS.values():
        for split in splits:
            dataset = load_eval_split(roots[root], split, model, classes=classes)
            preds, cues = predict_with_cues(model, dataset)
            found[split] = (cues, preds.maps, dataset)

    def scored(probability, tau: float) -> dict[str, Any]:
        rows = {}
        for name, (_, wild, negative) in CONDITIONS.items():
            (cw, maps, dataset), cn = found[wild], found[negative][0]
            pw, pn = probability(cw), probability(cn)
            own = clip_budget_threshold(pn.max(axis=1), DIAGNOSTIC_BUDGET)
            at = presence_metrics(pw, maps, dataset, model.classes, tau)
            rows[name] = {
                "marked": at["presence_marked"], "hit": at["presence_hit"],
                "negative_marked": float((pn.max(axis=1) >= tau).mean()),
                "clip_auroc": roc_auc(pw.max(axis=1), pn.max(axis=1)),
                "hit_at_own_budget": presence_metrics(pw, maps, dataset, model.classes,
                                                      own)["presence_hit"],
            }  # fmt: skip
        return {"tau": tau, "conditions": rows}

    val = (found["val/wild"][0], sounding_targets(found["val/wild"][2], model.classes))
    rules = {"stored presence": scored(lambda c: presence_probability(c, stored), stored["tau"])}
    for name, features in VARIANTS.items():
        rules[name] = scored(*fit_variant(features, val, found["val/negative"][0]))
    sources = {}
    _, wild_maps, wild_dataset = found["test/wild"]
    wild_p = presence_probability(found["test/wild"][0], stored)
    negative_max = presence_probability(found["test/negative"][0], stored).max(axis=1)
    for name, (_, _, negative) in CONDITIONS.items():
        clip_max = presence_probability(found[negative][0], stored).max(axis=1)
        for budget in (0.05, DIAGNOSTIC_BUDGET):
            tau = clip_budget_threshold(clip_max, budget)
            at = presence_metrics(wild_p, wild_maps, wild_dataset, model.classes, tau)
            sources[f"{name} no-sound clips, {budget:.0%}"] = {
                "tau": tau, "test/wild marked": at["presence_marked"],
                "test/wild hit": at["presence_hit"],
                "test/negative marked": float((negative_max >= tau).mean())}  # fmt: skip
    return {"clips": {s: len(v[2]) for s, v in found.items()}, "rules": rules,
            "threshold_sources": sources}  # fmt: skip


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


def _print_presence(part: dict[str, Any]) -> None:
    print("Clip by clip (centre window): % of wild clips marked / hit at the rule's validation "
          "threshold, % of no-sound clips marked, clip ROC AUC, % hit at the condition's own "
          "10 % budget")  # fmt: skip
    names = list(CONDITIONS)
    print("| rule | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for rule, r in part["rules"].items():
        cells = [f"{100 * c['marked']:.1f} / {100 * c['hit']:.1f}, "
                 f"{100 * c['negative_marked']:.1f}, {100 * c['clip_auroc']:.1f}, "
                 f"{100 * c['hit_at_own_budget']:.1f}"
                 for c in (r["conditions"][n] for n in names)]  # fmt: skip
        print(f"| {rule} (τ {r['tau']:.3f}) | " + " | ".join(cells) + " |")
    print("The stored presence at thresholds read off other no-sound clips (diagnostic):")
    print("| threshold from | τ | test/wild marked / hit | test/negative marked |")
    print("|---|---|---|---|")
    for source, r in part["threshold_sources"].items():
        print(f"| {source} | {r['tau']:.3f} | {100 * r['test/wild marked']:.1f} / "
              f"{100 * r['test/wild hit']:.1f} | {100 * r['test/negative marked']:.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="benchmark directory")
    parser.add_argument("--diag", type=Path, required=True,
                        help="folder of the one-modality splits (built there when missing)")
    parser.add_argument("--model", default="ier-wild-small", help="bundled name or checkpoint")
    parser.add_argument("--clips", type=int, default=256,
                        help="clips of each one-modality split to build, and the first clips of "
                             "every split that the windows are counted on (--presence scores "
                             "whole splits; its JSON gives their sizes)")  # fmt: skip
    parser.add_argument("--presence", action="store_true",
                        help="also score the presence clip by clip (module docstring)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    out = run(args.data, args.diag, args.model, args.clips)
    if args.presence:
        out["presence"] = presence_part(args.data, args.diag, args.model)
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
    if args.presence:
        _print_presence(out["presence"])
    if args.json:
        out["provenance"] = {**provenance(), "command": " ".join(["python", *sys.argv])}
        args.json.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
