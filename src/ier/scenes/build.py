"""Build the benchmark folder: every split's clips (in parallel, resumable) and manifests."""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ier.audio import SAMPLE_RATE
from ier.data.manifest import write_manifest
from ier.errors import ConfigError
from ier.files import atomic_write_json
from ier.scenes import assets, catalog
from ier.scenes.mp4 import write_clip
from ier.scenes.recipes import RECIPES, with_extra_images
from ier.scenes.render import ClipFormat, render_clip

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
BENCHMARK_FILE = "benchmark.json"
RECORDS_DIR = ".records"

SPLITS: dict[str, tuple[str, str]] = {
    "train/solo": ("solo", "train"),
    "train/unconstrained": ("wild", "train"),
    "test/solo": ("solo", "test"),
    "test/synthetic": ("synthetic", "test"),
    "test/duet": ("duet", "test"),
    "test/wild": ("wild", "test"),
    "test/negative": ("negative", "test"),
    "val/wild": ("wild", "train"),
    "val/negative": ("negative", "train"),
}
"""Split folder -> (split kind written in the manifest, asset side). The ``val/`` splits are
composed from training assets (never the held-out test recordings or images): they calibrate
decision thresholds without touching the test splits."""

DIAGNOSTIC_SPLITS: dict[str, tuple[str, str]] = {
    "diag/wild-test-images": ("wild", "test-images"),
    "diag/wild-test-audio": ("wild", "test-audio"),
    "diag/negative-test-images": ("negative", "test-images"),
    "diag/negative-test-audio": ("negative", "test-audio"),
}
"""Evaluation-only splits that hold out one modality (``ier.scenes.recipes.SIDES``): wild and
negative scenes of held-out images with training recordings, and the reverse. They are in no
preset and never in a benchmark's own folder: ``build_diagnostic_splits`` writes them beside it,
so the benchmark, its checks and its caches stay as they are."""
_ALL_SPLITS = {**SPLITS, **DIAGNOSTIC_SPLITS}

_TEST_SPLITS = [s for s in SPLITS if s.startswith("test/")]
_VAL_SPLITS = [s for s in SPLITS if s.startswith("val/")]
PRESETS: dict[str, dict[str, int]] = {
    "small": {
        "train/solo": 192,
        "train/unconstrained": 96,
        **dict.fromkeys(_TEST_SPLITS, 32),
        **dict.fromkeys(_VAL_SPLITS, 32),
    },
    "default": {
        "train/solo": 3200,
        "train/unconstrained": 2400,
        **dict.fromkeys(_TEST_SPLITS, 512),
        **dict.fromkeys(_VAL_SPLITS, 256),
    },
    "large": {
        "train/solo": 12800,
        "train/unconstrained": 9600,
        **dict.fromkeys(_TEST_SPLITS, 2048),
        **dict.fromkeys(_VAL_SPLITS, 1024),
    },
}
REQUIRED_SOURCES = ("tuxpaint", "gcompris", "opensfx", "lincity", "freedesktop", "soundfont")
DEBIAN_PACKAGES = (
    "tuxpaint-stamps-default", "gcompris-qt-data", "openttd-opensfx", "lincity-ng-data",
    "sound-theme-freedesktop", "fluid-soundfont-gm", "librsvg2-2",
)  # fmt: skip


@dataclass(frozen=True)
class BuildSettings:
    """What a build depends on; two builds with equal settings and assets are identical."""

    preset: str
    seed: int
    size: int
    fmt: ClipFormat
    extra_train_images: str | None = None  # a key of catalog.EXTRA_TRAIN_IMAGES

    def identity(self) -> dict[str, Any]:
        # a benchmark.json written before extra_train_images existed lacks the key: None, as here
        return {"preset": self.preset, "seed": self.seed, "size": self.size,
                "extra_train_images": self.extra_train_images}  # fmt: skip


def clip_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """The RNG of one clip: a function of (seed, split, index) only, not of the worker count."""
    return np.random.default_rng([seed, zlib.crc32(split.encode()), index])


def clip_id(split: str, index: int) -> str:
    """The sample id: ``<split with '-' for '/'>-<index:05d>``, unique across the benchmark."""
    return f"{split.replace('/', '-')}-{index:05d}"


