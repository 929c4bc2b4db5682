r"""Is the overlay dark because its threshold is set in the wrong place, or because no threshold
would do? One ``ier localize`` pass per clip, then every threshold at once.

    python benchmarks/overlay_sweep.py --data bench/default --model ier-wild-small \
        --split val/wild:100 val/negative:100 test/wild:100 test/negative:100 test/duet:50 \
        --json docs/results/overlay-sweep-288.json

Runs ``ier.localization.localize`` (the path of ``ier localize`` and ``ier demo``) once on the first
N clips of each split and keeps, for every window and class, the evidence that the class sounds on
screen (``ier.localization.results.sounding_evidence``: the calibrated presence when the model has
one) and whether the class's map peak lies inside a sounding object of that class (a labelled
hit) or of any class. A class is drawn in a window exactly when its evidence reaches the
threshold (``engine.decide``), so the counts of ``benchmarks/overlay_counts.py`` follow for any
threshold without running the model again; the script checks this at the stored threshold.

For each split it prints, at the model's stored threshold and at the thresholds that would mark
10 % / 20 % of the windows of each negative split given: windows marked, labelled hits, any-label
hits, and clips hit in most windows; and with an oracle decision that draws exactly the classes
that sound on screen (the maps' share: no threshold can do better on labelled hits). A threshold
read off a **test** split is a diagnostic of how far calibration alone could go (an oracle),
never a setting: ``ier`` stores thresholds calibrated on validation splits only.
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
from ier.data.manifest import read_manifest
from ier.localization import load_model, localize
from ier.localization.results import sounding_evidence
from ier.presence import budget_threshold as presence_budget_threshold

_BUDGETS = (0.10, 0.20)


def _inside(point: tuple[float, float], box: tuple[float, ...]) -> bool:
    x, y = point
    return box[0] <= x <= box[2] and box[1] <= y <= box[3]


Row = tuple[float, bool, bool, bool]


def window_rows(result: Any, record: Any) -> list[list[Row]]:
    """Per window, per class: (evidence of sounding on screen, labelled hit, any-label hit,
    whether the class sounds on screen in this clip)."""
    sounding = [o for o in record.objects if o.sounding]
    rows = []
    for window in result.windows:
        row = []
        for name, item in zip(result.classes, window.classes):
            entry = {"presence": item.presence, "audio": item.audio, "score": item.score,
                     "peak_value": item.peak_value}  # fmt: skip
            row.append((sounding_evidence(entry),
                        any(_inside(item.peak, o.box) for o in sounding if o.label == name),
                        any(_inside(item.peak, o.box) for o in sounding),
                        any(o.label == name for o in sounding)))  # fmt: skip
        rows.append(row)
    return rows


def counts_at(clips: list[list[list[Row]]], tau: float | None) -> dict[str, int]:
    """``overlay_counts``' window counts at threshold ``tau``, from stored rows; with ``tau``
    None, an oracle decision draws exactly the classes that sound on screen in the clip (what the
    maps alone would give with a perfect decision: the pointing game, window by window)."""
    out = {"clips": len(clips), "windows": 0, "marked": 0, "hit": 0, "any_hit": 0,
           "clips_marked": 0, "clips_most_hit": 0}  # fmt: skip
    for clip in clips:
        marked = hit = 0
        for row in clip:
            drawn = [r for r in row if (r[3] if tau is None else r[0] >= tau)]
            out["windows"] += 1
            marked += bool(drawn)
            hit += any(r[1] for r in drawn)
            out["any_hit"] += any(r[2] for r in drawn)
        out["marked"] += marked
        out["hit"] += hit
        out["clips_marked"] += marked > 0
        out["clips_most_hit"] += hit * 2 > len(clip)
    return out


def budget_threshold(clips: list[list[list[Row]]], budget: float) -> float:
    """The lowest threshold that marks at most ``budget`` of these windows
    (``ier.presence.budget_threshold`` over each window's highest evidence; 0 for a budget of 1)."""
    if budget >= 1.0:
        return 0.0
    window_max = np.array([max(r[0] for r in row) for clip in clips for row in clip])
    return presence_budget_threshold(window_max, budget)


def run(data: Path, model: str, splits: list[str]) -> dict[str, Any]:
    net = load_model(model)
    out: dict[str, Any] = {"model": model, "splits": {}, "thresholds": {}}
    rows: dict[str, list] = {}
    for spec in splits:
        split, _, n = spec.partition(":")
        records = read_manifest(data / split / "manifest.jsonl")[: int(n) if n else None]
        started = time.perf_counter()
        rows[spec] = []
        for record in records:
            result = localize(data / split / record.video, model=net)
            rows[spec].append(window_rows(result, record))
            out["stored_threshold"] = result.settings.rule.score_threshold
            out["threshold_source"] = result.threshold_source
            drawn = sum(any(c.state == "sounding-on-screen" for c in w.classes)
                        for w in result.windows)  # fmt: skip
            check = counts_at(rows[spec][-1:], out["stored_threshold"])["marked"]
            if drawn != check:
                raise AssertionError(f"{spec} {record.video}: {drawn} windows drawn, sweep {check}")
        out["splits"][spec] = {"seconds": round(time.perf_counter() - started, 1)}
    thresholds = {"stored": out["stored_threshold"]}
    for spec in splits:
        if "negative" in spec:
            for budget in _BUDGETS:
                thresholds[f"{spec} marks {budget:.0%}"] = budget_threshold(rows[spec], budget)
    out["thresholds"] = thresholds
    for spec in splits:
        out["splits"][spec]["at"] = {name: counts_at(rows[spec], tau)
                                     for name, tau in thresholds.items()}  # fmt: skip
        out["splits"][spec]["at"]["oracle decision"] = counts_at(rows[spec], None)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="benchmark directory")
    parser.add_argument("--model", default="ier-wild-small", help="bundled name or checkpoint")
    parser.add_argument("--split", nargs="+", metavar="SPLIT[:N]",
                        default=["val/wild:20", "val/negative:20", "test/wild:20",
                                 "test/negative:20"],
                        help="splits and how many clips of each")  # fmt: skip
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    out = run(args.data, args.model, args.split)
    print(f"model {out['model']}, stored threshold {out['stored_threshold']:.3f} "
          f"({out['threshold_source']})")
    print("| threshold | value | " + " | ".join(out["splits"]) + " |")
    print("|---|---|" + "---|" * len(out["splits"]))
    for name, tau in [*out["thresholds"].items(), ("oracle decision", None)]:
        cells = []
        for spec in out["splits"]:
            t = out["splits"][spec]["at"][name]
            cells.append(f"{t['marked']} / {t['hit']} / {t['any_hit']} of {t['windows']}"
                         f" ({t['clips_most_hit']} mostly hit)")  # fmt: skip
        print(f"| {name} | {'-' if tau is None else f'{tau:.3f}'} | " + " | ".join(cells) + " |")
    print("cells: windows marked / labelled hit / any-label hit of windows (clips hit in most "
          "windows)")
    if args.json:
        out["provenance"] = {**provenance(), "command": " ".join(["python", *sys.argv])}
        args.json.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
