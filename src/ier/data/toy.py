"""A toy audio-visual benchmark for tests and smoke runs: coloured squares that hum their tone.

Same layout as the built-in benchmark (``benchmark.json``, ``<split>/manifest.jsonl``) but with a
PNG frame and a WAV file per sample, so it builds in about a second and a tiny model can learn it.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import soundfile as sf
from PIL import Image

from ier.data.manifest import write_manifest
from ier.files import atomic_write_json

TOY_CLASSES = ("red", "green", "blue", "yellow")
_COLOURS = {
    "red": (220, 40, 40),
    "green": (40, 200, 60),
    "blue": (50, 70, 230),
    "yellow": (230, 220, 40),
}
_TONES_HZ = {"red": 300.0, "green": 700.0, "blue": 1500.0, "yellow": 3100.0}
SAMPLE_RATE = 16_000


def _scene(
    rng: np.random.Generator, labels: list[str], sounding: list[bool], offscreen: list[str],
    size: int,
) -> tuple[np.ndarray, np.ndarray, list[dict]]:  # fmt: skip
    image = rng.integers(90, 140, size=(size, size, 3)).astype(np.uint8)
    t = np.arange(SAMPLE_RATE) / SAMPLE_RATE
    wave = 0.02 * rng.standard_normal(SAMPLE_RATE)
    objects = []
    side = size // 3
    cells = rng.permutation(4)
    for label, is_sounding, cell in zip(labels, sounding, cells):
        y0 = (cell // 2) * (size // 2) + int(rng.integers(0, size // 2 - side + 1))
        x0 = (cell % 2) * (size // 2) + int(rng.integers(0, size // 2 - side + 1))
        image[y0 : y0 + side, x0 : x0 + side] = _COLOURS[label]
        box = [x0 / size, y0 / size, (x0 + side) / size, (y0 + side) / size]
        objects.append({"label": label, "box": box, "sounding": is_sounding})
        if is_sounding:
            wave += rng.uniform(0.2, 0.4) * np.sin(2 * np.pi * _TONES_HZ[label] * t)
    for label in offscreen:
        wave += rng.uniform(0.1, 0.2) * np.sin(2 * np.pi * _TONES_HZ[label] * t)
    return image, wave.astype(np.float32), objects


def _write_split(
    root: Path, split: str, kind: str, count: int, *, size: int, seed: int, n_objects: int,
    offscreen: bool, classes: tuple[str, ...],
) -> None:  # fmt: skip
    folder = root / split
    (folder / "media").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([seed, sum(map(ord, split))])
    records = []
    for i in range(count):
        labels = [str(c) for c in rng.choice(classes, size=n_objects, replace=False)]
        sounding = [True] + [bool(rng.random() < 0.3) for _ in labels[1:]]
        if kind == "negative":
            sounding = [False] * len(labels)
        absent = [c for c in classes if c not in labels]
        heard = [str(rng.choice(absent))] if offscreen and absent else []
        image, wave, objects = _scene(rng, labels, sounding, heard, size)
        sample_id = f"{kind}-{i:04d}"
        Image.fromarray(image).save(folder / "media" / f"{sample_id}.png")
        sf.write(folder / "media" / f"{sample_id}.wav", wave, SAMPLE_RATE)
        records.append({
            "id": sample_id, "split": kind, "frame": f"media/{sample_id}.png",
            "audio": f"media/{sample_id}.wav", "time": 0.5, "window": [0.0, 1.0],
            "objects": objects, "offscreen": heard, "noise": None,
        })  # fmt: skip
    write_manifest(folder / "manifest.jsonl", records)


def build_toy_benchmark(
    out_dir: str | os.PathLike[str],
    *,
    n_train: int = 96,
    n_test: int = 24,
    size: int = 64,
    seed: int = 0,
    classes: tuple[str, ...] = TOY_CLASSES[:3],
) -> Path:
    """Write a toy benchmark: train/solo, train/unconstrained, test/solo, test/wild.

    Args:
        out_dir: Target folder (created).
        n_train: Clips per training split.
        n_test: Clips per test split.
        size: Frame side in pixels.
        seed: Base seed.
        classes: Subset of ``TOY_CLASSES``.

    Returns:
        ``out_dir`` as a Path.
    """
    root = Path(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    common = {"size": size, "seed": seed, "classes": tuple(classes)}
    _write_split(root, "train/solo", "solo", n_train, n_objects=1, offscreen=False, **common)
    _write_split(
        root, "train/unconstrained", "wild", n_train, n_objects=2, offscreen=True, **common
    )
    _write_split(root, "test/solo", "solo", n_test, n_objects=1, offscreen=False, **common)
    _write_split(root, "test/wild", "wild", n_test, n_objects=2, offscreen=True, **common)
    info = {"preset": "toy", "seed": seed, "size": size, "classes": list(classes)}
    atomic_write_json(root / "benchmark.json", info)
    return root