def _build_one(task: tuple[str, int, str, BuildSettings]) -> dict[str, Any]:
    """Render one clip (unless both its mp4 and its record exist) and return its record."""
    split, index, out_dir, settings = task
    split_dir = Path(out_dir) / split
    cid = clip_id(split, index)
    record_path = split_dir / RECORDS_DIR / f"{cid}.json"
    video = f"clips/{cid}.mp4"
    if record_path.is_file() and (split_dir / video).is_file():
        try:
            return json.loads(record_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            logger.warning("re-rendering %s: unreadable record", cid)
    kind, side = _ALL_SPLITS[split]
    side = with_extra_images(side, settings.extra_train_images)
    rng = clip_rng(settings.seed, split, index)
    plan = RECIPES[kind](rng, index, side)
    frames, audio, record = render_clip(plan, rng, settings.fmt, clip_id=cid, video=video)
    (split_dir / "clips").mkdir(parents=True, exist_ok=True)
    write_clip(
        split_dir / video, frames, fps=settings.fmt.fps, audio=audio, sample_rate=SAMPLE_RATE
    )
    atomic_write_json(record_path, record, indent=None)
    return record


def _init_worker() -> None:
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:  # pragma: no cover
        pass


def _check_existing(out_dir: Path, settings: BuildSettings) -> None:
    info_path = out_dir / BENCHMARK_FILE
    if not info_path.exists():
        if out_dir.exists() and any(out_dir.iterdir()):
            raise ConfigError(
                f"{out_dir} is not empty and holds no {BENCHMARK_FILE}; "
                "build into a new or empty folder"
            )
        return
    try:
        info = json.loads(info_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise ConfigError(f"{info_path} is unreadable ({err}); build into a new folder") from err
    theirs = {k: info.get(k) for k in settings.identity()}
    if theirs != settings.identity():
        raise ConfigError(
            f"{out_dir} holds a benchmark built with {theirs}, not {settings.identity()}; "
            "use another folder (builds with different settings are never mixed)"
        )


def _info(settings: BuildSettings, counts: dict[str, int], *, complete: bool) -> dict[str, Any]:
    fmt = settings.fmt
    return {
        "name": "ier-scenes",
        "format_version": FORMAT_VERSION,
        **settings.identity(),
        "fps": fmt.fps,
        "clip_seconds": fmt.seconds,
        "window_seconds": fmt.window_seconds,
        "sample_rate": SAMPLE_RATE,
        "classes": list(catalog.class_names()),
        "offscreen_classes": [p.name for p in catalog.offscreen_pools()],
        "noise_kinds": [p.name for p in catalog.NOISES],
        "splits": {s: {"kind": _ALL_SPLITS[s][0], "count": counts[s]} for s in counts},
        "asset_versions": assets.package_versions(
            DEBIAN_PACKAGES + (("openclipart-png",) if settings.extra_train_images else ())
        ),
        "complete": complete,
    }


def _tasks(out_dir: Path, settings: BuildSettings, counts: dict[str, int]):
    return [(s, i, str(out_dir), settings) for s, n in counts.items() for i in range(n)]


def _run(tasks: list, workers: int, progress: bool) -> list[dict[str, Any]]:
    from tqdm import tqdm

    bar = tqdm(total=len(tasks), desc="ier scenes", unit="clip", disable=not progress)
    results: list[dict[str, Any]] = []
    try:
        if workers <= 1:
            for task in tasks:
                results.append(_build_one(task))
                bar.update()
        else:
            ctx = multiprocessing.get_context("fork")
            with ctx.Pool(workers, initializer=_init_worker) as pool:
                for record in pool.imap(_build_one, tasks, chunksize=4):
                    results.append(record)
                    bar.update()
    finally:
        bar.close()
    return results


def build_benchmark(
    out_dir: str | os.PathLike[str],
    *,
    preset: str = "default",
    seed: int = 0,
    size: int = 224,
    workers: int = 1,
    progress: bool = True,
    extra_train_images: str | None = None,
) -> Path:
    """Build (or finish building) the built-in benchmark in ``out_dir``.

    Layout: ``OUT/benchmark.json``, ``OUT/<split>/manifest.jsonl``, ``OUT/<split>/clips/<id>.mp4``
    for every split in ``SPLITS``. Finished clips are skipped, so an interrupted build resumes.

    Args:
        out_dir: target folder (new, empty, or a partial build with the same settings).
        preset: ``small`` (tests), ``default`` or ``large``.
        seed: base seed; each clip's RNG depends on (seed, split, index) only.
        size: frame side in pixels.
        workers: processes rendering clips in parallel.
        progress: show a tqdm progress bar.
        extra_train_images: a source of ``catalog.EXTRA_TRAIN_IMAGES`` (``openclipart``) whose
            drawings join each class's training images (train and val splits); the test splits
            stay those of the build without it, clip for clip.

    Returns:
        ``out_dir`` as a Path.

    Raises:
        ConfigError: unknown preset or extra image source, bad size, seed or workers (checked
            before anything is written), or a folder holding another build.
        AssetError: a required asset source is not installed (names the package).
    """

    if preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    if size < 32:
        raise ConfigError(f"size must be at least 32 px, got {size}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"--seed must be an integer >= 0, got {seed!r}")
    if workers < 1:
        raise ConfigError(f"--workers must be >= 1, got {workers}")
    if extra_train_images is not None and extra_train_images not in catalog.EXTRA_TRAIN_IMAGES:
        raise ConfigError(f"unknown extra training image source {extra_train_images!r}; choose "
                          f"one of {', '.join(catalog.EXTRA_TRAIN_IMAGES)}")  # fmt: skip
    settings = BuildSettings(preset, int(seed), int(size), ClipFormat(size=int(size)),
                             extra_train_images)  # fmt: skip
    return _build(Path(out_dir), settings, PRESETS[preset], workers, progress)


def build_diagnostic_splits(
    benchmark: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    count: int = 256,
    workers: int = 1,
    progress: bool = True,
) -> Path:
    """Build (or finish building) ``DIAGNOSTIC_SPLITS`` for a built benchmark, in a folder of their
    own, with the benchmark's seed and frame size and ``count`` clips each.

    ``OUT/benchmark.json`` records preset ``diagnostic:<preset>``, the benchmark's seed and size
    (and its ``extra_train_images``, which the ``test-audio`` splits' training images then
    include) and the classes, so ``ier.data.datasets.read_classes`` and ``ier localize`` read it as
    usual.

    Raises:
        ConfigError: ``benchmark`` holds no complete build, ``count`` or ``workers`` below 1, or
            ``out_dir`` holds another build.
    """
    info_path = Path(benchmark) / BENCHMARK_FILE
    try:
        info = json.loads(info_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise ConfigError(f"{info_path}: no readable benchmark there ({err})") from err
    if not info.get("complete"):
        raise ConfigError(f"{benchmark} holds an unfinished build; finish it with ier scenes build")
    if count < 1 or workers < 1:
        raise ConfigError(f"count and workers must be >= 1, got {count} and {workers}")
    size = int(info["size"])
    settings = BuildSettings(f"diagnostic:{info['preset']}", int(info["seed"]), size,
                             ClipFormat(size=size), info.get("extra_train_images"))  # fmt: skip
    return _build(Path(out_dir), settings, dict.fromkeys(DIAGNOSTIC_SPLITS, int(count)),
                  workers, progress)  # fmt: skip


def _build(
    out: Path, settings: BuildSettings, counts: dict[str, int], workers: int, progress: bool
) -> Path:
    _check_existing(out, settings)
    extra = [settings.extra_train_images] if settings.extra_train_images else []
    assets.require_sources([*REQUIRED_SOURCES, *extra])
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / BENCHMARK_FILE, _info(settings, counts, complete=False), indent=None)
    started = time.perf_counter()
    records = _run(_tasks(out, settings, counts), max(1, int(workers)), progress)
    by_split: dict[str, list[dict[str, Any]]] = {s: [] for s in counts}
    for (split, _, _, _), record in zip(_tasks(out, settings, counts), records, strict=True):
        by_split[split].append(record)
    for split, split_records in by_split.items():
        write_manifest(out / split / "manifest.jsonl", split_records)
    info = _info(settings, counts, complete=True)
    info["build_seconds"] = round(time.perf_counter() - started, 1)
    atomic_write_json(out / BENCHMARK_FILE, info)
    logger.info("built %d clips in %s (%.1f s)", len(records), out, info["build_seconds"])
    return out
