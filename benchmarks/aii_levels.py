r"""Diagnostic: does a model hear every source of a mixture, whatever its level?

    python benchmarks/aii_levels.py --data bench/default \
        --checkpoint runs/ier/stages/1-aii.safetensors runs/ier-no-aii/stages/1-aii.safetensors \
        --checkpoint runs/supervised/model.safetensors --out aii_levels.json

Mixtures are built from the held-out ``test/solo`` recordings (waveform sums, each source
loudness-normalised to the same RMS first): n sources of n different categories, one of them the
*target* at a relative level L dB against the others (all at 0 dB), for n in ``--sources`` and L
in ``--levels``. A source is *identified* when its category is among the model's top-n categories
of the mixture. Per (n, L) the table gives the target's identification rate; ``--mixtures`` per
cell, the same mixtures for every checkpoint (seeded).

The category scores are, for an IEr model, the Audio-Instance-Identifier's probabilities
``softmax_k(cos(F^a_k, P^a_k) / tau_a)`` summed per category
(``ier.inference.category_probabilities``; a no-AII model has F^a_k = f^a); for the supervised
ceiling, ``sigmoid`` of its audio head, trained with the true labels: the label-using oracle of
the same audio tower. Chance is n / C.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch


@torch.no_grad()
def category_scores(model: torch.nn.Module, waves: torch.Tensor, batch: int = 64) -> np.ndarray:
    """(N, C) per-category audio scores of ``waves`` (N, n) for an IEr/DSOL or supervised model."""
    from ier.inference import category_probabilities

    model.eval()
    out = []
    for start in range(0, len(waves), batch):
        chunk = waves[start : start + batch]
        if hasattr(model, "identity_scores"):
            fa, mid = model.encode_audio(chunk)
            scores = model.identity_scores(model.expand_audio(fa, mid))
            out.append(category_probabilities(model, scores))
        elif hasattr(model, "audio_head"):
            logits = model.audio_head(model.encoders.audio_features(chunk))
            out.append(torch.sigmoid(logits).numpy())
        else:
            raise SystemExit(f"a {model.config.name!r} model has no per-category audio scores")
    return np.concatenate(out)


def build_mixtures(waves: np.ndarray, labels: np.ndarray, *, sources: int, level_db: float,
                   count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """``count`` mixtures (count, n) and their (count, sources) labels, target first."""
    rng = np.random.default_rng([seed, sources, int(round(level_db * 10)) + 1000])
    by_class = {c: np.flatnonzero(labels == c) for c in np.unique(labels)}
    classes = np.array(sorted(by_class))
    mixes, members = [], []
    for _ in range(count):
        chosen = rng.choice(classes, size=sources, replace=False)
        parts = [waves[rng.choice(by_class[c])] for c in chosen]
        parts = [p / max(float(np.sqrt(np.mean(p**2))), 1e-6) * 0.05 for p in parts]
        gains = np.r_[10 ** (level_db / 20), np.ones(sources - 1)]
        mix = sum(g * p for g, p in zip(gains, parts))
        peak = float(np.abs(mix).max())
        mixes.append(mix / peak if peak > 1.0 else mix)
        members.append(chosen)
    return np.stack(mixes).astype(np.float32), np.stack(members)


def identification(scores: np.ndarray, members: np.ndarray, model_classes, data_classes) -> float:
    """Fraction of mixtures whose target (column 0 of ``members``) is in the top-n categories."""
    index = {name: i for i, name in enumerate(model_classes)}
    n = members.shape[1]
    hits = 0
    for row, chosen in zip(scores, members):
        target = index.get(data_classes[chosen[0]])
        top = np.argsort(-row)[:n]
        hits += target is not None and target in top
    return hits / len(members)


def main() -> None:
    from ier.checkpoint import load_model
    from ier.data.datasets import load_split, read_classes

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--checkpoint", type=Path, nargs="+", action="extend", required=True)
    parser.add_argument("--levels", type=float, nargs="+", default=[-10, -5, 0, 5, 10])
    parser.add_argument("--sources", type=int, nargs="+", default=[2, 3])
    parser.add_argument("--mixtures", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="also write the table as JSON")
    args = parser.parse_args()

    classes = read_classes(args.data)
    solo = load_split(args.data, "test/solo", classes=classes, input_size=64,
                      sample_rate=16_000, num_samples=16_000, train=False)  # fmt: skip
    labels = solo.annotations["label"].numpy()
    keep = labels >= 0
    waves, labels = np.asarray(solo.waves, np.float32)[keep], labels[keep]
    cells = {(n, level): build_mixtures(waves, labels, sources=n, level_db=level,
                                        count=args.mixtures, seed=args.seed)
             for n in args.sources for level in args.levels}  # fmt: skip
    table: dict[str, dict[str, float]] = {}
    for path in args.checkpoint:
        model = load_model(path)
        rates = {}
        for (n, level), (mixes, members) in cells.items():
            scores = category_scores(model, torch.from_numpy(mixes))
            rates[f"{n}@{level:+g}"] = identification(scores, members, model.classes, classes)
        table[str(path)] = rates
    header = "| checkpoint | " + " | ".join(f"n={n}, {lv:+g} dB" for n in args.sources
                                            for lv in args.levels) + " |"  # fmt: skip
    print(header)
    print("|---|" + "---:|" * (len(args.sources) * len(args.levels)))
    chance = " | ".join(f"{100 * n / len(classes):.1f}" for n in args.sources for _ in args.levels)
    print(f"| chance (n / C) | {chance} |")
    for name, rates in table.items():
        print(f"| {name} | " + " | ".join(f"{100 * v:.1f}" for v in rates.values()) + " |")
    if args.out:
        args.out.write_text(json.dumps({"levels": args.levels, "sources": args.sources,
                                        "mixtures": args.mixtures, "seed": args.seed,
                                        "identification": table}, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
