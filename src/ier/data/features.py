"""The frozen visual trunk's feature cache (``ModelConfig.visual_trunk = "frozen"``).

A frozen trunk computes the same thing every epoch, so each frame goes through it **once**: its
output is cached as float16 in memory-mapped ``.npy`` files, and training and evaluation read
features instead of pixels (``ier.data.datasets.load_split(..., trunk=...)``). The cache holds
the trunk's output (everything before the backbone's last block); what stays trainable starts
right after it: the last block when ``train_last_block``, and each method's projections and heads.

Views. An evaluation clip has one view: the frame at ``time``, resized to S (exactly what the pixel
path feeds the model). A training clip has ``views`` fixed, seeded views of its audio window:
view v shows frame v // 2, taken at ``FRAME_FRACTIONS[v // 2]`` of the window (the middle, then
a quarter, three quarters, ...), mirrored when v is odd, with brightness/saturation jitter
(method.md §1.2) on every view but view 0, each resized to S + 32 px. Views do not depend on how
many there are, so a cache of V views also serves any request for fewer (its first ones).
Training then takes a random S/16 x S/16 crop of the view's (S/16 + 2)^2 cells, the cached
counterpart of method.md's resize-256 / random-crop-224 (16-pixel steps instead of 1).

Files, in ``<cache_dir>/features/``: ``<name>.features.npy`` (N, V, C, H, W) float16 and
``<name>.waves.npy`` (N, n) float16 (the audio windows, decoded in the same pass). ``<name>`` holds
a hash of the manifest's bytes, the sample ids, the trunk's weights, the input size and the views,
so a changed manifest or trunk never reuses a stale cache. Extraction is resumable: rows are
written in chunks of ``CHUNK`` clips into ``.partial`` files, with one done-flag per chunk in
``<name>.done.npy``; a killed extraction continues where it stopped. Under torchrun every process
extracts every ``world_size``-th chunk on its own device, then rank 0 renames the files into place.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import time
import zlib
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ier.data.decode import DecodeSpec, decode_sample
from ier.data.manifest import Sample
from ier.distributed import barrier, world_info_from_env
from ier.errors import DatasetError
from ier.files import atomic_write_json
from ier.models.common import ImageNormalizer

logger = logging.getLogger(__name__)

FEATURE_DTYPE = torch.float16
FEATURE_CACHE_VERSION = 1
CHUNK = 32
"""Clips per resumable unit of extraction (one done-flag each)."""
CROP_MARGIN_CELLS = 2
"""Training views are (S/16 + 2) cells wide: room for a 3 x 3 grid of S/16 crops."""
JITTER_RANGE = (0.7, 1.3)  # brightness and saturation factors, method.md §1.2
EXTRACT_BATCH = 16  # frames per trunk forward (CPU: channels-last, batch 8-16 is fastest)
FRAME_FRACTIONS = (0.5, 0.25, 0.75, 0.125, 0.375, 0.625, 0.875)
"""Where in the audio window training view frames sit; view v uses frame v // 2."""


