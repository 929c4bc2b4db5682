"""Manifest → decoded, cached tensors → batches.

Each sample is decoded once (frames resized, the audio window resampled to 16 kHz) into ``.npy``
caches keyed by the manifest's content and the decode settings; training then reads memory-mapped
arrays. Batches are dicts of tensors (see ``AVDataset``). Randomness comes from per-sample seeds,
never from the global RNG.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset, DistributedSampler

from ier.data.manifest import Sample, read_manifest
from ier.errors import DatasetError, MediaError
from ier.files import atomic_path

logger = logging.getLogger(__name__)

CACHE_VERSION = 1
TRAIN_RESIZE_RATIO = 256 / 224  # method.md §1.2: resize to 256, random-crop 224
JITTER_RANGE = (0.7, 1.3)  # brightness and saturation factors, method.md §1.2
MAX_BOXES_DEFAULT = 8


@dataclass(frozen=True)
class DecodeSpec:
    """How a split is decoded into the cache.

    Attributes:
        image_size: Side of the cached frames in pixels.
        num_frames: Frames per clip (training: evenly spaced in the window; eval: 1, at ``time``).
        sample_rate: Audio rate in Hz.
        num_samples: Audio samples per clip (the model's window).
    """

    image_size: int
    num_frames: int
    sample_rate: int
    num_samples: int


def train_cache_size(input_size: int) -> int:
    """Side of cached training frames: the model's input side scaled by 256/224 (crop margin)."""
    return int(round(input_size * TRAIN_RESIZE_RATIO))


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


# --- decoding and the cache ----------------------------------------------------------------------


def _frame_times(sample: Sample, num_frames: int) -> list[float]:
    if num_frames == 1:
        return [sample.time]
    start, end = sample.window
    if sample.duration is not None:
        end = min(end, sample.duration)
    step = (end - start) / num_frames
    return [start + (j + 0.5) * step for j in range(num_frames)]


def decode_sample(sample: Sample, spec: DecodeSpec) -> tuple[np.ndarray, np.ndarray]:
    """Decode one sample: frames uint8 (F, S, S, 3) and audio float32 (num_samples,).

    Raises:
        MediaError: the media is missing or unreadable (the message names the sample).
    """
    from ier.audio import load_audio
    from ier.video import load_frames, load_image

    try:
        if sample.video_path is not None:
            frames = load_frames(
                sample.video_path, _frame_times(sample, spec.num_frames), size=spec.image_size
            )
            audio_path = sample.video_path
        else:
            image = load_image(sample.frame_path, size=spec.image_size)
            frames = np.repeat(image[None], spec.num_frames, axis=0)
            audio_path = sample.audio_path
        start, end = sample.window
        duration = min(end - start, spec.num_samples / spec.sample_rate)
        wave = load_audio(
            audio_path,
            sample_rate=spec.sample_rate,
            start_seconds=start,
            duration_seconds=duration,
        )
    except MediaError as err:
        raise MediaError(f"sample {sample.id!r}: {err}") from err
    out = np.zeros(spec.num_samples, np.float32)
    out[: min(len(wave), spec.num_samples)] = wave[: spec.num_samples]
    return frames, out


def _cache_key(manifest: Path, ids: Sequence[str], spec: DecodeSpec) -> str:
    sha = hashlib.sha256(manifest.read_bytes())
    sha.update(json.dumps([CACHE_VERSION, spec.__dict__, list(ids)]).encode())
    return sha.hexdigest()[:16]


def _build_cache(samples: Sequence[Sample], spec: DecodeSpec, stem: Path, *, workers: int) -> None:
    """Decode every sample into ``stem.frames.npy`` / ``stem.waves.npy`` (atomic renames)."""
    shape = (len(samples), spec.num_frames, spec.image_size, spec.image_size, 3)
    started = time.monotonic()
    # Both files are renamed into place (waves, then frames) only once every clip is decoded.
    with (
        atomic_path(f"{stem}.frames.npy") as tmp_frames,
        atomic_path(f"{stem}.waves.npy") as tmp_waves,
    ):
        frames = np.lib.format.open_memmap(tmp_frames, mode="w+", dtype=np.uint8, shape=shape)
        waves = np.lib.format.open_memmap(
            tmp_waves, mode="w+", dtype=np.float16, shape=(len(samples), spec.num_samples)
        )
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            decoded = pool.map(lambda s: decode_sample(s, spec), samples)
            for i, (f, w) in enumerate(decoded):
                frames[i], waves[i] = f, w
                if (i + 1) % 200 == 0:
                    logger.info("decoded %d / %d clips", i + 1, len(samples))
        frames.flush()
        waves.flush()
        del frames, waves
    logger.info(
        "cached %d clips in %.1f s → %s", len(samples), time.monotonic() - started, stem.name
    )


def load_cached(
    samples: Sequence[Sample],
    manifest: Path,
    spec: DecodeSpec,
    cache_dir: Path,
    *,
    workers: int = 1,
    build: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Decoded frames (N, F, S, S, 3) uint8 and waves (N, n) float16, memory-mapped from the cache.

    The cache is rebuilt when the manifest, the sample list or the decode settings change (they
    are part of the file name). With ``build=False`` a missing cache is an error (DDP non-zero
    ranks wait for rank 0 to build it).
    """
    split = manifest.parent.name
    key = _cache_key(manifest, [s.id for s in samples], spec)
    stem = cache_dir / f"{manifest.parent.parent.name}_{split}-{spec.image_size}px-{key}"
    frames_path, waves_path = Path(f"{stem}.frames.npy"), Path(f"{stem}.waves.npy")
    if not (frames_path.is_file() and waves_path.is_file()):
        if not build:
            raise DatasetError(f"decoded cache missing: {frames_path}")
        logger.info("decoding %d clips of %s (once; cached in %s)", len(samples), split, cache_dir)
        _build_cache(samples, spec, stem, workers=workers)
    return np.load(frames_path, mmap_mode="r"), np.load(waves_path, mmap_mode="r")


# --- the dataset ---------------------------------------------------------------------------------


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
    """Decoded frame + audio pairs of one split.

    ``dataset[i]`` (and a collated batch, with a leading batch dimension B) is a dict:
        - ``image``: float (3, S, S) in [0, 1]. Training: one random frame of the window, random
          crop, flip and brightness/saturation jitter (method.md §1.2); else the frame at ``time``
          resized to S.
        - ``wave``: float (n,) mono audio window at the model's sample rate.
        - ``index``: long (), position in the split.
        - ``label``: long (), class index of the single sounding object, -1 otherwise.
        - ``audible``: float (C,), multi-hot of the classes heard (sounding + off-screen).
        - ``boxes``: float (M, 4) normalised xyxy, zero padded; ``box_labels`` long (M,) with -1
          padding; ``box_sounding`` bool (M,).

    Augmentation draws from a generator seeded by ``(seed, epoch, index)``, so a sample looks the
    same whichever process or batch draws it; call ``set_epoch`` to change the draw.
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
    ) -> None:
        if len(samples) != len(frames) or len(samples) != len(waves):
            raise DatasetError("samples, frames and waves differ in length")
        self.samples = list(samples)
        self.classes = tuple(classes)
        self.frames, self.waves = frames, waves
        self.image_size = image_size
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

    def _image(self, index: int, *, augment: bool) -> torch.Tensor:
        stack = self.frames[index]
        s = self.image_size
        if not augment:
            frame = torch.from_numpy(np.array(stack[len(stack) // 2])).permute(2, 0, 1).float()
            frame = frame[None] / 255.0
            if frame.shape[-1] != s:
                frame = F.interpolate(
                    frame, size=(s, s), mode="bilinear", align_corners=False, antialias=True
                )
            return frame[0].clamp(0.0, 1.0)
        rng = np.random.default_rng([self.seed, self.epoch, index])
        frame = np.array(stack[rng.integers(len(stack))])
        side = frame.shape[0]
        y, x = rng.integers(side - s + 1, size=2) if side > s else (0, 0)
        image = torch.from_numpy(frame[y : y + s, x : x + s]).permute(2, 0, 1).float() / 255.0
        if image.shape[-1] != s:
            image = F.interpolate(image[None], size=(s, s), mode="bilinear", antialias=True)[0]
        if rng.random() < 0.5:
            image = image.flip(-1)
        brightness, saturation = rng.uniform(*JITTER_RANGE, size=2)
        gray = (image * torch.tensor([0.299, 0.587, 0.114])[:, None, None]).sum(0, keepdim=True)
        image = (gray + float(saturation) * (image - gray)) * float(brightness)
        return image.clamp(0.0, 1.0)

    def item(self, index: int, *, augment: bool | None = None) -> dict[str, torch.Tensor]:
        """Sample ``index`` as a dict; ``augment`` overrides the dataset's training mode."""
        augment = (self.train and self.augment) if augment is None else augment
        out = {
            "image": self._image(index, augment=augment),
            "wave": self.wave(index),
            "index": torch.tensor(index),
        }
        out.update({k: v[index] for k, v in self.annotations.items()})
        return out

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return self.item(int(index))


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
) -> AVDataset:
    """Read a split's manifest, decode it (or reuse its cache) and wrap it in an ``AVDataset``.

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
    """
    data_dir = Path(data_dir)
    manifest = split_manifest(data_dir, split)
    samples = read_manifest(manifest)
    if not samples:
        raise DatasetError(f"split {split!r} is empty: {manifest}")
    if 0 < max_samples < len(samples):
        keep = np.sort(np.random.default_rng(seed).choice(len(samples), max_samples, replace=False))
        samples = [samples[i] for i in keep]
    spec = DecodeSpec(
        image_size=train_cache_size(input_size) if train else input_size,
        num_frames=num_frames if train else 1,
        sample_rate=sample_rate,
        num_samples=num_samples,
    )
    cache = Path(cache_dir) if cache_dir else data_dir / ".ier-cache"
    frames, waves = load_cached(samples, manifest, spec, cache, workers=workers, build=build)
    return AVDataset(
        samples, classes, frames, waves, image_size=input_size, train=train, augment=augment,
        seed=seed,
    )  # fmt: skip
