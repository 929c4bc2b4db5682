"""``ier features extract``: every cache a model's training and evaluation read, built ahead of
time for all the splits of a data folder.

Two caches take the fixed, frozen part of a model out of the training loop:

- the frozen visual trunk's features of every split (``ier.data.features``);
- with a frozen, memoising audio encoder (``model.audio_backbone = "aisfx"``), its encodings of
  every split's audio windows (``ier.data.audio_memo``).

``ier train``, ``ier evaluate`` and ``ier bench`` build whatever is missing themselves; running
this first (resumable, sharded under torchrun) pays the cost once, with a progress bar.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from ier.allocator import keep_freed_memory
from ier.data.audio_memo import attach_encodings, memo_encoders
from ier.data.features import FeatureSpec, load_features
from ier.data.layout import is_training_split, list_splits, split_manifest
from ier.data.manifest import read_manifest
from ier.devices import resolve_device
from ier.distributed import barrier, init_distributed
from ier.errors import ConfigError, DatasetError
from ier.models import create_model
from ier.models.common import visual_backbone
from ier.models.config import ModelConfig


@dataclass(frozen=True)
class SplitFeatures:
    """One split's caches after ``extract_features``.

    Attributes:
        split: The split folder.
        clips: Clips in the split.
        views: Views cached per clip.
        shape: Shape of the features array.
        bytes: Size of the cached features and waves.
        audio_encodings: The file of the frozen audio encoder's encodings, or None (the model's
            audio tower trains, extraction ran off the CPU, or another rank wrote it).
    """

    split: str
    clips: int
    views: int
    shape: tuple[int, ...]
    bytes: int
    audio_encodings: Path | None = None


def extract_features(
    data_dir: str | os.PathLike[str],
    model_config: ModelConfig,
    *,
    splits: Sequence[str] | None = None,
    views: int = 4,
    cache_dir: str | os.PathLike[str] | None = None,
    device: str | torch.device = "cpu",
    workers: int = 2,
    progress: bool = True,
    seed: int = 0,
) -> list[SplitFeatures]:
    """Build (or finish) the caches of every split a model with ``model_config`` reads.

    ``ier features extract`` calls this. Training splits (``ier.data.layout.is_training_split``:
    ``train/*``, ``solo_train_1``, ...) get ``views`` views per clip; every other split one
    evaluation view. Under torchrun every process extracts its share of the features. When the
    model's audio encoder is frozen and memoises (aisfx) and extraction runs on the CPU, where
    training reads the encodings, rank 0 also encodes every split's audio once.

    Args:
        data_dir: Benchmark or prepared dataset folder.
        model_config: A config with ``visual_trunk = "frozen"`` (its backbone, weights and input
            size decide the features).
        splits: Split folders; default every split with a manifest.
        views: Views per training clip (``DataConfig.feature_views``).
        cache_dir: Cache folder; default ``<data_dir>/.ier-cache`` (what ``ier train`` reads).
        device: Where the trunk runs.
        workers: Decoding threads.
        progress: Show a progress bar.
        seed: The training seed (``ExperimentConfig.seed``): a trunk without pretrained weights is
            initialised as ``ier train`` initialises it, so the cache is the one training reads.

    Raises:
        ConfigError: the config's visual trunk is not frozen.
        DatasetError: no such split, or an empty one.
    """
    if not model_config.frozen_trunk:
        raise ConfigError(
            "features are cached only for a frozen visual trunk: use a preset that freezes it "
            "(--preset cpu) or --set model.visual_trunk=frozen"
        )
    data_dir = Path(data_dir)
    chosen = list(splits) if splits else list_splits(data_dir, "")
    if not chosen:
        raise DatasetError(f"{data_dir}: no splits (<split>/manifest.jsonl) to extract")
    keep_freed_memory()
    # Under torchrun the processes must join their group first: ``extract`` waits at barriers
    # for rank 0's files, and a barrier outside a process group does not wait.
    world = init_distributed()
    device = resolve_device(device)
    if world.distributed and device.type == "cuda" and device.index is None:
        device = torch.device("cuda", world.local_rank)  # one GPU per process
    torch.manual_seed(seed)  # as ier.train.fit seeds before building the model
    trunk = visual_backbone(model_config).to(device).eval()
    encoders = []
    if device.type == "cpu" and world.is_main:
        torch.manual_seed(seed)  # the whole model as ier train builds it: the same audio weights
        encoders = memo_encoders(create_model(model_config))
    cache = Path(cache_dir) if cache_dir else data_dir / ".ier-cache"
    out = []
    for split in chosen:
        manifest = split_manifest(data_dir, split)
        samples = read_manifest(manifest)
        if not samples:
            raise DatasetError(f"split {split!r} is empty: {manifest}")
        spec = FeatureSpec.of(
            trunk, input_size=model_config.input_size, train=is_training_split(split),
            views=views, sample_rate=model_config.frontend.sample_rate,
            num_samples=model_config.frontend.n_samples,
        )  # fmt: skip
        features, waves = load_features(samples, manifest, spec, cache, trunk=trunk,
                                        workers=workers, progress=progress)  # fmt: skip
        encodings = attach_encodings(encoders, waves, cache, split)
        out.append(SplitFeatures(split, len(samples), int(features.shape[1]),
                                 tuple(features.shape), int(features.nbytes + waves.nbytes),
                                 encodings))  # fmt: skip
    barrier()  # the other ranks wait for rank 0's audio encodings
    return out
