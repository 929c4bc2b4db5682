r"""How well does each of a model's decision cues tell "this class sounds on screen", on the
validation splits (training recordings and images) and on the held-out test splits?

    python benchmarks/decision_cues.py --data bench/default \
        --model runs/ier-cpu/model.safetensors --json docs/results/decision-cues.json

For every (clip, class) pair the target is "an object of the class is on screen and sounding"
(the clip's manifest record). Each cue of ``ier.models.common.DECISION_CUES`` (``localize``'s
``cues``) is scored by its ROC AUC over the pairs of the validation splits (``val/wild`` +
``val/negative``, where ``ier.presence`` fits the calibrated presence) and of their test
counterparts (``test/wild`` + ``test/negative``), and on ``test/duet`` and ``test/synthetic``.
With ``--fit`` the calibrated presence is fitted on the validation splits (as ``ier evaluate
--store-calibration`` does) and scored the same way, so the gap between validation and test shows
how far the calibration transfers to held-out material; and two decision rules are compared at
the same false-positive budget (``PRESENCE_BUDGET`` of the ``val/negative`` clips): a class is
drawn when its ``class_peak`` (the map rule of ``ier localize`` without a presence), or its
presence, reaches the threshold chosen on validation. Per test split: the fraction of clips with
something drawn (``marked``) and with a drawn class's map peak inside a sounding object of that
class (``hit``; ``ier.presence.presence_metrics``). A presence fitted without ``av_peak`` (the
cue added last) is scored beside it, so what that cue adds is measured on the same model. A
two-stage rule is scored too (``gate_then_best``, not what ``ier localize`` does): a clip-level
gate, a logistic regression on ``GATE_FEATURES`` fitted on the same validation clips (target:
some class sounds on screen) with its threshold at the same budget, and, in the clips it passes,
only the class with the highest presence drawn. As a diagnostic (a threshold read off a test
split, never stored), the presence is also scored at the threshold that marks as many
``test/negative`` clips as the gate does (``presence_at_gate_false_alarms``): the two rules
compared at equal false alarms.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from ier.bench.plan import provenance
from ier.data.datasets import AVDataset, load_eval_split, read_classes
from ier.inference import predict_with_cues
from ier.localization import load_model
from ier.metrics import roc_auc
from ier.models.common import DECISION_CUES
from ier.presence import (
    PRESENCE_BUDGET,
    REGULARISATION,
    budget_threshold,
    fit_presence,
    presence_metrics,
    presence_probability,
    sounding_targets,
)

GATE_FEATURES = ("max class_peak", "av_peak", "audible")


def gate_features(cues: np.ndarray) -> np.ndarray:
    """(N, C, len(DECISION_CUES)) -> (N, 3) clip-level features ``GATE_FEATURES``."""
    index = {name: i for i, name in enumerate(DECISION_CUES)}
    return np.stack([cues[..., index["class_peak"]].max(axis=1), cues[:, 0, index["av_peak"]],
                     cues[:, 0, index["audible"]]], axis=1)  # fmt: skip


def fit_gate(wild: tuple[np.ndarray, np.ndarray], negative: np.ndarray) -> tuple[Any, float]:
    """The clip-level gate fitted on validation clips and its threshold at ``PRESENCE_BUDGET``."""
    from sklearn.linear_model import LogisticRegression

    x = np.concatenate([gate_features(wild[0]), gate_features(negative)])
    y = np.r_[wild[1].any(axis=1), np.zeros(len(negative), bool)]
    gate = LogisticRegression(C=REGULARISATION, max_iter=5000).fit(x, y)
    tau = budget_threshold(gate.predict_proba(gate_features(negative))[:, 1], PRESENCE_BUDGET)
    return gate, tau


GROUPS = {
    "val/wild+negative": ("val/wild", "val/negative"),
    "test/wild+negative": ("test/wild", "test/negative"),
    "test/duet": ("test/duet",),
    "test/synthetic": ("test/synthetic",),
}


def _levels_dbfs(dataset: AVDataset) -> np.ndarray:
    """Each clip's RMS level in dBFS (N,), floored at -120 dBFS (digital silence)."""
    waves = np.asarray(dataset.waves, dtype=np.float64)
    return 20 * np.log10(np.maximum(np.sqrt((waves**2).mean(axis=1)), 1e-6))