@dataclass(frozen=True)
class FeatureSpec:
    """What a cached split's features depend on.

    Attributes:
        backbone: Visual backbone name (``ModelConfig.visual_backbone``).
        weights: sha256 prefix of the trunk's weights (pretrained or not, any init).
        channels: Channels of the cached tensor.
        input_size: The model's input side S.
        views: Cached views per clip (1 for evaluation).
        train: Training views (S + 32 px, flips, jitter) or the evaluation frame (S px).
        sample_rate: Audio rate in Hz.
        num_samples: Audio samples per clip.
    """

    backbone: str
    weights: str
    channels: int
    input_size: int
    views: int
    train: bool
    sample_rate: int
    num_samples: int

    @classmethod
    def of(
        cls, trunk: nn.Module, *, input_size: int, train: bool, views: int, sample_rate: int,
        num_samples: int,
    ) -> FeatureSpec:  # fmt: skip
        """The spec of a frozen backbone (``SplitBackbone.freeze`` called) at these settings."""
        if not getattr(trunk, "trunk_frozen", False):
            raise ValueError("features are cached only for a frozen visual trunk")
        return cls(
            backbone=getattr(trunk, "variant", type(trunk).__name__),
            weights=weights_hash(trunk.frozen_modules()),
            channels=int(trunk.trunk_channels),
            input_size=int(input_size),
            views=int(views) if train else 1,
            train=bool(train),
            sample_rate=int(sample_rate),
            num_samples=int(num_samples),
        )

    def __post_init__(self) -> None:
        if not 1 <= self.views <= 2 * len(FRAME_FRACTIONS):
            raise ValueError(f"views must be in [1, {2 * len(FRAME_FRACTIONS)}], got {self.views}")
        if self.input_size < 16 or self.input_size % 16:
            raise ValueError(f"input_size must be a multiple of 16, got {self.input_size}")

    @property
    def cells(self) -> int:
        """Side of the cached maps in cells."""
        return self.input_size // 16 + (CROP_MARGIN_CELLS if self.train else 0)

    @property
    def image_size(self) -> int:
        """Side in pixels of the frames the trunk sees."""
        return self.cells * 16

    @property
    def num_frames(self) -> int:
        """Frames decoded per clip."""
        return math.ceil(self.views / 2) if self.train else 1

    def decode_spec(self) -> DecodeSpec:
        """How the frames the trunk sees are decoded."""
        fractions = FRAME_FRACTIONS[: self.num_frames] if self.train else None
        return DecodeSpec(self.image_size, self.num_frames, self.sample_rate, self.num_samples,
                          frame_fractions=fractions)  # fmt: skip

    def bytes_per_clip(self) -> int:
        """float16 bytes of one clip's features (all views)."""
        return self.views * self.channels * self.cells * self.cells * 2


def weights_hash(modules: Sequence[nn.Module]) -> str:
    """sha256 prefix of the parameters and buffers of ``modules`` (names, shapes and values)."""
    digest = hashlib.sha256()
    for i, module in enumerate(modules):
        for name, tensor in module.state_dict().items():
            digest.update(f"{i}.{name}{tuple(tensor.shape)}{tensor.dtype}".encode())
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def view_is_flipped(view: int) -> bool:
    """Cached view ``view`` of a training clip shows the mirrored frame (odd views)."""
    return view % 2 == 1


