"""Decoding manifest samples into arrays, and the decoded-pixel cache.

Each sample is decoded once (frames resized, the audio window resampled to 16 kHz) into ``.npy``
caches keyed by the manifest's content and the decode settings; training then reads memory-mapped
arrays. ``ier.data.features`` builds its feature cache from the same decoded frames.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ier.audio import load_audio
from ier.data.manifest import Sample
from ier.errors import DatasetError, MediaError
from ier.files import atomic_path
from ier.video import load_frames, load_image

logger = logging.getLogger(__name__)

CACHE_VERSION = 1
TRAIN_RESIZE_RATIO = 256 / 224  # method.md §1.2: resize to 256, random-crop 224


@dataclass(frozen=True)
class DecodeSpec:
    """How a split is decoded into the cache.

    Attributes:
        image_size: Side of the cached frames in pixels.
        num_frames: Frames per clip (training: evenly spaced in the window; eval: 1, at ``time``).
        sample_rate: Audio rate in Hz.
        num_samples: Audio samples per clip (the model's window).
        frame_fractions: Where the frames sit in the audio window (0 = start, 1 = end), one per
            frame; None = ``num_frames`` evenly spaced (one frame: the sample's ``time``).
    """

    image_size: int
    num_frames: int
    sample_rate: int
    num_samples: int
    frame_fractions: tuple[float, ...] | None = None


def train_cache_size(input_size: int) -> int:
    """Side of cached training frames: the model's input side scaled by 256/224 (crop margin)."""
    return int(round(input_size * TRAIN_RESIZE_RATIO))


# --- decoding and the cache ----------------------------------------------------------------------


def _frame_times(sample: Sample, spec: DecodeSpec) -> list[float]:
    start, end = sample.window
    if sample.duration is not None:
        end = min(end, sample.duration)
    if spec.frame_fractions is not None:
        return [start + f * (end - start) for f in spec.frame_fractions[: spec.num_frames]]
    if spec.num_frames == 1:
        return [sample.time]
    step = (end - start) / spec.num_frames
    return [start + (j + 0.5) * step for j in range(spec.num_frames)]


def decode_sample(sample: Sample, spec: DecodeSpec) -> tuple[np.ndarray, np.ndarray]:
    """Decode one sample: frames uint8 (F, S, S, 3) and audio float32 (num_samples,).

    Raises:
        MediaError: the media is missing or unreadable (the message names the sample).
    """

    try:
        if sample.video_path is not None:
            frames = load_frames(
                sample.video_path, _frame_times(sample, spec), size=spec.image_size
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
    settings = {k: v for k, v in spec.__dict__.items() if v is not None}
    sha.update(json.dumps([CACHE_VERSION, settings, list(ids)]).encode())
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
