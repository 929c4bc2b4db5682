"""Manifest → decoded, cached tensors (``ier.data.decode``) or cached features
(``ier.data.features``) → batches. (``read_classes``, ``list_splits`` and ``split_manifest`` of
``ier.data.layout`` are re-exported here.)

Batches are dicts of tensors (see ``AVDataset``). Randomness comes from per-sample seeds, never
from the global RNG.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset, DistributedSampler

from ier.data.audio_memo import attach_encodings, memo_encoders
from ier.data.decode import DecodeSpec, load_cached, train_cache_size
from ier.data.features import FeatureSpec, load_features, view_is_flipped
from ier.data.layout import list_splits, read_classes, split_manifest
from ier.data.manifest import Sample, read_manifest
from ier.errors import DatasetError

logger = logging.getLogger(__name__)

__all__ = [
    "AVDataset", "View", "collate", "eval_batches", "list_splits", "load_eval_split", "load_split",
    "num_train_batches", "read_classes", "split_manifest", "train_batches",
]  # fmt: skip

JITTER_RANGE = (0.7, 1.3)  # brightness and saturation factors, method.md §1.2
MAX_BOXES_DEFAULT = 8


def _labels(samples: Sequence[Sample], classes: Sequence[str], max_boxes: int) -> dict:
    index = {c: i for i, c in enumerate(classes)}
    n, c = len(samples), len(classes)
    label = torch.full((n,), -1, dtype=torch.long)
    audible = torch.zeros(n, c)
    boxes = torch.zeros(n, max_boxes, 4)
    box_labels = torch.full((n, max_boxes), -1, dtype=torch.long)
    box_sounding = torch.zeros(n, max_boxes, dtype=torch.bool)
    for i, s in enumerate(samples):
        sounding = s.sounding_labels
        if len(sounding) == 1 and sounding[0] in index:
            label[i] = index[sounding[0]]
        for name in (*sounding, *s.offscreen):
            if name in index:
                audible[i, index[name]] = 1.0
        for j, obj in enumerate(s.objects[:max_boxes]):
            boxes[i, j] = torch.tensor(obj.box)
            box_labels[i, j] = index.get(obj.label, -1)
            box_sounding[i, j] = obj.sounding
    return {
        "label": label,
        "audible": audible,
        "boxes": boxes,
        "box_labels": box_labels,
        "box_sounding": box_sounding,
    }


class AVDataset(Dataset):
    """Decoded frame (or cached feature) + audio pairs of one split.

    ``dataset[i]`` (and a collated batch, with a leading batch dimension B) is a dict:
        - ``image``: the visual input. Pixels: float (3, S, S) in [0, 1]; training: one random
          frame of the window, random crop, flip and brightness/saturation jitter (method.md
          §1.2); else the frame at ``time`` resized to S. Cached features (``features=True``,
          ``ier.data.features``): float16 (C, S/16, S/16); training: one random cached view (frame,
          flip, jitter) and a random S/16 x S/16 crop of its cells; else view 0, centred.
        - ``wave``: float (n,) mono audio window at the model's sample rate.
        - ``index``: long (), position in the split.
        - ``label``: long (), class index of the single sounding object, -1 otherwise.
        - ``audible``: float (C,), multi-hot of the classes heard (sounding + off-screen).
        - ``boxes``: float (M, 4) normalised xyxy in the coordinates of ``image`` (moved with its
          crop and flip), zero padded; ``box_labels`` long (M,) with -1 padding;
          ``box_sounding`` bool (M,).

    Augmentation draws from a generator seeded by ``(seed, epoch, index)``, so a sample looks the
    same whichever process or batch draws it; call ``set_epoch`` to change the draw.

    Args:
        frames: Pixels uint8 (N, F, side, side, 3), or with ``features`` the cached features
            float16 (N, V, C, H, W) (V views; H >= S/16).
        features: ``frames`` holds cached features.
    """

    def __init__(
        self,
        samples: Sequence[Sample],
        classes: Sequence[str],
        frames: np.ndarray,
        waves: np.ndarray,
        *,
        image_size: int,
        train: bool,
        augment: bool = True,
        seed: int = 0,
        max_boxes: int = MAX_BOXES_DEFAULT,
        features: bool = False,
    ) -> None:
        if len(samples) != len(frames) or len(samples) != len(waves):
            raise DatasetError("samples, frames and waves differ in length")
        self.samples = list(samples)
        self.classes = tuple(classes)
        self.frames, self.waves = frames, waves
        self.image_size = image_size
        self.features = features
        self.train, self.augment, self.seed = train, augment, seed
        self.epoch = 0
        self.annotations = _labels(self.samples, self.classes, max_boxes)

    def __len__(self) -> int:
        return len(self.samples)

    def set_epoch(self, epoch: int) -> None:
        """Select the augmentation draw of ``epoch``."""
        self.epoch = epoch

    def wave(self, index: int) -> torch.Tensor:
        """The raw audio window of sample ``index``: float32 (n,)."""
        return torch.from_numpy(np.asarray(self.waves[index], dtype=np.float32))

    def _pixels(self, index: int, *, augment: bool) -> tuple[torch.Tensor, View]:
        stack = self.frames[index]
        s = self.image_size
        if not augment:
            frame = torch.from_numpy(np.array(stack[len(stack) // 2])).permute(2, 0, 1).float()
            frame = frame[None] / 255.0
            if frame.shape[-1] != s:
                frame = F.interpolate(
                    frame, size=(s, s), mode="bilinear", align_corners=False, antialias=True
                )
            return frame[0].clamp(0.0, 1.0), View()
        rng = np.random.default_rng([self.seed, self.epoch, index])
        frame = np.array(stack[rng.integers(len(stack))])
        side = frame.shape[0]
        y, x = rng.integers(side - s + 1, size=2) if side > s else (0, 0)
        image = torch.from_numpy(frame[y : y + s, x : x + s]).permute(2, 0, 1).float() / 255.0
        if image.shape[-1] != s:
            image = F.interpolate(image[None], size=(s, s), mode="bilinear", antialias=True)[0]
        flip = bool(rng.random() < 0.5)
        if flip:
            image = image.flip(-1)
        brightness, saturation = rng.uniform(*JITTER_RANGE, size=2)
        gray = (image * torch.tensor([0.299, 0.587, 0.114])[:, None, None]).sum(0, keepdim=True)
        image = (gray + float(saturation) * (image - gray)) * float(brightness)
        crop = View(x / side, y / side, min(s, side) / side, flip_after=flip)
        return image.clamp(0.0, 1.0), crop

    def _cells(self, index: int, *, augment: bool) -> tuple[torch.Tensor, View]:
        views = self.frames[index]  # (V, C, H, W)
        n_views, _, side, _ = views.shape
        cells = max(1, self.image_size // 16)
        if augment:
            rng = np.random.default_rng([self.seed, self.epoch, index])
            v = int(rng.integers(n_views))
            y, x = rng.integers(side - cells + 1, size=2) if side > cells else (0, 0)
        else:
            v, y, x = 0, (side - cells) // 2, (side - cells) // 2
        crop = np.array(views[v, :, y : y + cells, x : x + cells])
        view = View(x / side, y / side, min(cells, side) / side,
                    flip_before=view_is_flipped(v))  # fmt: skip
        return torch.from_numpy(crop), view

    def item(self, index: int, *, augment: bool | None = None) -> dict[str, torch.Tensor]:
        """Sample ``index`` as a dict; ``augment`` overrides the dataset's training mode."""
        augment = (self.train and self.augment) if augment is None else augment
        visual = self._cells if self.features else self._pixels
        image, view = visual(index, augment=augment)
        out = {"image": image, "wave": self.wave(index), "index": torch.tensor(index)}
        out.update({k: v[index] for k, v in self.annotations.items()})
        out["boxes"] = view.map_boxes(out["boxes"])
        return out

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return self.item(int(index))


