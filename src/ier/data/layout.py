"""The layout of a data folder (the built-in benchmark or an ``ier prepare`` output): its category
vocabulary and its splits (``<split>/manifest.jsonl``).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from ier.data.manifest import read_manifest
from ier.errors import DatasetError


def read_classes(data_dir: str | os.PathLike[str]) -> tuple[str, ...]:
    """Category vocabulary: ``benchmark.json`` ``classes``, else every label in the manifests."""
    data_dir = Path(data_dir)
    info = data_dir / "benchmark.json"
    if info.is_file():
        classes = json.loads(info.read_text(encoding="utf-8")).get("classes")
        if classes:
            return tuple(classes)
    labels: set[str] = set()
    for manifest in sorted(data_dir.glob("**/manifest.jsonl")):
        for sample in read_manifest(manifest):
            labels.update(o.label for o in sample.objects)
            labels.update(sample.offscreen)
    if not labels:
        raise DatasetError(f"{data_dir}: no benchmark.json and no labelled manifests")
    return tuple(sorted(labels))


def list_splits(data_dir: str | os.PathLike[str], prefix: str = "test/") -> list[str]:
    """Splits (folders with a ``manifest.jsonl``) whose name starts with ``prefix``, sorted."""
    data_dir = Path(data_dir)
    found = [p.parent.relative_to(data_dir).as_posix() for p in data_dir.glob("**/manifest.jsonl")]
    return sorted(s for s in found if s.startswith(prefix))


def split_manifest(data_dir: str | os.PathLike[str], split: str) -> Path:
    """Path of ``DIR/<split>/manifest.jsonl``; DatasetError if missing."""
    path = Path(data_dir) / split / "manifest.jsonl"
    if not path.is_file():
        raise DatasetError(f"split {split!r} not found: {path} does not exist")
    return path


# --- the dataset ---------------------------------------------------------------------------------


def is_training_split(split: str) -> bool:
    """Whether a split folder holds training data: a ``train`` token in its name (``train/solo``
    of the built-in benchmark, ``solo_train_1`` or ``synthetic_train`` of ``ier prepare``)."""
    return "train" in re.split(r"[^a-z0-9]+", split.lower())
