"""Typed, frozen experiment configs: data, stages, evaluation; the preset names; files.

A run is one ``ExperimentConfig``: the model (``ier.models.config.ModelConfig``), the data options
and an ordered tuple of ``StageConfig`` (one task per stage, see ``ier.tasks``). Each method's
recipe (``preset name -> ExperimentConfig``) lives in its module under ``ier.methods``; dict
conversion and ``--set`` overrides are ``ier.codec``.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ier.codec import apply_overrides, from_dict, to_dict
from ier.errors import ConfigError
from ier.files import atomic_write_json
from ier.models.config import ModelConfig

PRESETS = ("tiny", "short", "quick", "cpu", "paper")
"""Named scales: ``tiny`` (seconds; tests), ``short`` (the quick model for about a fifth of the
quick epochs, ~9 min on 2 CPU cores; what ``ier bench --preset quick`` trains, so that every method
and ablation fits in 2 hours), ``quick`` (CPU, 128 px), ``cpu`` (the paper's 224 px and epochs on
2 CPU cores: frozen visual trunk read from the feature cache), ``paper`` (GPU, DSOL)."""

@dataclass(frozen=True)
class DataConfig:
    """How manifests become batches (``ier.data.datasets``).

    Attributes:
        cache_dir: Folder of the decoded caches; empty = ``<data dir>/.ier-cache``.
        train_frames: Frames decoded per training clip, evenly spaced in its audio window
            (method.md §1.2 picks one of 4 at random each time the clip is drawn).
        augment: Random resized crop, flip and colour jitter on training images (§1.2).
        max_train_samples: Use at most this many clips of each training split (0 = all).
        decode_workers: Threads that decode media when a cache is built.
        eval_batch_size: Batch size of no-grad passes (clustering, prediction).
        feature_views: With a frozen visual trunk (``model.visual_trunk = "frozen"``), the fixed
            views (frame, flip, jitter) cached per training clip (``ier.data.features``); each
            step then reads one of them with a random crop of its cells.
    """

    cache_dir: str = ""
    train_frames: int = 4
    augment: bool = True
    max_train_samples: int = 0
    decode_workers: int = 2
    eval_batch_size: int = 64
    feature_views: int = 4

    def __post_init__(self) -> None:
        if self.feature_views < 1:
            raise ConfigError(f"data.feature_views must be >= 1, got {self.feature_views}")


@dataclass(frozen=True)
class StageConfig:
    """One training stage: a task run for some epochs on one split.

    Attributes:
        name: Display name, unique within the experiment (used for logs and stage snapshots).
        task: Registered task name (``ier.tasks.list_tasks()``).
        split: Training split, relative to the data dir (e.g. ``train/solo``).
        epochs: Passes over the split.
        batch_size: Clips per step (per process under DDP).
        lr: Adam learning rate of the encoders and every non-head module.
        lr_heads: Adam learning rate of the classifier heads (DSOL: 10x).
        weight_decay: Adam weight decay.
        grad_clip: Max global gradient norm; 0 disables clipping.
        cluster: Run k-means pseudo-labelling (S1-b) in tasks that support it.
        cluster_from_epoch: First epoch (1-based) that clusters; DSOL clusters from the 2nd on.
        lambda_cls: Weight of the pseudo-label cross-entropy CE(v) + CE(a).
        lambda_av: Weight of L_av next to the stage's main loss (AII, CMR).
        lambda_cd: Weight of the CMR cross-distillation L_cd (0: stage 2 trains on unconstrained
            data with L_av alone, the "no teacher" ablation).
        negative_pooling: How a negative pair's map is pooled in L_av: "global" (GMP) or
            "quadrants" (each 2x2 max-pooled quadrant must be 0; multi-source scenes).
        curriculum: AII curriculum (method.md §1.5); False = the final phase from the start.
        mix_gain_db: The AII curriculum's widest level range: each mixed source's level is
            drawn from U(-g, +g) dB with g = this value in the later phases (the table's 10) and
            min(6, this value) in the first mixing phase (method.md §9).
        detach_kl: Detach the target side of each KL term of L_cd (method.md Q9).
        freeze: Module-name prefixes (e.g. ``audio_backbone``, ``av_head.audio_proj``) held
            fixed in this stage: no gradient, no optimizer state, batch-norm statistics frozen.
        max_steps: Stop each epoch after this many steps (0 = full epoch); for smoke runs.
    """

    name: str
    task: str
    split: str = "train/solo"
    epochs: int = 1
    batch_size: int = 32
    lr: float = 1e-4
    lr_heads: float = 1e-3
    weight_decay: float = 1e-4
    grad_clip: float = 0.0
    cluster: bool = True
    cluster_from_epoch: int = 2
    lambda_cls: float = 1.0
    lambda_av: float = 0.5
    lambda_cd: float = 1.0
    negative_pooling: Literal["global", "quadrants"] = "global"
    curriculum: bool = True
    mix_gain_db: float = 10.0
    detach_kl: bool = True
    freeze: tuple[str, ...] = ()
    max_steps: int = 0

    def __post_init__(self) -> None:
        if not 0.0 <= self.mix_gain_db <= 40.0:
            raise ConfigError(f"mix_gain_db must be within 0..40 dB, got {self.mix_gain_db}")


@dataclass(frozen=True)
class EvalConfig:
    """End-of-run evaluation (``ier.inference.evaluate_checkpoint``).

    Attributes:
        at_end: Evaluate every test split when training finishes.
        splits: Test splits to evaluate; empty = every ``test/*`` split in the data dir.
        single_source_stage: Index of the stage whose model gives the single-source maps of the
            solo splits (method.md §1.8: stage 1); -1 = the final model.
        every_epoch: Validation splits scored after every epoch and logged with it (no files):
            the pointing game and CIoU of the single-source map (``av_*``) and, once the model
            has class maps, of those (``ier.inference.validate``). Never a test split.
    """

    at_end: bool = True
    splits: tuple[str, ...] = ()
    single_source_stage: int = -1
    every_epoch: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        tests = [s for s in self.every_epoch if s.startswith("test/")]
        if tests:
            raise ConfigError(f"eval.every_epoch takes validation splits, not {tests}")


@dataclass(frozen=True)
class ExperimentConfig:
    """A whole training run.

    Attributes:
        method: Method name (a registered recipe, e.g. ``ier``).
        preset: The preset it was built from (informational).
        seed: Base seed; process ``r`` of a DDP run uses ``seed + r`` for its data order.
        num_clusters: K; 0 = the number of categories of the training data (method.md §1.4).
        model: Architecture (``ier.models``).
        data: Data options.
        stages: Training stages, run in order.
        eval: End-of-run evaluation.
        log_every: Steps between log lines.
        init_from: Checkpoint whose model weights initialise the run (e.g. a stage snapshot
            ``RUN/stages/1-aii.safetensors``); empty = fresh weights.
        start_stage: Index of the first stage to run; earlier stages are skipped (use with
            ``init_from`` to re-run later stages from an earlier run's snapshot).
        stop_stage: Index of the last stage to run (inclusive); -1 = the last stage of the
            recipe. With ``stop_stage=1`` an IEr run ends after stage 1 (the stage-1-only model).
    """

    method: str
    model: ModelConfig
    stages: tuple[StageConfig, ...]
    preset: str = "custom"
    seed: int = 0
    num_clusters: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    log_every: int = 10
    init_from: str = ""
    start_stage: int = 0
    stop_stage: int = -1

    def __post_init__(self) -> None:
        names = [s.name for s in self.stages]
        if not names:
            raise ConfigError("an experiment needs at least one stage")
        if not 0 <= self.start_stage < len(names):
            raise ConfigError(
                f"start_stage must be in [0, {len(names)}) for stages {names}, "
                f"got {self.start_stage}"
            )
        if not (self.stop_stage == -1 or self.start_stage <= self.stop_stage < len(names)):
            raise ConfigError(
                f"stop_stage must be -1 (all) or in [start_stage={self.start_stage}, "
                f"{len(names)}) for stages {names}, got {self.stop_stage}"
            )
        if len(set(names)) != len(names):
            raise ConfigError(f"stage names must be unique, got {names}")
        for stage in self.stages:
            if stage.epochs < 1 or stage.batch_size < 1:
                raise ConfigError(f"stage {stage.name!r}: epochs and batch_size must be >= 1")
            if stage.negative_pooling not in ("global", "quadrants"):
                raise ConfigError(
                    f"stage {stage.name!r}: negative_pooling must be 'global' or 'quadrants', "
                    f"got {stage.negative_pooling!r}"
                )

    @property
    def last_stage(self) -> int:
        """Index of the last stage this run trains (``stop_stage`` resolved)."""
        return len(self.stages) - 1 if self.stop_stage == -1 else self.stop_stage

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able nested dict (``from_dict`` inverts it)."""
        return to_dict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ExperimentConfig:
        """Build from a nested dict; unknown keys and wrong types raise ``ConfigError``."""
        return from_dict(cls, data)


BaseResolver = Callable[[str, str], ExperimentConfig]
"""``(method, preset) -> ExperimentConfig``: what a TOML file's ``base`` names
(``ier.methods.preset``)."""


def load_config_file(path: str | Path, *, base: BaseResolver | None = None) -> ExperimentConfig:
    """Load an experiment from TOML (``configs/*.toml``) or JSON (a run's ``config.json``).

    A TOML file may start from a preset: top-level ``base = "ier/quick"`` takes that preset
    (resolved by ``base``; ``ier.methods.load_config`` passes the method recipes), and the file's
    other tables override it (``[model]`` fields; ``[[stages]]`` replaces the stages). A top-level
    ``overrides = ["stages.aii.curriculum=false", ...]`` is applied last, exactly like ``--set``.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"cannot read config {path}: {err.strerror or err}") from err
    try:
        data = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as err:
        raise ConfigError(f"{path}: not valid {path.suffix.lstrip('.') or 'TOML'}: {err}") from err
    overrides = data.pop("overrides", [])
    if not isinstance(overrides, list) or not all(isinstance(o, str) for o in overrides):
        raise ConfigError(f"{path}: overrides must be a list of 'key=value' strings")
    named = data.pop("base", None)
    if named is not None:
        if not isinstance(named, str) or named.count("/") != 1:
            raise ConfigError(f"{path}: base must be 'METHOD/PRESET', got {named!r}")
        if base is None:
            raise ConfigError(f"{path}: has a base; load it with ier.methods.load_config")
        data = _merge(to_dict(base(*named.split("/"))), data)
    return apply_overrides(ExperimentConfig.from_dict(data), overrides)


def _merge(base: dict[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def save_config(cfg: ExperimentConfig, path: str | Path) -> Path:
    """Write the resolved config as JSON (``load_config_file`` reads it back)."""
    return atomic_write_json(path, cfg.to_dict())


_MOVED = {"preset", "list_methods", "load_config", "register_recipe"}


def __getattr__(name: str) -> Any:
    """Deprecated aliases (removed in ier 0.3): the recipes moved to ``ier.methods``."""
    if name not in _MOVED:
        raise AttributeError(f"module 'ier.config' has no attribute {name!r}")
    import sys
    import warnings

    from ier import plugins  # deprecated alias only: ier.methods sits above ier.config

    warnings.warn(f"ier.config.{name} moved to ier.methods.{name}", DeprecationWarning,
                  stacklevel=2)  # fmt: skip
    plugins.load_methods()  # imports ier.methods (the built-in entry point) with the methods
    return getattr(sys.modules["ier.methods"], name)