@dataclass(frozen=True)
class View:
    """Where a training input came from in its frame, to move the boxes with it.

    The input is the square ``[x0, x0 + scale] x [y0, y0 + scale]`` (normalised) of the frame,
    mirrored horizontally before that crop (``flip_before``: a cached view of the flipped frame)
    and/or after it (``flip_after``).
    """

    x0: float = 0.0
    y0: float = 0.0
    scale: float = 1.0
    flip_before: bool = False
    flip_after: bool = False

    def map_boxes(self, boxes: torch.Tensor) -> torch.Tensor:
        """(M, 4) normalised xyxy frame boxes -> the same boxes in input coordinates, clipped to
        [0, 1] (a box cropped away becomes empty); all-zero padding rows stay zero."""
        if self == View():
            return boxes
        pad = (boxes == 0).all(dim=-1, keepdim=True)
        out = boxes.clone()
        if self.flip_before:
            out = torch.stack([1 - out[:, 2], out[:, 1], 1 - out[:, 0], out[:, 3]], dim=1)
        out = torch.stack([(out[:, 0] - self.x0) / self.scale, (out[:, 1] - self.y0) / self.scale,
                           (out[:, 2] - self.x0) / self.scale, (out[:, 3] - self.y0) / self.scale],
                          dim=1).clamp(0.0, 1.0)  # fmt: skip
        if self.flip_after:
            out = torch.stack([1 - out[:, 2], out[:, 1], 1 - out[:, 0], out[:, 3]], dim=1)
        return torch.where(pad, boxes, out)


