r"""Diagnostics: what the Referrer's off-screen filter does to the teacher (method.md §1.6).

    python benchmarks/offscreen_filter.py --data bench/default --model ier-wild-small \
        --json offscreen-filter.json

The filter turns the audio's class distribution p^a into p^av_k = p^a_k w_k / Σ_j p^a_j w_j,
where w_k is the fraction of cells in class k's visual-prototype mask (``object_masks``: cells
above max(θ_rel · the map's peak, θ_abs)). It can only erase a heard class that has no mask at
all (w_k = 0); otherwise it reweights by area. For every (clip, category) pair of each split,
grouped by the truth (``on-screen``: a visible sounding object; ``off-screen``: heard, not
visible; ``silent``: visible, not heard; ``absent``), this reports the share of pairs with w = 0,
the mean w, and the probability mass that p^a and p^av put on each group (a category's mass
sums its clusters'; its w is the largest of its clusters'). The filter works when off-screen
categories lose their mass and on-screen ones keep it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

GROUPS = ("on-screen", "off-screen", "silent", "absent")


def group_of(sample, name: str) -> str:
    """The truth of one category in one clip (``GROUPS``)."""
    if name in sample.sounding_labels:
        return "on-screen"
    if name in sample.offscreen:
        return "off-screen"
    return "silent" if name in sample.visible_labels else "absent"


@torch.no_grad()
def referrer_outputs(model, dataset, batch_size: int) -> dict[str, np.ndarray]:
    """Per clip and category: w and the visual map's peak (largest over its clusters), p^a and
    p^av (summed)."""
    from ier.data.datasets import eval_batches

    assign = model._category_assignment(torch.float32)  # (K, C) one-hot
    out: dict[str, list] = {"w": [], "peak": [], "p_a": [], "p_av": []}
    for batch in eval_batches(dataset, batch_size):
        r = model(batch["image"], batch["wave"])
        out["w"].append((r["weights"][:, :, None] * assign[None]).amax(1))
        peaks = r["visual_maps"].flatten(2).amax(2)  # (B, K): L^v_k's peak
        out["peak"].append((peaks[:, :, None] * assign[None]).amax(1))
        out["p_a"].append(r["p_a"] @ assign)
        out["p_av"].append(r["p_av"] @ assign)
    return {k: torch.cat(v).numpy() for k, v in out.items()}


FLOORS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6)
"""θ_abs values at which to count the masks that would be empty: w_k = 0 exactly when L^v_k's
peak is at most θ_abs (with θ_rel < 1 the peak cell clears any smaller threshold)."""


def summarize(samples, classes, outputs: dict[str, np.ndarray]) -> dict:
    """Per group: pairs, share with w = 0, mean w, mean mass of p^a and p^av per clip, and the
    share of empty masks each θ_abs in ``FLOORS`` would give."""
    rows: dict[str, dict] = {g: {"pairs": 0, "w_zero": 0, "w_sum": 0.0, "peaks": []}
                             for g in GROUPS}  # fmt: skip
    mass = {g: {"p_a": np.zeros(len(samples)), "p_av": np.zeros(len(samples))} for g in GROUPS}
    for i, sample in enumerate(samples):
        for c, name in enumerate(classes):
            g = group_of(sample, name)
            w = float(outputs["w"][i, c])
            rows[g]["pairs"] += 1
            rows[g]["w_zero"] += w == 0.0
            rows[g]["w_sum"] += w
            rows[g]["peaks"].append(float(outputs["peak"][i, c]))
            for key in ("p_a", "p_av"):
                mass[g][key][i] += outputs[key][i, c]
    has = {g: np.array([any(group_of(s, n) == g for n in classes) for s in samples])
           for g in GROUPS}  # fmt: skip
    out = {}
    for g, r in rows.items():
        n, clips = r["pairs"], has[g]
        out[g] = {"pairs": n, "clips": int(clips.sum()),
                  "w_zero_share": r["w_zero"] / n if n else None,
                  "w_mean": r["w_sum"] / n if n else None,
                  "peak_mean": float(np.mean(r["peaks"])) if n else None,
                  "empty_at_theta_abs": {str(t): float(np.mean(np.array(r["peaks"]) <= t))
                                         for t in FLOORS} if n else None,
                  # mass per clip that has the group at all
                  **{f"{key}_mass": float(mass[g][key][clips].mean()) if clips.any() else None
                     for key in ("p_a", "p_av")}}  # fmt: skip
    return out


def main() -> None:
    from ier.bench.plan import provenance
    from ier.data.datasets import load_eval_split, read_classes
    from ier.localization import load_model

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="benchmark directory")
    parser.add_argument("--model", default="ier-wild-small", help="IEr checkpoint or bundled name")
    parser.add_argument("--splits", nargs="+", default=["val/wild", "test/wild", "test/synthetic"])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()

    model = load_model(args.model).eval()
    if not getattr(model, "has_prototypes", False) or not hasattr(model, "cmr"):
        parser.error(f"{args.model}: needs an IEr model with prototypes (stage 1 done)")
    classes = list(model.classes)
    if set(classes) - set(read_classes(args.data)):
        parser.error(f"{args.model}'s categories {classes} are not those of {args.data}")
    cfg = model.config.ier
    result: dict = {"model": str(args.model), "offscreen_filter": cfg.offscreen_filter,
                    "theta_rel": cfg.theta_rel, "theta_abs": cfg.theta_abs,
                    "splits": {}}  # fmt: skip
    for split in args.splits:
        dataset = load_eval_split(args.data, split, model, classes=classes)
        outputs = referrer_outputs(model, dataset, args.batch_size)
        result["splits"][split] = summarize(dataset.samples, classes, outputs)
        for g, r in result["splits"][split].items():
            if r["pairs"]:
                print(f"{split:16s} {g:10s} pairs={r['pairs']:5d} clips={r['clips']:4d} "
                      f"w=0: {r['w_zero_share']:.3f} mean w={r['w_mean']:.3f} "
                      f"p_a mass={r['p_a_mass']:.3f} p_av mass={r['p_av_mass']:.3f} "
                      f"peak={r['peak_mean']:.3f} empty at θ_abs " + " ".join(
                          f"{t}:{v:.2f}" for t, v in r["empty_at_theta_abs"].items()),
                      flush=True)  # fmt: skip
    if args.json:
        # the bench's record (commit, machine, date), with this script's own command line
        result["provenance"] = {**provenance(), "command": " ".join(["python", *sys.argv])}
        args.json.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