def run(data: Path, model_name: str, fit: bool) -> dict[str, Any]:
    model = load_model(model_name).float().eval()
    classes = read_classes(data)
    found: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    maps: dict[str, np.ndarray] = {}
    levels: dict[str, Any] = {}
    datasets: dict[str, AVDataset] = {}
    for split in sorted({s for parts in GROUPS.values() for s in parts}):
        dataset = datasets[split] = load_eval_split(data, split, model, classes=classes)
        preds, cues = predict_with_cues(model, dataset)
        maps[split], level = preds.maps, _levels_dbfs(dataset)
        found[split] = (cues, sounding_targets(dataset, model.classes))
        audible = level[level > -119.0]  # digital silence is floored at -120 dBFS
        spread = np.percentile(audible, [5, 25, 50, 75, 95]) if len(audible) else []
        levels[split] = {"silent_clips": int((level <= -119.0).sum()), "clips": len(level),
                         "audible_dbfs_percentiles_5_25_50_75_95":
                             [round(float(v), 1) for v in spread]}  # fmt: skip
    out: dict[str, Any] = {"model": model_name, "cues": list(DECISION_CUES), "auroc": {},
                           "levels": levels}  # fmt: skip
    presence = older = None
    if fit:
        positives, negatives = found["val/wild"], found["val/negative"][0]
        presence = fit_presence(positives, negatives, splits=["val/wild", "val/negative"])
        without = [c for c in DECISION_CUES if c != "av_peak"]
        older = fit_presence(positives, negatives, splits=["val/wild", "val/negative"],
                             cues=without)  # fmt: skip
        out["presence"], out["presence_without_av_peak"] = presence, older
        peak = DECISION_CUES.index("class_peak")
        rules = {
            "class_peak": (lambda c: c[..., peak], budget_threshold(negatives[..., peak].max(1),
                                                              PRESENCE_BUDGET)),
            "presence": (lambda c: presence_probability(c, presence), presence["tau"]),
            "presence_without_av_peak": (lambda c: presence_probability(c, older), older["tau"]),
        }  # fmt: skip
        gate, gate_tau = fit_gate(found["val/wild"], negatives)
        out["gate"] = {"features": list(GATE_FEATURES), "weights": gate.coef_[0].tolist(),
                       "bias": float(gate.intercept_[0]), "tau": gate_tau}  # fmt: skip

        def gate_then_best(c: np.ndarray) -> np.ndarray:
            """1 for the best class of each clip the gate passes, else 0 (drawn at 0.5)."""
            passed = gate.predict_proba(gate_features(c))[:, 1] >= gate_tau
            best = presence_probability(c, presence).argmax(axis=1)
            drawn = np.zeros(c.shape[:2])
            drawn[np.arange(len(c)), best] = passed
            return drawn

        rules["gate_then_best"] = (gate_then_best, 0.5)
        out["rules_at_budget"] = {"budget": PRESENCE_BUDGET}
        for rule, (score, tau) in rules.items():
            row: dict[str, Any] = {"tau": tau}
            for split in ("test/wild", "test/duet", "test/synthetic", "test/negative"):
                row[split] = presence_metrics(score(found[split][0]), maps[split],
                                              datasets[split], model.classes, tau)  # fmt: skip
            out["rules_at_budget"][rule] = row
        alarms = out["rules_at_budget"]["gate_then_best"]["test/negative"]["presence_marked"]
        clip_max = presence_probability(found["test/negative"][0], presence).max(axis=1)
        tau = budget_threshold(clip_max, alarms) if 0 < alarms < 1 else presence["tau"]
        row = {"tau": tau, "diagnostic": "threshold read off test/negative"}
        for split in ("test/wild", "test/duet", "test/synthetic", "test/negative"):
            probability = presence_probability(found[split][0], presence)
            row[split] = presence_metrics(probability, maps[split], datasets[split],
                                          model.classes, tau)  # fmt: skip
        out["rules_at_budget"]["presence_at_gate_false_alarms"] = row
    for group, parts in GROUPS.items():
        cues = np.concatenate([found[p][0] for p in parts])
        targets = np.concatenate([found[p][1] for p in parts])
        row = {name: roc_auc(cues[..., i][targets], cues[..., i][~targets])
               for i, name in enumerate(DECISION_CUES)}  # fmt: skip
        any_sounding = targets.any(axis=1)  # clip level: does any class sound on screen?
        if any_sounding.any() and not any_sounding.all():
            top = cues.max(axis=1)  # each cue's highest value over the classes (C -> 1)
            row["clip"] = {name: roc_auc(top[any_sounding, i], top[~any_sounding, i])
                           for i, name in enumerate(DECISION_CUES)}  # fmt: skip
            audible = cues[:, 0, DECISION_CUES.index("audible")] > 0
            keep = any_sounding | audible  # against the negatives that are not digital silence
            row["clip_vs_audible_negatives"] = {
                name: roc_auc(top[any_sounding, i], top[~any_sounding & keep, i])
                for i, name in enumerate(DECISION_CUES)}  # fmt: skip
        if presence is not None:
            for name, fitted in (("presence", presence), ("presence_without_av_peak", older)):
                p = presence_probability(cues, fitted)
                row[name] = roc_auc(p[targets], p[~targets])
            # clip level: does any class sound on screen? (the overlay's gate)
            p = presence_probability(cues, presence).max(axis=1)
            q = presence_probability(cues, older).max(axis=1)
            if any_sounding.any() and not any_sounding.all():
                row["clip_presence"] = roc_auc(p[any_sounding], p[~any_sounding])
                row["clip_presence_without_av_peak"] = roc_auc(q[any_sounding], q[~any_sounding])
        out["auroc"][group] = row
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="benchmark directory")
    parser.add_argument("--model", default="ier-wild-small", help="bundled name or checkpoint")
    parser.add_argument("--fit", action="store_true", help="also fit and score the presence")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    started = time.time()
    out = run(args.data, args.model, args.fit)
    names = [*DECISION_CUES, *(["presence", "presence_without_av_peak"] if args.fit else [])]
    print(f"ROC AUC (%) of each cue for 'the class sounds on screen', model {args.model}")
    print("| pairs | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for group, row in out["auroc"].items():
        print(f"| {group} | " + " | ".join(f"{100 * row[n]:.1f}" for n in names) + " |")
    print("Clip level (any class sounds on screen; each cue's highest value over the classes), "
          "ROC AUC (%) against all clips without / against the audible ones:")  # fmt: skip
    print("| clips | " + " | ".join(DECISION_CUES) + " |")
    print("|---|" + "---|" * len(DECISION_CUES))
    for group, row in out["auroc"].items():
        if "clip" in row:
            print(f"| {group} | " + " | ".join(
                f"{100 * row['clip'][n]:.1f} / {100 * row['clip_vs_audible_negatives'][n]:.1f}"
                for n in DECISION_CUES) + " |")  # fmt: skip
    if args.fit:
        print("clip level (any class sounds on screen), presence / without av_peak: " + ", ".join(
            f"{g} {100 * r['clip_presence']:.1f} / {100 * r['clip_presence_without_av_peak']:.1f}"
            for g, r in out["auroc"].items() if "clip_presence" in r))  # fmt: skip
    if args.fit:
        print(f"At the same budget ({100 * PRESENCE_BUDGET:g} % of val/negative clips marked), "
              "% of test clips marked / with a labelled hit:")  # fmt: skip
        print("| rule | wild | duet | synthetic | negative (marked) |")
        print("|---|---|---|---|---|")
        for rule in ("class_peak", "presence_without_av_peak", "presence", "gate_then_best",
                     "presence_at_gate_false_alarms"):
            r = out["rules_at_budget"][rule]
            cells = [f"{100 * r[s]['presence_marked']:.1f} / {100 * r[s]['presence_hit']:.1f}"
                     for s in ("test/wild", "test/duet", "test/synthetic")]  # fmt: skip
            print(f"| {rule} | " + " | ".join(cells)
                  + f" | {100 * r['test/negative']['presence_marked']:.1f} |")
    out["seconds"] = round(time.time() - started, 1)
    if args.json:
        out["provenance"] = {**provenance(), "command": " ".join(["python", *sys.argv])}
        args.json.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