def view_images(frames: np.ndarray, views: int, *, key: int) -> np.ndarray:
    """The training views of one clip from its decoded frames.

    Args:
        frames: uint8 (F, side, side, 3), F = ceil(views / 2).
        views: V.
        key: Per-clip seed of the jitter (a hash of the sample id).

    Returns:
        float32 (V, 3, side, side) in [0, 1].
    """
    out = []
    for v in range(views):
        image = frames[min(v // 2, len(frames) - 1)].astype(np.float32) / 255.0
        if view_is_flipped(v):
            image = image[:, ::-1]
        if v > 0:
            brightness, saturation = np.random.default_rng([key, v]).uniform(*JITTER_RANGE, 2)
            gray = image @ np.array([0.299, 0.587, 0.114], np.float32)
            image = (gray[..., None] + saturation * (image - gray[..., None])) * brightness
        out.append(np.clip(image, 0.0, 1.0).astype(np.float32).transpose(2, 0, 1))
    return np.stack(out)


@torch.inference_mode()
def trunk_features(backbone: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """The visual trunk's output as it is cached: (B, 3, S, S) normalised images ->
    (B, trunk_channels, S/16, S/16) float16 (the backbone runs channels-last:
    ``ier.models.backbones.CONV_LAYOUT``)."""
    was_training = backbone.training
    backbone.eval()
    try:
        return backbone.trunk(images).to(FEATURE_DTYPE).contiguous()
    finally:
        backbone.train(was_training)


@torch.inference_mode()
def cached_features(trunk: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """What the cache stores for (B, 3, S, S) images in [0, 1]: float16 (B, C, S/16, S/16)."""
    device = next(trunk.parameters()).device
    return trunk_features(trunk, ImageNormalizer().to(device)(images.to(device)))


def cache_name(manifest: Path, ids: Sequence[str], spec: FeatureSpec) -> str:
    """The cache's file stem: ``<split>-<backbone>-<S>px-<train|eval><views>-<hash>``, the hash
    over the manifest's bytes, the ids and every setting but the number of views."""
    sha = hashlib.sha256(manifest.read_bytes())
    settings = {k: v for k, v in asdict(spec).items() if k != "views"}
    sha.update(json.dumps([FEATURE_CACHE_VERSION, settings, list(ids)]).encode())
    split = f"{manifest.parent.parent.name}_{manifest.parent.name}"
    kind = "train" if spec.train else "eval"
    return f"{split}-{spec.backbone}-{spec.input_size}px-{kind}{spec.views}-{sha.hexdigest()[:16]}"


def _find_cache(folder: Path, name: str, views: int) -> tuple[_Files, int] | None:
    """A complete cache of the same data and settings with at least ``views`` views (the fewest
    such), and its number of views; None if there is none."""
    head, _, digest = name.rpartition("-")
    stem, _, kind_views = head.rpartition("-")
    kind = kind_views.rstrip("0123456789")
    found = []
    for path in folder.glob(f"{stem}-{kind}*-{digest}.features.npy"):
        count = path.name[len(stem) + 1 + len(kind) :].split("-", 1)[0]
        if count.isdigit() and int(count) >= views:
            files = _Files.at(folder, path.name[: -len(".features.npy")])
            if files.complete:
                found.append((int(count), files))
    return (min(found)[1], min(found)[0]) if found else None


@dataclass(frozen=True)
class _Files:
    features: Path
    waves: Path
    done: Path
    info: Path

    @classmethod
    def at(cls, folder: Path, name: str) -> _Files:
        return cls(folder / f"{name}.features.npy", folder / f"{name}.waves.npy",
                   folder / f"{name}.done.npy", folder / f"{name}.json")  # fmt: skip

    def partial(self, path: Path) -> Path:
        return path.with_name(path.name + ".partial")

    @property
    def complete(self) -> bool:
        return self.features.is_file() and self.waves.is_file()


def load_features(
    samples: Sequence[Sample],
    manifest: Path,
    spec: FeatureSpec,
    cache_dir: Path,
    *,
    trunk: nn.Module,
    workers: int = 2,
    build: bool = True,
    progress: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Cached features (N, V, C, H, W) float16 and waves (N, n) float16, memory-mapped.

    Extracts whatever is missing first (resuming an interrupted extraction). Under torchrun this
    is collective: every process extracts its share of the chunks, then all wait for rank 0 to
    move the files into place.

    Raises:
        DatasetError: the cache is missing and ``build`` is False.
    """
    folder = Path(cache_dir) / "features"
    name = cache_name(manifest, [s.id for s in samples], spec)
    found = _find_cache(folder, name, spec.views)
    if found is None:
        files = _Files.at(folder, name)
        if not build:
            raise DatasetError(f"feature cache missing: {files.features}")
        with extraction_lock(folder, name):
            found = _find_cache(folder, name, spec.views)  # another job may have written it
            if found is None:
                extract(samples, spec, files, trunk=trunk, workers=workers, progress=progress)
                found = (files, spec.views)
    files, views = found
    features = np.load(files.features, mmap_mode="r")
    expected = (len(samples), views, spec.channels, spec.cells, spec.cells)
    if features.shape != expected:
        raise DatasetError(f"{files.features} holds {features.shape}, expected {expected}")
    return features[:, : spec.views], np.load(files.waves, mmap_mode="r")


@contextlib.contextmanager
def extraction_lock(folder: Path, name: str) -> Iterator[None]:
    """Hold ``<name>.lock`` while extracting, so two independent jobs that need the same cache
    extract it once (the second waits, then reads it). A torchrun group is one job: its
    processes share the work instead (``extract``), so they take no lock."""
    if world_info_from_env().distributed:
        yield
        return
    import fcntl

    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f"{name}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def extract(
    samples: Sequence[Sample], spec: FeatureSpec, files: _Files, *, trunk: nn.Module,
    workers: int = 2, progress: bool = False,
) -> None:  # fmt: skip
    """Write the cache of ``samples`` (resumable, sharded across torchrun processes)."""
    world = world_info_from_env()
    n = len(samples)
    n_chunks = math.ceil(n / CHUNK)
    shape = (n, spec.views, spec.channels, spec.cells, spec.cells)
    parts = (files.partial(files.features), files.partial(files.waves))
    if world.is_main:
        files.features.parent.mkdir(parents=True, exist_ok=True)
        fresh = not all(p.is_file() for p in (*parts, files.done))
        if fresh:
            np.lib.format.open_memmap(parts[0], mode="w+", dtype=np.float16, shape=shape).flush()
            np.lib.format.open_memmap(parts[1], mode="w+", dtype=np.float16,
                                      shape=(n, spec.num_samples)).flush()  # fmt: skip
            np.save(files.done, np.zeros(n_chunks, np.uint8))
            info = {"spec": asdict(spec), "clips": n, "started": time.time()}
            atomic_write_json(files.info, info)
    barrier()
    features = np.load(parts[0], mmap_mode="r+")
    waves = np.load(parts[1], mmap_mode="r+")
    done = np.load(files.done, mmap_mode="r+")
    if features.shape != shape or len(done) != n_chunks:
        raise DatasetError(f"{parts[0]}: an extraction with other settings; delete it to restart")
    mine = [c for c in range(n_chunks) if c % world.world_size == world.rank and not done[c]]
    pending = sum(min(CHUNK, n - c * CHUNK) for c in mine)
    if pending:
        logger.info("extracting %s features of %d clips (%s)", spec.backbone, pending,
                    files.features.name)  # fmt: skip
    _extract_chunks(samples, spec, mine, trunk, features, waves, done, workers=workers,
                    progress=progress and world.is_main, total=pending)  # fmt: skip
    del features, waves, done
    barrier()
    if world.is_main:
        done = np.load(files.done)
        if not done.all():
            raise DatasetError(f"{files.features}: {int((done == 0).sum())} chunks not extracted")
        os.replace(parts[1], files.waves)  # waves first: the features file marks completeness
        os.replace(parts[0], files.features)
        files.done.unlink()
        info = json.loads(files.info.read_text(encoding="utf-8"))
        atomic_write_json(files.info, {**info, "finished": time.time()})
    barrier()


def _decoded(
    samples: Sequence[Sample], spec: FeatureSpec, chunks: list[int], workers: int
) -> Iterator[tuple[int, list[tuple[np.ndarray, np.ndarray]]]]:
    """Decode chunk after chunk in background threads, one chunk ahead of the trunk."""
    decode = spec.decode_spec()

    def chunk(c: int) -> list[tuple[np.ndarray, np.ndarray]]:
        members = samples[c * CHUNK : (c + 1) * CHUNK]
        return [decode_sample(s, decode) for s in members]

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        futures = [pool.submit(chunk, c) for c in chunks[:2]]
        for i, c in enumerate(chunks):
            result = futures[i].result()
            if i + 2 < len(chunks):
                futures.append(pool.submit(chunk, chunks[i + 2]))
            yield c, result


def _extract_chunks(
    samples: Sequence[Sample], spec: FeatureSpec, chunks: list[int], trunk: nn.Module,
    features: np.ndarray, waves: np.ndarray, done: np.ndarray, *, workers: int, progress: bool,
    total: int,
) -> None:  # fmt: skip
    from tqdm import tqdm

    bar = tqdm(total=total, desc="ier features", unit="clip", disable=not progress)
    try:
        for c, decoded in _decoded(samples, spec, chunks, workers):
            start = c * CHUNK
            images = []
            for j, (frames, _) in enumerate(decoded):
                if spec.train:
                    key = zlib.crc32(samples[start + j].id.encode())
                    images.append(view_images(frames, spec.views, key=key))
                else:
                    images.append(frames[:1].astype(np.float32).transpose(0, 3, 1, 2) / 255.0)
            stacked = torch.from_numpy(np.concatenate(images))  # (clips * V, 3, S', S')
            out = [cached_features(trunk, stacked[i : i + EXTRACT_BATCH]).cpu()
                   for i in range(0, len(stacked), EXTRACT_BATCH)]  # fmt: skip
            block = torch.cat(out).view(len(decoded), spec.views, *out[0].shape[1:])
            features[start : start + len(decoded)] = block.numpy()
            waves[start : start + len(decoded)] = np.stack([w for _, w in decoded])
            features.flush()
            waves.flush()
            done[c] = 1
            done.flush()
            bar.update(len(decoded))
    finally:
        bar.close()
