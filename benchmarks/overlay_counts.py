r"""What a user of ``ier localize`` sees: does the overlay mark the sounding object, and only it?

    python benchmarks/overlay_counts.py --data bench/default --model ier-wild-small \
        --split test/wild:20 test/negative:20 test/duet:2 --json docs/results/overlay-counts.json

Runs ``ier.localization.localize`` (the path of ``ier localize`` and ``ier demo``, at the model's
stored threshold unless ``--threshold`` is given) on the first N clips of each split, and counts
its windows against the clip's manifest record:

- ``marked``: windows where some class is drawn (state ``sounding-on-screen``);
- ``hit``: windows where some drawn class's peak lies inside the box of a sounding, on-screen object
  of that class (a labelled hit);
- ``any_hit``: windows where some drawn class's peak lies inside any sounding object's box, whatever
  the label (the overlay lights the right object, the label may be wrong);
- ``clips_most_hit``: clips where most windows are hits (the issue's "marks the sounding object in
  most windows");
- ``clips_closest_sounding``: clips whose strongest candidate, drawn or not
  (``ier.localization.strongest_candidates``: what the report shows when nothing is drawn), is a
  class that sounds on screen: how often the model's best guess is right, at any threshold.

On negative clips (nothing on screen sounds) every marked window is a false alarm. Demo clips are
the benchmark's ``test/wild`` 0-2 and ``test/duet`` 0-1 (``ier.commands.demo.DEMO_CLIPS``).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from ier.data.manifest import read_manifest
from ier.localization import load_model, localize, strongest_candidates


def _inside(point: tuple[float, float], box: tuple[float, ...]) -> bool:
    x, y = point
    return box[0] <= x <= box[2] and box[1] <= y <= box[3]


def count_clip(result: Any, record: Any) -> dict[str, int]:
    """Window counts of one clip's localization against its manifest record."""
    sounding = [o for o in record.objects if o.sounding]
    counts = {"windows": 0, "marked": 0, "hit": 0, "any_hit": 0}
    for window in result.windows:
        drawn = [(name, item) for name, item in zip(result.classes, window.classes)
                 if item.state == "sounding-on-screen"]  # fmt: skip
        counts["windows"] += 1
        counts["marked"] += bool(drawn)
        counts["hit"] += any(_inside(item.peak, o.box) for name, item in drawn
                             for o in sounding if o.label == name)  # fmt: skip
        counts["any_hit"] += any(_inside(item.peak, o.box) for _, item in drawn
                                 for o in sounding)  # fmt: skip
    return counts


def closest_is_sounding(document: dict[str, Any], record: Any) -> bool:
    """Whether the strongest candidate of a ``localization.json`` document sounds on screen."""
    if not document["windows"]:
        return False
    return strongest_candidates(document, 1)[0]["name"] in record.sounding_labels


def run(data: Path, model: str, splits: list[str], threshold: float | None) -> dict[str, Any]:
    net = load_model(model)
    out: dict[str, Any] = {"model": model, "threshold": threshold, "splits": {}}
    for spec in splits:
        split, _, n = spec.partition(":")
        records = read_manifest(data / split / "manifest.jsonl")[: int(n) if n else None]
        totals = {"clips": 0, "windows": 0, "marked": 0, "hit": 0, "any_hit": 0,
                  "clips_most_hit": 0, "clips_marked": 0, "clips_closest_sounding": 0}  # fmt: skip
        started = time.perf_counter()
        for record in records:
            result = localize(data / split / record.video, model=net, threshold=threshold)
            counts = count_clip(result, record)
            for key in ("windows", "marked", "hit", "any_hit"):
                totals[key] += counts[key]
            totals["clips"] += 1
            totals["clips_most_hit"] += counts["hit"] * 2 > counts["windows"]
            totals["clips_marked"] += counts["marked"] > 0
            totals["clips_closest_sounding"] += closest_is_sounding(result.to_dict(), record)
        if records:  # every clip ran at the same threshold
            out["threshold_used"] = result.settings.rule.score_threshold
            out["threshold_source"] = result.threshold_source
        totals["seconds"] = round(time.perf_counter() - started, 1)
        out["splits"][spec] = totals
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="benchmark directory")
    parser.add_argument("--model", default="ier-wild-small", help="bundled name or checkpoint")
    parser.add_argument("--split", nargs="+", default=["test/wild:20", "test/negative:20"],
                        metavar="SPLIT[:N]", help="splits and how many clips of each")
    parser.add_argument("--threshold", type=float, help="default: the model's stored threshold")
    parser.add_argument("--json", type=Path, help="also write the counts here")
    args = parser.parse_args()
    out = run(args.data, args.model, args.split, args.threshold)
    print(f"model {out['model']}, threshold {out.get('threshold_used')} "
          f"({out.get('threshold_source')})")
    print("| split | clips | windows | marked | labelled hit | any-label hit | clips mostly hit | "
          "closest sounds |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for spec, t in out["splits"].items():
        cells = [spec] + [t[k] for k in ("clips", "windows", "marked", "hit", "any_hit",
                                         "clips_most_hit", "clips_closest_sounding")]  # fmt: skip
        print("| " + " | ".join(str(c) for c in cells) + " |")
    if args.json:
        args.json.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