def collate(items: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Stack sample dicts into a batch dict (every field has a fixed shape)."""
    return {key: torch.stack([item[key] for item in items]) for key in items[0]}


def train_batches(
    dataset: AVDataset,
    *,
    batch_size: int,
    epoch: int,
    seed: int,
    rank: int = 0,
    world_size: int = 1,
) -> Iterator[dict[str, torch.Tensor]]:
    """Shuffled training batches of this process's shard (``DistributedSampler`` order).

    The permutation depends only on ``(seed, epoch)``; each process takes every ``world_size``-th
    index. A final batch smaller than 2 is dropped (batch norm needs 2 samples).
    """
    sampler = DistributedSampler(
        dataset, num_replicas=world_size, rank=rank, shuffle=True, seed=seed, drop_last=False
    )
    sampler.set_epoch(epoch)
    dataset.set_epoch(epoch)
    indices = list(sampler)
    for start in range(0, len(indices), batch_size):
        chunk = indices[start : start + batch_size]
        if len(chunk) >= 2:
            yield collate([dataset[i] for i in chunk])


def num_train_batches(dataset: AVDataset, batch_size: int, world_size: int = 1) -> int:
    """How many batches ``train_batches`` yields per epoch on one process."""
    per_rank = -(-len(dataset) // world_size)
    full, rest = divmod(per_rank, batch_size)
    return full + (1 if rest >= 2 else 0)


def eval_batches(dataset: AVDataset, batch_size: int) -> Iterator[dict[str, torch.Tensor]]:
    """Un-augmented batches over the whole split, in order (for no-grad passes)."""
    for start in range(0, len(dataset), batch_size):
        stop = min(start + batch_size, len(dataset))
        yield collate([dataset.item(i, augment=False) for i in range(start, stop)])


def load_split(
    data_dir: str | os.PathLike[str],
    split: str,
    *,
    classes: Sequence[str],
    input_size: int,
    sample_rate: int,
    num_samples: int,
    train: bool,
    num_frames: int = 1,
    augment: bool = True,
    cache_dir: str | os.PathLike[str] | None = None,
    max_samples: int = 0,
    seed: int = 0,
    workers: int = 1,
    build: bool = True,
    trunk: torch.nn.Module | None = None,
    views: int = 1,
    progress: bool = False,
    audio_encoders: Sequence[torch.nn.Module] = (),
) -> AVDataset:
    """Read a split's manifest, decode it (or reuse its cache) and wrap it in an ``AVDataset``.

    With ``trunk`` (a frozen visual backbone, ``ModelConfig.visual_trunk = "frozen"``) the
    dataset holds its cached features instead of pixels (``ier.data.features.load_features``; every
    process of a torchrun group must call it, each extracts its share of a missing cache).

    Args:
        data_dir: Benchmark/prepared dataset folder.
        split: Split folder, e.g. ``train/solo``.
        classes: Category vocabulary (label indices).
        input_size: Model input side S; training frames are cached at S·256/224 for cropping.
        sample_rate: Audio rate in Hz; num_samples: samples per clip.
        train: Training split (several frames per clip, augmentation) or evaluation split.
        num_frames: Frames per clip cached for training (evaluation uses 1, at ``time``).
        augment: Augment training images.
        cache_dir: Cache folder; default ``<data_dir>/.ier-cache``.
        max_samples: Keep a seeded random subset of this many clips (0 = all).
        seed: Seed of the subset and of the augmentation.
        workers: Decoding threads.
        build: Build a missing cache (False: raise DatasetError instead).
        trunk: Frozen visual backbone whose cached features replace the pixels.
        views: Cached views per training clip (``trunk`` only; evaluation uses 1).
        progress: Show a progress bar while features are extracted.
        audio_encoders: Frozen memoising audio encoders (``ier.data.audio_memo.memo_encoders``)
            to fill with the split's encodings, read from the cache or encoded once into it.
    """
    data_dir = Path(data_dir)
    manifest = split_manifest(data_dir, split)
    samples = read_manifest(manifest)
    if not samples:
        raise DatasetError(f"split {split!r} is empty: {manifest}")
    if 0 < max_samples < len(samples):
        keep = np.sort(np.random.default_rng(seed).choice(len(samples), max_samples, replace=False))
        samples = [samples[i] for i in keep]
    cache = Path(cache_dir) if cache_dir else data_dir / ".ier-cache"
    if trunk is not None:
        spec = FeatureSpec.of(trunk, input_size=input_size, train=train, views=views,
                              sample_rate=sample_rate, num_samples=num_samples)  # fmt: skip
        frames, waves = load_features(samples, manifest, spec, cache, trunk=trunk,
                                      workers=workers, build=build, progress=progress)  # fmt: skip
    else:
        spec = DecodeSpec(
            image_size=train_cache_size(input_size) if train else input_size,
            num_frames=num_frames if train else 1,
            sample_rate=sample_rate,
            num_samples=num_samples,
        )
        frames, waves = load_cached(samples, manifest, spec, cache, workers=workers, build=build)
    attach_encodings(audio_encoders, waves, cache, split)
    return AVDataset(
        samples, classes, frames, waves, image_size=input_size, train=train, augment=augment,
        seed=seed, features=trunk is not None,
    )  # fmt: skip


def load_eval_split(
    data_dir: str | os.PathLike[str],
    split: str,
    model: torch.nn.Module,
    *,
    classes: Sequence[str],
    cache_dir: str | os.PathLike[str] | None = None,
    progress: bool = False,
    also_read_by: Sequence[torch.nn.Module] = (),
) -> AVDataset:
    """An evaluation split in the form ``model`` reads: its cached trunk features when its visual
    trunk is frozen (``ModelConfig.visual_trunk``), else decoded pixels at its input size. The
    frozen audio encoders of ``model`` and of ``also_read_by`` (other models that will read the
    same split's audio) get the split's persisted encodings (``ier.data.audio_memo``)."""
    cfg = model.config
    trunk = model.frozen_trunk() if hasattr(model, "frozen_trunk") else None
    readers = {id(m): m for m in (model, *also_read_by)}.values()
    encoders = [e for m in readers for e in memo_encoders(m)]
    return load_split(
        data_dir, split, classes=classes, input_size=cfg.input_size,
        sample_rate=cfg.frontend.sample_rate, num_samples=cfg.frontend.n_samples, train=False,
        cache_dir=cache_dir, trunk=trunk, progress=progress, audio_encoders=encoders,
    )  # fmt: skip
